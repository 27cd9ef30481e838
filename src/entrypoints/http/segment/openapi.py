"""The Segment routes in the OpenAPI document: the bodies the SDKs send, and the errors' shape."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Operation, Schema

from eventcore.entrypoints.http.body import READ_BODY_CODES, documented_body
from eventcore.entrypoints.http.errors import EVERY_REQUEST, Codes, describe_errors, merge_codes
from eventcore.entrypoints.http.ingest import EVENT_REJECTIONS, INGEST_CODES
from eventcore.entrypoints.http.schemas import event_id_schema, event_type_schema
from eventcore.entrypoints.http.segment.protocol import MESSAGE_TYPES
from eventcore.events import RejectedEvent


class SegmentError(msgspec.Struct):
    """An error in the shape the SDKs read: ``code`` and ``message`` at the top level."""

    code: Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9_]*$")]
    message: str
    rejected: list[RejectedEvent] | None = None


ERROR_MEANINGS = {
    400: "The body is malformed, or no message in it was valid (see `rejected`)",
    401: "The write key is missing, unknown or revoked",
    403: "The page's `Origin` is not one of the project's `allowed_origins`",
    413: "The body is over a documented size or count limit",
    415: "The body's `Content-Encoding` is not gzip or identity",
    429: "The workspace is over its event rate; retry after `Retry-After` seconds",
    503: "The queue is unavailable or full; nothing was accepted; retry after `Retry-After` seconds",
}
# What the protocol's parsing adds to an ingest's codes: a `sentAt` that is no time, and on
# `/v1/<type>`, a body naming another type or giving one of the message's fields twice.
_BATCH_CODES: Codes = {400: ("invalid_sent_at",)}
_MESSAGE_CODES: Codes = {400: ("invalid_sent_at", "type_mismatch", "duplicate_key")}
# A message is refused alone for the protocol's rules, then as the event it becomes.
MESSAGE_REJECTIONS = (
    "invalid_message",
    "message_too_large",
    "invalid_type",
    "invalid_identity",
    "missing_identity",
    "invalid_message_id",
    "invalid_event_name",
    "missing_group_id",
    "missing_previous_id",
    "invalid_field",
    *EVENT_REJECTIONS,
)


def error_responses(*, single: bool) -> dict[int, ResponseSpec]:
    """The errors of ``/v1/batch``, or of a ``/v1/<type>`` route when ``single``, in the
    protocol's shape."""
    codes = merge_codes(
        EVERY_REQUEST, READ_BODY_CODES, INGEST_CODES, _MESSAGE_CODES if single else _BATCH_CODES
    )
    return describe_errors(codes, ERROR_MEANINGS, SegmentError)


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
    "messageId": event_id_schema("The event id: the idempotency key within the project"),
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
        {"event": event_type_schema("The event type"), "properties": _OBJECT},
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
AUTH = (
    " The write key is an eventcore API key, sent as `writeKey` in the body, "
    '`Authorization: Basic base64("<key>:")`, `X-Write-Key`, `X-API-Key` or a bearer token. '
    "`Content-Encoding`: `gzip` (one or more members) or `identity`; any other is a 415. "
    "With `sentAt`, each stored time is "
    "`timestamp + (received_at - sentAt)` (clock-skew correction)."
)

BatchOperation = documented_body("A batch of Segment messages, as the server SDKs send it.", _BATCH)


def message_operation(message_type: str) -> type[Operation]:
    """Documents the single message a `/v1/<type>` handler reads itself."""
    return documented_body(f"One {message_type} message.", message_schema(message_type, alone=True))
