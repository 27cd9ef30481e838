"""Events: the wire form a client sends, its validation and limits, and the queued batch.

The rules here hold for every way an event arrives (the native API, a wire protocol translated
at the edge, code that embeds eventcore): one body check, one validation, one clock-skew rule.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta, Raw

from eventcore import defaults
from eventcore.errors import InvalidRequest, PayloadTooLarge

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")


class EventLimits(msgspec.Struct, frozen=True):
    """The documented limits of one ingest request."""

    max_events_per_batch: int = defaults.MAX_BATCH_EVENTS
    max_event_bytes: int = defaults.MAX_EVENT_BYTES
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES
    max_future: timedelta = defaults.MAX_FUTURE


class Event(msgspec.Struct, frozen=True, gc=False):
    """A validated event: ``id`` is its idempotency key inside its project.

    ``properties`` stays the client's own JSON text (always an object): it is checked once and
    never rebuilt as Python objects on the way to the store.
    """

    id: str
    type: str
    timestamp: datetime
    properties: Raw


class IngestBatch(msgspec.Struct, frozen=True):
    """One accepted request as it travels through the queue: one tenant, many events."""

    workspace_id: str
    project_id: str
    received_at: datetime
    events: list[Event]


class RejectedEvent(msgspec.Struct, frozen=True):
    index: int
    code: str
    message: str


class ValidatedBatch(msgspec.Struct, frozen=True):
    events: list[Event]
    rejected: list[RejectedEvent]


class _WireEvent(msgspec.Struct):
    type: Annotated[str, Meta(min_length=1, max_length=defaults.MAX_TYPE_LENGTH)]
    id: Annotated[str, Meta(min_length=1, max_length=defaults.MAX_ID_LENGTH)] | None = None
    timestamp: Annotated[datetime, Meta(tz=True)] | int | float | None = None
    properties: Raw = msgspec.field(default_factory=lambda: Raw(b"null"))


_EMPTY_OBJECT = Raw(b"{}")


class _Body(msgspec.Struct):
    """The top level of a native body: ``{"events": [...]}``, or one event (no ``events``).

    Decoding it reads the body once: every event's JSON text comes out as a slice of the body,
    and the other fields of a single event are skipped here and read by its own validation.
    """

    events: list[Raw] | msgspec.UnsetType = msgspec.UNSET


_body_decoder = msgspec.json.Decoder(_Body)
_event_decoder = msgspec.json.Decoder(_WireEvent)
_events_decoder = msgspec.json.Decoder(list[_WireEvent])
_batch_decoder = msgspec.json.Decoder(IngestBatch)
_encoder = msgspec.json.Encoder()


def decode_body(
    body: bytes, decoder: msgspec.json.Decoder[T], limits: EventLimits, shape: str
) -> T:
    """The top level of a request body that carries events, or raise for the whole request.

    The one body check of every ingest path, native or a protocol translated at the edge: at most
    ``limits.max_request_bytes``, UTF-8, well-formed JSON, and of the decoder's type (else
    ``invalid_body``, saying ``shape``: what the body must be).
    """
    if len(body) > limits.max_request_bytes:
        raise PayloadTooLarge(
            f"The request body is larger than {limits.max_request_bytes} bytes.",
            code="request_too_large",
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            "The request body is not valid UTF-8.", code="malformed_json"
        ) from None
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:
        raise InvalidRequest(shape, code="invalid_body") from None
    except (msgspec.DecodeError, RecursionError):
        raise InvalidRequest(
            "The request body is not well-formed JSON.", code="malformed_json"
        ) from None


def split_request(body: bytes, limits: EventLimits) -> list[bytes]:
    """Split a request body into the JSON text of each event, or raise for the whole request.

    A body is either one event object or ``{"events": [...]}``.
    """
    shape = 'The body must be a JSON event object or {"events": [...]}.'
    try:
        top = decode_body(body, _body_decoder, limits, shape)
    except InvalidRequest as exc:
        if exc.code == "invalid_body" and body.lstrip()[:1] == b"{":
            # An object whose "events" is not an array (of anything) says so.
            raise InvalidRequest(
                '"events" must be an array of event objects.', code="invalid_body"
            ) from None
        raise
    items = top.events
    if items is msgspec.UNSET:
        return [body]
    if not items:
        raise InvalidRequest('"events" is empty: send at least one event.', code="invalid_body")
    check_count(len(items), limits)
    return [bytes(item) for item in items]


def check_count(count: int, limits: EventLimits, what: str = "events") -> None:
    """Raise for a batch of more events (or of protocol ``what``) than one request may hold."""
    if count > limits.max_events_per_batch:
        raise PayloadTooLarge(
            f"A batch holds at most {limits.max_events_per_batch} {what}; this one has {count}.",
            code="too_many_events",
        )


def validate_events(
    raw_events: Sequence[bytes | Mapping[str, Any]], *, now: datetime, limits: EventLimits
) -> ValidatedBatch:
    """Validate each event on its own: valid ones go through, invalid ones are reported by index.

    An event is its JSON text, or a mapping (from code that embeds eventcore) that is first
    encoded to JSON so that both take exactly the same rules.
    """
    events: list[Event] = []
    rejected: list[RejectedEvent] = []
    wires = _decode_all(raw_events, limits)
    if wires is not None:
        # The common case, every event well-formed: decoded in one pass, checked one by one.
        for index, wire in enumerate(wires):
            checked = _checked(wire, now=now, limits=limits)
            if isinstance(checked, Event):
                events.append(checked)
            else:
                rejected.append(RejectedEvent(index=index, code=checked[0], message=checked[1]))
        return ValidatedBatch(events=events, rejected=rejected)
    for index, item in enumerate(raw_events):
        outcome: Event | tuple[str, str]
        if isinstance(item, bytes):
            outcome = validate_event(item, now=now, limits=limits)
        else:
            try:
                outcome = validate_event(_encoder.encode(item), now=now, limits=limits)
            except (TypeError, ValueError, OverflowError) as exc:
                outcome = ("invalid_event", f"The event cannot be encoded as JSON: {exc}")
        if isinstance(outcome, Event):
            events.append(outcome)
        else:
            code, message = outcome
            rejected.append(RejectedEvent(index=index, code=code, message=message))
    return ValidatedBatch(events=events, rejected=rejected)


def _decode_all(
    raw_events: Sequence[bytes | Mapping[str, Any]], limits: EventLimits
) -> list[_WireEvent] | None:
    """Every event of a batch of JSON texts decoded in one call, or None when one of them is
    not a well-formed event within the size limit (each is then validated on its own, so that
    it is reported by its index with its own reason)."""
    if len(raw_events) < 2:
        return None
    texts: list[bytes] = []
    for item in raw_events:
        if not isinstance(item, bytes) or len(item) > limits.max_event_bytes:
            return None
        texts.append(item)
    try:
        return _events_decoder.decode(b"[" + b",".join(texts) + b"]")
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


def validate_event(raw: bytes, *, now: datetime, limits: EventLimits) -> Event | tuple[str, str]:
    """One event's JSON text to an :class:`Event`, or ``(code, message)`` saying what is wrong."""
    if len(raw) > limits.max_event_bytes:
        return "event_too_large", f"An event is at most {limits.max_event_bytes} bytes of JSON."
    try:
        wire = _event_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return "invalid_event", str(exc)
    except (msgspec.DecodeError, RecursionError):
        return "invalid_event", "The event is not well-formed JSON or is nested too deeply."
    return _checked(wire, now=now, limits=limits)


def _checked(wire: _WireEvent, *, now: datetime, limits: EventLimits) -> Event | tuple[str, str]:
    """The rules of an event beyond its JSON shape: an :class:`Event`, or ``(code, message)``."""
    if not wire.type.strip():
        return "invalid_event", "`type` must contain a non-blank character."
    if "\x00" in wire.type or (wire.id is not None and "\x00" in wire.id):
        return "invalid_event", "`id` and `type` may not contain the NUL character (\\u0000)."
    properties = _check_properties(wire.properties)
    if isinstance(properties, tuple):
        return properties
    timestamp = _event_time(wire.timestamp, now=now, limits=limits)
    if isinstance(timestamp, tuple):
        return timestamp
    event_id = wire.id if wire.id is not None else new_event_id()
    return Event(id=event_id, type=wire.type, timestamp=timestamp, properties=properties)


def new_event_id() -> str:
    """An id for an event the client sent without one (it is then not protected from resends)."""
    return uuid.uuid4().hex


def _check_properties(raw: Raw) -> Raw | tuple[str, str]:
    text = bytes(raw)
    if text == b"null":
        return _EMPTY_OBJECT
    if not text.startswith(b"{"):
        return "invalid_properties", "`properties` must be a JSON object."
    if b"\\u0000" in text and _contains_nul(msgspec.json.decode(text)):
        return "invalid_properties", "`properties` may not contain the NUL character (\\u0000)."
    return raw


def _contains_nul(value: Any) -> bool:
    # A loop, not recursion: properties nested a few hundred deep (which the JSON decoder
    # accepts) would otherwise exhaust Python's stack and turn a bad event into a crash.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            if any("\x00" in key for key in item):
                return True
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _event_time(
    value: datetime | int | float | None, *, now: datetime, limits: EventLimits
) -> datetime | tuple[str, str]:
    if value is None:
        return now
    latest = now + limits.max_future
    if isinstance(value, datetime):
        try:
            moment = value.astimezone(UTC)
        except (OverflowError, ValueError):
            return "invalid_timestamp", "`timestamp` is outside the supported range."
    else:
        if not EPOCH.timestamp() <= value <= latest.timestamp():
            return (
                "invalid_timestamp",
                "`timestamp` in epoch seconds must be between 0 and now + 24 h.",
            )
        moment = datetime.fromtimestamp(value, UTC)
    if moment < EPOCH:
        return "invalid_timestamp", "`timestamp` may not be before 1970-01-01T00:00:00Z."
    if moment > latest:
        return "timestamp_in_future", "`timestamp` is more than 24 hours in the future."
    return moment


def corrected_time(
    timestamp: datetime | None, *, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """When an event happened, on the server's clock, from the sender's ``timestamp`` and the
    time it says it sent the event (``sent_at``).

    The sender's clock may be wrong by any amount, but it is wrong by the same amount at
    ``timestamp`` and at ``sent_at``; ``received_at - sent_at`` measures that error (plus the
    network delay) on the server's clock, so it is added to ``timestamp``. Without ``sent_at``
    the timestamp is taken as sent; without a timestamp, the event happened when received.
    """
    if timestamp is None:
        return received_at
    if sent_at is None:
        return timestamp
    return timestamp + (received_at - sent_at)


def encode_batch(batch: IngestBatch) -> bytes:
    return _encoder.encode(batch)


def decode_batch(message: bytes) -> IngestBatch:
    """Decode a queued batch; raises :class:`InvalidRequest` for a message that is not one."""
    try:
        return _batch_decoder.decode(message)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
        raise InvalidRequest(f"Not an ingest batch: {exc}", code="invalid_message") from None


class StoredEvent(msgspec.Struct, frozen=True):
    """An event as read back: ``seq`` is the store's insertion order, a tie-breaker for paging."""

    id: str
    type: str
    timestamp: datetime
    received_at: datetime
    properties: Raw
    seq: int


class EventCursor(msgspec.Struct, frozen=True, array_like=True):
    """Where the next page starts: strictly older than (timestamp, seq)."""

    timestamp: Annotated[datetime, Meta(tz=True)]
    seq: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(_encoder.encode(self)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> EventCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            return msgspec.json.decode(raw, type=cls)
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
            raise InvalidRequest(
                "`cursor` is not a cursor this API returned.", code="invalid_cursor"
            ) from None

    @classmethod
    def after(cls, event: StoredEvent) -> EventCursor:
        return cls(event.timestamp, event.seq)
