"""The Segment tracking protocol at the HTTP edge: its bodies and messages as eventcore events.

Segment's HTTP tracking API, which RudderStack, Jitsu and others speak too, sends
``{"batch": [message, ...], "sentAt": ..., "writeKey"?: ...}`` to ``/v1/batch``, or one message
to ``/v1/<type>``. Each message becomes one eventcore event:

- ``id`` is the message's ``messageId``: an SDK that retries a batch has it stored once.
- ``type`` is the ``event`` name of a ``track`` message, and the message type (``identify``,
  ``page``, ``screen``, ``group``, ``alias``) otherwise.
- ``timestamp`` is the message's ``timestamp`` corrected for the sender's clock skew by the core's
  rule (:func:`eventcore.events.corrected_time`) with the message's or the batch's ``sentAt``.
- ``properties`` is the whole message as the client sent it (minus a ``writeKey``, a secret).

A message without ``userId`` and ``anonymousId`` is rejected, alone: the others still go through.
The events made here then take the core's own validation, exactly as native events do; this
module knows the protocol, the core knows nothing of it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import Raw

from eventcore.defaults import MAX_ID_LENGTH, MAX_PERSON_LENGTH, MAX_TYPE_LENGTH
from eventcore.errors import AuthenticationFailed, InvalidRequest
from eventcore.events import (
    EventLimits,
    RejectedEvent,
    check_count,
    corrected_time,
    decode_body,
    repeated_key,
)

MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
# analytics.js posts each message to the first letter of its type under its `apiHost`
# (`/v1/t` for a track), and a batch to `/v1/b` in its batching mode.
SHORT_PATHS = {kind[0]: kind for kind in MESSAGE_TYPES}

# What the protocol documents and its SDKs rely on: they drop a message over 32 KB themselves
# and close a batch before 500 KB. eventcore's limits must be at least these.
PROTOCOL_MESSAGE_BYTES = 32 * 1024
PROTOCOL_BATCH_BYTES = 500 * 1024

# The most an event adds around the message it carries: ``id`` and ``type`` of at most 128
# characters (6 bytes each once JSON-escaped), a timestamp, and the keys. A message is checked
# against the per-event limit itself, so an event may be larger by this much.
ENVELOPE_BYTES = 2048


@dataclass(frozen=True, slots=True)
class SegmentRequest:
    """One request of the protocol: the JSON text of each message, and the batch's fields."""

    messages: list[bytes]
    sent_at: datetime | None = None
    write_key: str | None = None


@dataclass(frozen=True, slots=True)
class MappedMessages:
    """The events made of a request's messages, and the messages rejected on the way.

    ``positions[i]`` is the index in the request of the message that became ``events[i]``.
    """

    events: list[bytes] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)

    def merge(self, later: list[RejectedEvent]) -> list[RejectedEvent]:
        """These rejections plus ``later`` ones, which index ``events``, all by message index."""
        moved = [
            RejectedEvent(index=self.positions[r.index], code=r.code, message=r.message)
            for r in later
        ]
        return sorted([*self.rejected, *moved], key=lambda r: r.index)


class _Batch(msgspec.Struct):
    batch: list[Raw] | None = None
    sentAt: Any = None
    writeKey: Any = None


_NULL = Raw(b"null")


class _Message(msgspec.Struct):
    """The fields eventcore checks; the others travel untouched in the stored payload.

    Objects stay JSON text (``Raw``): only their first byte is looked at, so a large
    ``properties`` costs no decoding.
    """

    type: Any = None
    messageId: Any = None
    timestamp: Any = None
    sentAt: Any = None
    userId: Any = None
    anonymousId: Any = None
    event: Any = None
    previousId: Any = None
    groupId: Any = None
    name: Any = None
    category: Any = None
    properties: Raw = _NULL
    traits: Raw = _NULL
    context: Raw = _NULL
    integrations: Raw = _NULL


# The fields each message type takes beyond the common ones, by kind of value.
_IDS = ("userId", "anonymousId")
_OBJECTS = {
    "track": ("properties", "context", "integrations"),
    "identify": ("traits", "context", "integrations"),
    "page": ("properties", "context", "integrations"),
    "screen": ("properties", "context", "integrations"),
    "group": ("traits", "context", "integrations"),
    "alias": ("context", "integrations"),
}
_REQUIRED_IDS = {"group": "groupId", "alias": "previousId"}
_TEXTS = {"page": ("name", "category"), "screen": ("name", "category")}


class _Envelope(msgspec.Struct, omit_defaults=True):
    type: str
    timestamp: datetime | None = None
    id: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None


# A message may give none of these twice (its nested objects may repeat their own keys, which
# are stored as sent: see the README).
_MESSAGE_KEYS = tuple(f'"{name}"'.encode() for name in _Message.__struct_fields__)

_batch_decoder = msgspec.json.Decoder(_Batch)
_object_decoder = msgspec.json.Decoder(dict[str, Raw])
_message_decoder = msgspec.json.Decoder(_Message)
_encoder = msgspec.json.Encoder()


def protocol_limits(limits: EventLimits) -> EventLimits:
    """The limits an ingestor applies to events made of messages: one message may be as large as
    one native event, so the event carrying it may be larger by the envelope."""
    return msgspec.structs.replace(limits, max_event_bytes=limits.max_event_bytes + ENVELOPE_BYTES)


def parse_batch(body: bytes, limits: EventLimits) -> SegmentRequest:
    """A ``/v1/batch`` body, or raise for the whole request."""
    top = decode_body(
        body,
        _batch_decoder,
        limits,
        'The body must be a JSON object {"batch": [message, ...], "sentAt": ...}.',
    )
    if top.batch is None:
        raise InvalidRequest(
            'The body has no "batch": send {"batch": [message, ...]}.', code="invalid_body"
        )
    if not top.batch:
        raise InvalidRequest('"batch" is empty: send at least one message.', code="invalid_body")
    check_count(len(top.batch), limits, "messages")
    return SegmentRequest(
        messages=[bytes(message) for message in top.batch],
        sent_at=_sent_at(top.sentAt),
        write_key=_write_key(top.writeKey),
    )


def parse_message(body: bytes, message_type: str, limits: EventLimits) -> SegmentRequest:
    """A ``/v1/<type>`` body: one message of that type, which may carry ``writeKey`` itself."""
    fields = decode_body(
        body,
        _object_decoder,
        limits,
        f"The body must be one {message_type} message as a JSON object.",
    )
    repeated = repeated_key(body, _MESSAGE_KEYS, list(fields.values()), "The message")
    if repeated is not None:
        raise InvalidRequest(repeated[1], code=repeated[0])
    declared = fields.get("type")
    if declared is None or msgspec.json.decode(declared) is None:
        fields.pop("type", None)
        fields = {"type": Raw(_encoder.encode(message_type)), **fields}
    elif msgspec.json.decode(declared) != message_type:
        raise InvalidRequest(
            f"This path takes {message_type} messages; the body's `type` names another.",
            code="type_mismatch",
        )
    key = fields.pop("writeKey", None)
    write_key = _write_key(msgspec.json.decode(key)) if key is not None else None
    sent = fields.get("sentAt")
    return SegmentRequest(
        messages=[_encoder.encode(fields)],
        sent_at=_sent_at(msgspec.json.decode(sent)) if sent is not None else None,
        write_key=write_key,
    )


def basic_write_key(credentials: str) -> str:
    """The write key of ``Authorization: Basic base64("<writeKey>:")`` (the user name)."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise AuthenticationFailed(
            "The Basic credentials are not base64 of `<write key>:`.", code="invalid_api_key"
        ) from None
    return decoded.partition(":")[0]


def map_messages(
    request: SegmentRequest, *, received_at: datetime, max_message_bytes: int
) -> MappedMessages:
    """Each message of the request to an event's JSON text, or a rejection by its index."""
    mapped = MappedMessages()
    for index, message in enumerate(request.messages):
        outcome = message_to_event(
            message,
            sent_at=request.sent_at,
            received_at=received_at,
            max_message_bytes=max_message_bytes,
        )
        if isinstance(outcome, bytes):
            mapped.events.append(outcome)
            mapped.positions.append(index)
        else:
            code, text = outcome
            mapped.rejected.append(RejectedEvent(index=index, code=code, message=text))
    return mapped


def message_to_event(
    message: bytes,
    *,
    sent_at: datetime | None,
    received_at: datetime,
    max_message_bytes: int,
) -> bytes | tuple[str, str]:
    """One message's JSON text to the JSON text of its event, or ``(code, reason)``.

    The event still goes through eventcore's own validation, as any ingested event does.
    """
    if len(message) > max_message_bytes:
        return "message_too_large", f"A message is at most {max_message_bytes} bytes of JSON."
    if not message.startswith(b"{"):
        return "invalid_message", "A message must be a JSON object."
    try:
        fields = _message_decoder.decode(message)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return "invalid_message", "The message is not well-formed JSON or is nested too deeply."
    problem = repeated_key(
        message,
        _MESSAGE_KEYS,
        [fields.properties, fields.traits, fields.context, fields.integrations],
        "The message",
    ) or _check_fields(fields)
    if problem is not None:
        return problem
    event_type: str = fields.event if fields.type == "track" else fields.type
    timestamp = _moment(fields.timestamp)
    if timestamp is None and fields.timestamp is not None:
        return "invalid_timestamp", "`timestamp` must be an ISO-8601 time with an offset."
    own_sent_at = _moment(fields.sentAt)
    if own_sent_at is None and fields.sentAt is not None:
        return "invalid_timestamp", "`sentAt` must be an ISO-8601 time with an offset."
    try:
        moment = corrected_time(
            timestamp, sent_at=own_sent_at or sent_at, received_at=received_at
        ).astimezone(UTC)
    except (OverflowError, ValueError):
        return "invalid_timestamp", "The skew-corrected `timestamp` is out of range."
    if b'"writeKey"' in message:
        message = _without_write_key(message)
    head = _encoder.encode(
        _Envelope(
            type=event_type,
            timestamp=moment,
            id=fields.messageId,
            user_id=_person(fields.userId),
            anonymous_id=_person(fields.anonymousId),
        )
    )
    return head[:-1] + b',"properties":' + message + b"}"


def _person(value: Any) -> str | None:
    """A message's ``userId`` or ``anonymousId`` as an event's person: a number as its JSON text
    (the SDKs send either), a blank string as none."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _encoder.encode(value).decode()
    return None


def _sent_at(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = _moment(value)
    if moment is None:
        raise InvalidRequest(
            "`sentAt` must be an ISO-8601 time with an offset.", code="invalid_sent_at"
        )
    return moment


def _write_key(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AuthenticationFailed("`writeKey` must be a string.", code="invalid_api_key")
    return value


def _moment(value: Any) -> datetime | None:
    """An ISO-8601 string with an offset as a datetime; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def _check_fields(fields: _Message) -> tuple[str, str] | None:
    """What is wrong with a message's fields for its type, if anything."""
    kind = fields.type
    if kind not in MESSAGE_TYPES:
        return "invalid_type", f"`type` must be one of {', '.join(MESSAGE_TYPES)}."
    for name in _IDS:
        value = getattr(fields, name)
        if not _is_id_or_null(value):
            return "invalid_identity", f"`{name}` must be a string or a number."
        person = _person(value)
        if person is not None and (len(person) > MAX_PERSON_LENGTH or "\x00" in person):
            return (
                "invalid_identity",
                f"`{name}` must be at most {MAX_PERSON_LENGTH} characters, without NUL.",
            )
    if not (_is_identity(fields.userId) or _is_identity(fields.anonymousId)):
        return "missing_identity", "A message needs a `userId` or an `anonymousId`."
    if fields.messageId is not None and not _is_key(fields.messageId, MAX_ID_LENGTH):
        return (
            "invalid_message_id",
            f"`messageId` must be a string of 1 to {MAX_ID_LENGTH} characters without NUL.",
        )
    if kind == "track" and not (_is_key(fields.event, MAX_TYPE_LENGTH) and fields.event.strip()):
        return (
            "invalid_event_name",
            f"A track message needs an `event` name of 1 to {MAX_TYPE_LENGTH} characters.",
        )
    required = _REQUIRED_IDS.get(kind)
    if required is not None and not _is_identity(getattr(fields, required)):
        return f"missing_{_snake(required)}", f"A {kind} message needs a `{required}`."
    for name in _OBJECTS[kind]:
        if bytes(getattr(fields, name))[:1] not in (b"{", b"n"):
            return "invalid_field", f"`{name}` must be a JSON object."
    for name in _TEXTS.get(kind, ()):
        if not isinstance(getattr(fields, name), str | None):
            return "invalid_field", f"`{name}` must be a string."
    return None


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _is_id_or_null(value: Any) -> bool:
    return value is None or _is_identity(value) or isinstance(value, str)


def _is_identity(value: Any) -> bool:
    """A user, group or alias id: a non-blank string or a number, as the SDKs send them."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_key(value: Any, max_length: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length and "\x00" not in value


def _without_write_key(message: bytes) -> bytes:
    fields = _object_decoder.decode(message)
    if fields.pop("writeKey", None) is None:
        return message
    return _encoder.encode(fields)


__all__ = [
    "ENVELOPE_BYTES",
    "MESSAGE_TYPES",
    "PROTOCOL_BATCH_BYTES",
    "PROTOCOL_MESSAGE_BYTES",
    "MappedMessages",
    "SegmentRequest",
    "basic_write_key",
    "map_messages",
    "message_to_event",
    "parse_batch",
    "parse_message",
    "protocol_limits",
]
