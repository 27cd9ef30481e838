"""The Segment routes: ``POST /v1/batch`` (what the server SDKs call) and ``POST /v1/<type>``;
the short paths analytics.js posts to (``/v1/t``, ``/v1/i``, ... and ``/v1/b``); RudderStack's
beacon, ``POST /beacon/v1/batch?writeKey=...``.

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
from litestar.types import ControllerRouterHandler, ExceptionHandlersMap

from eventcore.entrypoints.http import errors
from eventcore.entrypoints.http.body import read_body
from eventcore.entrypoints.http.ingest import rejections
from eventcore.entrypoints.http.metrics import counting_refusals, record_receipt
from eventcore.entrypoints.http.openapi import WRITE_KEY_AUTH
from eventcore.entrypoints.http.segment import config
from eventcore.entrypoints.http.segment.keys import check_key, header_write_key, query_write_key
from eventcore.entrypoints.http.segment.openapi import (
    AUTH,
    MESSAGE_REJECTIONS,
    BatchOperation,
    error_responses,
    message_operation,
)
from eventcore.entrypoints.http.segment.protocol import (
    MESSAGE_TYPES,
    SHORT_PATHS,
    SegmentRequest,
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


async def accept(
    request: Request[Any, Any, Any],
    platform: Platform,
    parse: Callable[[bytes, EventLimits], SegmentRequest],
    *,
    key_in_query: bool = False,
) -> SegmentReceipt:
    """Authenticate, map the messages to events and submit them: the work of every route."""
    received_at = platform.ingestor.now()
    limits = platform.ingestor.limits
    key = query_write_key(request) if key_in_query else header_write_key(request)
    # A key in a header is checked before the body is read; one in the body only after.
    record: ApiKey | None = await check_key(request, platform, key) if key else None
    body = await read_body(request, limits.max_request_bytes)
    parsed = parse(body, limits)
    if record is None:
        record = await check_key(request, platform, parsed.write_key)
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


def batch_route(
    path: str,
    *,
    name: str,
    description: str,
    operation_id: str | None = None,
    key_in_query: bool = False,
) -> HTTPRouteHandler:
    """``POST <path>``: a batch of messages (the key also taken from the query's ``writeKey``
    when ``key_in_query``)."""

    async def send(
        request: Request[Any, Any, Any], platform: NamedDependency[Platform]
    ) -> SegmentReceipt:
        return await accept(request, platform, parse_batch, key_in_query=key_in_query)

    return post(
        path,
        status_code=HTTP_200_OK,
        name=name,
        operation_id=operation_id,
        summary="Send a batch of Segment messages",
        description=description + AUTH,
        operation_class=BatchOperation,
        response_description=RECEIVED,
        responses=error_responses(single=False),
    )(send)


def message_route(message_type: str, path: str | None = None) -> HTTPRouteHandler:
    """``POST /v1/<message_type>`` (or ``/v1/<path>``): one message of that type."""

    def parse(body: bytes, limits: EventLimits) -> SegmentRequest:
        return parse_message(body, message_type, limits)

    async def send(
        request: Request[Any, Any, Any], platform: NamedDependency[Platform]
    ) -> SegmentReceipt:
        return await accept(request, platform, parse)

    short = path is not None
    return post(
        f"/{path or message_type}",
        status_code=HTTP_200_OK,
        name=f"segment-{path or message_type}",
        operation_id=f"segment{message_type.capitalize()}{'Short' if short else ''}",
        summary=f"Send one Segment {message_type} message",
        description=(
            f"One {message_type} message, as analytics.js posts it (`Content-Type: text/plain`)."
            if short
            else f"One {message_type} message, for raw HTTP clients."
        )
        + AUTH,
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


PROTOCOL_ERRORS: ExceptionHandlersMap = {
    EventcoreError: domain_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}

ROUTES: list[ControllerRouterHandler] = [
    Router(
        "/v1",
        route_handlers=[
            batch_route(
                "/batch",
                name="batch",
                description="What the Segment and RudderStack server SDKs call.",
                operation_id="V1BatchBatch",
            ),
            batch_route(
                "/b",
                name="segment-b",
                operation_id="segmentBatchShort",
                description="What analytics.js posts in its batching mode.",
            ),
            *(message_route(kind) for kind in MESSAGE_TYPES),
            *(message_route(kind, short) for short, kind in SHORT_PATHS.items()),
            *config.SEGMENT_ROUTES,
        ],
        tags=["segment"],
        security=WRITE_KEY_AUTH,
        exception_handlers=PROTOCOL_ERRORS,
    ),
    Router(
        "/",
        route_handlers=[
            batch_route(
                "/beacon/v1/batch",
                name="rudderstack-beacon",
                operation_id="rudderstackBeacon",
                key_in_query=True,
                description="What RudderStack's JavaScript SDK sends with `navigator.sendBeacon`"
                " (`useBeacon`), which can set no header: the write key is the query's"
                " `writeKey`. The answer goes unread.",
            ),
            *config.RUDDERSTACK_ROUTES,
        ],
        tags=["segment"],
        security=WRITE_KEY_AUTH,
        exception_handlers=PROTOCOL_ERRORS,
    ),
]
