"""Segment-compatible routes: unmodified Segment and RudderStack SDKs send to eventcore.

``POST /v1/batch`` (what the server SDKs call) and ``POST /v1/<type>`` for one message. The write
key is an eventcore API key; each message goes through the same ingestor as ``/v1/ingest``
(validation, rate limit, fast path, queue). Two things differ from the native API, because the
released SDKs depend on them: success is 200 (a 202 makes them retry), and an error body is
``{"code", "message"}`` (the keys their error handling reads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.status_codes import HTTP_200_OK
from litestar.types import ControllerRouterHandler

from eventcore.entrypoints.http import errors
from eventcore.entrypoints.http.body import read_body
from eventcore.entrypoints.http.deps import bearer_token, resolve_api_key
from eventcore.entrypoints.http.metrics import counting_refusals, record_receipt
from eventcore.errors import EventcoreError
from eventcore.events import EventLimits, RejectedEvent
from eventcore.platform import Platform
from eventcore.segment import (
    MESSAGE_TYPES,
    SegmentRequest,
    basic_write_key,
    map_messages,
    parse_batch,
    parse_message,
    protocol_limits,
)
from eventcore.tenancy import ApiKey
from eventcore.usecases.ingest import EventsRejected


class SegmentReceipt(msgspec.Struct, frozen=True):
    """The batch is durably accepted. ``rejected`` lists messages refused alone, by index."""

    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]
    success: bool = True


class SegmentError(msgspec.Struct):
    """An error in the shape the SDKs read: ``code`` and ``message`` at the top level."""

    code: Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9_]*$")]
    message: str
    rejected: list[RejectedEvent] | None = None


_ERROR_MEANINGS = {
    400: "The body is malformed, or no message in it was valid (see `rejected`)",
    401: "The write key is missing, unknown or revoked",
    413: "The body is over a documented size or count limit",
    429: "The workspace is over its event rate; retry after `Retry-After` seconds",
    503: "The queue is unavailable or full; nothing was accepted; retry after `Retry-After` seconds",
}
_ERRORS = {
    status: ResponseSpec(data_container=SegmentError, description=meaning, generate_examples=False)
    for status, meaning in _ERROR_MEANINGS.items()
}

_ID = Schema(
    one_of=[Schema(type=OpenAPIType.STRING, pattern=r"\S"), Schema(type=OpenAPIType.NUMBER)]
)
_NULLABLE_ID = Schema(
    one_of=[
        Schema(type=OpenAPIType.STRING),
        Schema(type=OpenAPIType.NUMBER),
        Schema(type=OpenAPIType.NULL),
    ]
)
_TIME = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME)
_OBJECT = Schema(
    one_of=[
        Schema(type=OpenAPIType.OBJECT, additional_properties=True),
        Schema(type=OpenAPIType.NULL),
    ]
)
_WRITE_KEY = Schema(type=OpenAPIType.STRING, description="The eventcore API key")
_TEXT = Schema(one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)])
_COMMON = {
    "messageId": Schema(
        type=OpenAPIType.STRING,
        min_length=1,
        max_length=128,
        description="The event id: the idempotency key within the project",
    ),
    "timestamp": _TIME,
    "sentAt": _TIME,
    "userId": _NULLABLE_ID,
    "anonymousId": _NULLABLE_ID,
    "context": _OBJECT,
    "integrations": _OBJECT,
}
# The fields each type adds to the common ones, and those it requires.
_BY_TYPE: dict[str, tuple[dict[str, Schema], list[str]]] = {
    "track": (
        {
            "event": Schema(
                type=OpenAPIType.STRING,
                min_length=1,
                max_length=128,
                pattern=r"\S",
                description="The event type",
            ),
            "properties": _OBJECT,
        },
        ["event"],
    ),
    "identify": ({"traits": _OBJECT}, []),
    "page": ({"name": _TEXT, "category": _TEXT, "properties": _OBJECT}, []),
    "screen": ({"name": _TEXT, "category": _TEXT, "properties": _OBJECT}, []),
    "group": ({"groupId": _ID, "traits": _OBJECT}, ["groupId"]),
    "alias": ({"previousId": _ID}, ["previousId"]),
}


def message_schema(message_type: str, *, alone: bool = False) -> Schema:
    """One message type as sent: stored whole as the properties of one event.

    ``alone``: sent to its own path, where it may leave out its type and carry the write key.
    """
    extra, required = _BY_TYPE[message_type]
    if alone:
        extra = {**extra, "writeKey": _WRITE_KEY}
    name = "`event`" if message_type == "track" else f"`{message_type}`"
    return Schema(
        type=OpenAPIType.OBJECT,
        required=required if alone else ["type", *required],
        description=(
            f"A {message_type} message, stored whole as the properties of one event of type "
            f"{name}. It needs a `userId` or an `anonymousId`."
        ),
        additional_properties=True,
        properties={
            "type": Schema(type=OpenAPIType.STRING, enum=[message_type]),
            **_COMMON,
            **extra,
        },
        any_of=[
            Schema(required=["userId"], properties={"userId": _ID}),
            Schema(required=["anonymousId"], properties={"anonymousId": _ID}),
        ],
    )


_BATCH = Schema(
    type=OpenAPIType.OBJECT,
    required=["batch"],
    properties={
        "batch": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(one_of=[message_schema(kind) for kind in MESSAGE_TYPES]),
            min_items=1,
        ),
        "sentAt": _TIME,
        "writeKey": _WRITE_KEY,
    },
)
_AUTH = (
    " The write key is an eventcore API key, sent as `writeKey` in the body, "
    '`Authorization: Basic base64("<key>:")`, `X-Write-Key`, `X-API-Key` or a bearer token. '
    "`Content-Encoding: gzip` is accepted. With `sentAt`, each stored time is "
    "`timestamp + (received_at - sentAt)` (clock-skew correction)."
)


@dataclass
class BatchOperation(Operation):
    """Documents the body the handler reads itself (raw, so gzip and per-message errors work)."""

    def __post_init__(self) -> None:
        # Litestar passes request_body=None for a handler without `data`, so set it here.
        self.request_body = RequestBody(
            required=True,
            description="A batch of Segment messages, as the server SDKs send it.",
            content={"application/json": OpenAPIMediaType(schema=_BATCH)},
        )


def message_operation(message_type: str) -> type[Operation]:
    """Documents the single message a `/v1/<type>` handler reads itself."""

    @dataclass
    class MessageOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True,
                description=f"One {message_type} message.",
                content={
                    "application/json": OpenAPIMediaType(
                        schema=message_schema(message_type, alone=True)
                    )
                },
            )

    return MessageOperation


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
    received_at = platform.clock.now()
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


@post(
    "/batch",
    status_code=HTTP_200_OK,
    summary="Send a batch of Segment messages",
    description="What the Segment and RudderStack server SDKs call." + _AUTH,
    operation_class=BatchOperation,
    responses=_ERRORS,
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
        description=f"One {message_type} message, for raw HTTP clients." + _AUTH,
        operation_class=message_operation(message_type),
        responses=_ERRORS,
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
        # The key forms an OpenAPI scheme can name; `_AUTH` describes the others.
        security=[{"ApiKey": []}, {"ApiKeyBearer": []}],
        exception_handlers={
            EventcoreError: domain_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
]
