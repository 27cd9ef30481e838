"""The Segment routes: ``POST /v1/batch`` (what the server SDKs call) and ``POST /v1/<type>``.

The write key is an eventcore API key; each message goes through the same ingestor as
``/v1/ingest`` (validation, rate limit, fast path, queue). Two things differ from the native API,
because the released SDKs depend on them: success is 200 (a 202 makes them retry), and an error
body is ``{"code", "message"}`` (the keys their error handling reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, Router, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_200_OK
from litestar.types import ControllerRouterHandler

from eventcore.entrypoints.http import errors
from eventcore.entrypoints.http.body import read_body
from eventcore.entrypoints.http.deps import bearer_token, resolve_api_key
from eventcore.entrypoints.http.ingest import rejections
from eventcore.entrypoints.http.metrics import counting_refusals, record_receipt
from eventcore.entrypoints.http.openapi import WRITE_KEY_AUTH
from eventcore.entrypoints.http.segment.openapi import (
    AUTH,
    MESSAGE_REJECTIONS,
    BatchOperation,
    error_responses,
    message_operation,
)
from eventcore.entrypoints.http.segment.protocol import (
    MESSAGE_TYPES,
    SegmentRequest,
    basic_write_key,
    map_messages,
    parse_batch,
    parse_message,
    protocol_limits,
)
from eventcore.errors import EventcoreError
from eventcore.events import EventLimits, RejectedEvent
from eventcore.platform import Platform
from eventcore.tenancy import ApiKey
from eventcore.usecases.ingest import EventsRejected


class SegmentReceipt(msgspec.Struct, frozen=True):
    """The batch is durably accepted. ``rejected`` lists messages refused alone, by index."""

    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]
    success: bool = True


def header_write_key(request: Request[Any, Any, Any]) -> str | None:
    """The write key from the headers, if the client sent one there."""
    key = request.headers.get("x-write-key", "").strip()
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and credentials.strip():
        return basic_write_key(credentials) or None
    return bearer_token(request) or request.headers.get("x-api-key") or None


async def accept(
    request: Request[Any, Any, Any],
    platform: Platform,
    parse: Callable[[bytes, EventLimits], SegmentRequest],
) -> SegmentReceipt:
    """Authenticate, map the messages to events and submit them: the work of every route."""
    received_at = platform.ingestor.now()
    limits = platform.ingestor.limits
    key = header_write_key(request)
    # A key in a header is checked before the body is read; one in the body only after.
    record: ApiKey | None = await resolve_api_key(platform, key) if key else None
    body = await read_body(request, limits.max_request_bytes)
    parsed = parse(body, limits)
    if record is None:
        record = await resolve_api_key(platform, parsed.write_key)
    mapped = map_messages(parsed, received_at=received_at, max_message_bytes=limits.max_event_bytes)
    with counting_refusals(len(mapped.events)):
        if not mapped.events:
            raise EventsRejected(mapped.rejected)
        try:
            receipt = await platform.ingestor.submit(
                record.tenant, mapped.events, limits=protocol_limits(limits)
            )
        except EventsRejected as exc:
            raise EventsRejected(mapped.merge(exc.rejected)) from None
    rejected = mapped.merge(receipt.rejected)
    record_receipt(msgspec.structs.replace(receipt, rejected=rejected))
    return SegmentReceipt(receipt.accepted, receipt.duplicates, rejected)


RECEIVED = "The valid messages are durably accepted." + rejections(MESSAGE_REJECTIONS)


@post(
    "/batch",
    status_code=HTTP_200_OK,
    summary="Send a batch of Segment messages",
    description="What the Segment and RudderStack server SDKs call." + AUTH,
    operation_class=BatchOperation,
    response_description=RECEIVED,
    responses=error_responses(single=False),
)
async def batch(
    request: Request[Any, Any, Any], platform: NamedDependency[Platform]
) -> SegmentReceipt:
    return await accept(request, platform, parse_batch)


def message_route(message_type: str) -> HTTPRouteHandler:
    """``POST /v1/<message_type>``: one message of that type."""

    def parse(body: bytes, limits: EventLimits) -> SegmentRequest:
        return parse_message(body, message_type, limits)

    async def send(
        request: Request[Any, Any, Any], platform: NamedDependency[Platform]
    ) -> SegmentReceipt:
        return await accept(request, platform, parse)

    return post(
        f"/{message_type}",
        status_code=HTTP_200_OK,
        name=f"segment-{message_type}",
        operation_id=f"segment{message_type.capitalize()}",
        summary=f"Send one Segment {message_type} message",
        description=f"One {message_type} message, for raw HTTP clients." + AUTH,
        operation_class=message_operation(message_type),
        response_description=RECEIVED,
        responses=error_responses(single=True),
    )(send)


def _protocol_shape(native: Response[Any]) -> Response[Any]:
    """The native answer with its ``{"error": {...}}`` unwrapped to the protocol's shape."""
    headers = dict(native.headers)
    if "WWW-Authenticate" in headers:
        headers["WWW-Authenticate"] = 'Basic realm="eventcore"'
    return Response(native.content["error"], status_code=native.status_code, headers=headers)


def domain_error(request: Request[Any, Any, Any], exc: EventcoreError) -> Response[Any]:
    return _protocol_shape(errors.domain_error(request, exc))


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return _protocol_shape(errors.http_error(request, exc))


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _protocol_shape(errors.unexpected_error(request, exc))


ROUTES: list[ControllerRouterHandler] = [
    Router(
        "/v1",
        route_handlers=[batch, *(message_route(kind) for kind in MESSAGE_TYPES)],
        tags=["segment"],
        security=WRITE_KEY_AUTH,
        exception_handlers={
            EventcoreError: domain_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
]
