"""Events: the wire form a client sends, its validation and limits, and the queued batch.

The rules here hold for every way an event arrives (the native API, a wire protocol translated
at the edge, code that embeds eventcore): one body check, one validation, one clock-skew rule.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta, Raw

from eventcore import defaults
from eventcore.errors import InvalidRequest, PayloadTooLarge

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The earliest and the latest times a store holds: the bounds of a window given no start or end.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
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
    user_id: str | None = None
    anonymous_id: str | None = None

    @property
    def person(self) -> str | None:
        """Who did it: its ``user_id``, else its ``anonymous_id``; None for nobody known."""
        return self.user_id if self.user_id is not None else self.anonymous_id


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


_NULL = Raw(b"null")


_Person = Annotated[str, Meta(min_length=1, max_length=defaults.MAX_PERSON_LENGTH)]


class _WireEvent(msgspec.Struct):
    type: Annotated[str, Meta(min_length=1, max_length=defaults.MAX_TYPE_LENGTH)]
    id: Annotated[str, Meta(min_length=1, max_length=defaults.MAX_ID_LENGTH)] | None = None
    timestamp: Annotated[datetime, Meta(tz=True)] | int | float | None = None
    properties: Raw = msgspec.field(default_factory=lambda: _NULL)
    user_id: _Person | None = None
    anonymous_id: _Person | None = None


_EMPTY_OBJECT = Raw(b"{}")
_ESCAPE = b"\\u00"
_FIELD_KEYS = (
    b'"id"',
    b'"type"',
    b'"timestamp"',
    b'"properties"',
    b'"user_id"',
    b'"anonymous_id"',
)

# The integers every JSON reader reads back exactly as sent, the 64-bit range (msgspec, Go, Java,
# PostgreSQL's bigint; Python's json fails past 4,300 digits). Other numbers must be finite 64-bit
# floats: 1e999 would come back as infinity or an error.
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**63 - 1
_NUMBER_LIMITS = (
    "an integer must be from -2^63 to 2^63-1 and any other number a finite 64-bit float"
    " (at most about 1.8e308)"
)
# Every digit folded to 0, so that two substring searches find the only numbers that can be out of
# range: an exponent, or 19 digits in a row. Strings hold such text too (hex ids): then, and only
# then, the text is tokenized.
# (A translation table: every byte to itself, but 1-9 to 0 and E to e.)
_DIGIT_FOLD = bytes(range(49)) + b"0" * 9 + bytes(range(58, 69)) + b"e" + bytes(range(70, 256))
_LONG_RUN = b"0" * 19
_STRING_OR_RISKY_NUMBER = re.compile(
    rb'"[^"\\]*(?:\\.[^"\\]*)*"'
    rb"|(?<![0-9.])(-?[0-9]+(?:\.[0-9]+)?[eE][-+]?[0-9]+|-?[0-9]{19,}(?:\.[0-9]+)?)"
)


class _Body(msgspec.Struct):
    """The top level of a native body: ``{"events": [...]}``, or one event (no ``events``).

    Decoding it reads the body once: every event's JSON text comes out as a slice of the body,
    and the other fields of a single event are skipped here and read by its own validation.
    """

    events: list[Raw] | msgspec.UnsetType = msgspec.UNSET


_body_decoder = msgspec.json.Decoder(_Body)
_event_decoder = msgspec.json.Decoder(_WireEvent)
_events_decoder = msgspec.json.Decoder(list[_WireEvent])
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
    decoded = _decode_all(raw_events, limits)
    if decoded is not None:
        # The common case, every event well-formed: decoded in one pass, checked one by one.
        wires, joined = decoded
        suspects = _suspects(joined, wires)
        for index, (wire, text) in enumerate(zip(wires, raw_events, strict=True)):
            checked = _checked(wire, text, suspects, now=now, limits=limits)
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


class _Suspects(msgspec.Struct, frozen=True):
    """What the events of a batch, seen together, may hold: the field names one of them may give
    twice, and whether one may hold an unreadable number. Each event is checked for those only."""

    keys: tuple[bytes, ...] = _FIELD_KEYS
    numbers: bool = True


def _suspects(joined: bytes, wires: list[_WireEvent]) -> _Suspects:
    """What a batch (``joined``: the JSON array of its events) may hold, from a few searches.

    A field's name written outside the events' properties no more often than the events that
    have the field means that none gives it twice, unless an escape (which can spell a name)
    is written there too. The properties are counted (joined, once) only when the whole batch
    holds a name more often than that, as each event made of a Segment message does.
    """
    count = len(wires)
    present = {
        b'"id"': count - [wire.id for wire in wires].count(None),
        b'"type"': count,
        b'"timestamp"': count - [wire.timestamp for wire in wires].count(None),
        b'"properties"': count - [wire.properties for wire in wires].count(_NULL),
        b'"user_id"': count - [wire.user_id for wire in wires].count(None),
        b'"anonymous_id"': count - [wire.anonymous_id for wire in wires].count(None),
    }
    properties: bytes | None = None
    keys: list[bytes] = []
    for key in (_ESCAPE, *_FIELD_KEYS):
        written = joined.count(key)
        if written > present.get(key, 0):
            if properties is None:
                properties = b",".join(bytes(wire.properties) for wire in wires)
            written -= properties.count(key)
            if written > present.get(key, 0):
                if key == _ESCAPE:
                    keys = list(_FIELD_KEYS)
                    break
                keys.append(key)
    return _Suspects(keys=tuple(keys), numbers=_may_hold_unreadable_number(joined))


def _decode_all(
    raw_events: Sequence[bytes | Mapping[str, Any]], limits: EventLimits
) -> tuple[list[_WireEvent], bytes] | None:
    """Every event of a batch of JSON texts decoded in one call, with the JSON array they were
    decoded from, or None when one of them is not a well-formed event within the size limit
    (each is then validated on its own, so that it is reported by its index with its own
    reason)."""
    if len(raw_events) < 2:
        return None
    texts: list[bytes] = []
    for item in raw_events:
        if not isinstance(item, bytes) or len(item) > limits.max_event_bytes:
            return None
        texts.append(item)
    joined = b"[" + b",".join(texts) + b"]"
    try:
        return _events_decoder.decode(joined), joined
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
    return _checked(wire, raw, _Suspects(), now=now, limits=limits)


def _checked(
    wire: _WireEvent,
    text: bytes | Mapping[str, Any],
    suspects: _Suspects,
    *,
    now: datetime,
    limits: EventLimits,
) -> Event | tuple[str, str]:
    """The rules of an event (``wire``, decoded from the JSON ``text``) beyond its JSON shape:
    an :class:`Event`, or ``(code, message)``; only ``suspects`` can be wrong with it."""
    if suspects.keys and isinstance(text, bytes):
        repeated = repeated_key(text, suspects.keys, [wire.properties], "The event")
        if repeated is not None:
            return repeated
    if not wire.type.strip():
        return "invalid_event", "`type` must contain a non-blank character."
    if any(
        "\x00" in text for text in (wire.type, wire.id, wire.user_id, wire.anonymous_id) if text
    ):
        return (
            "invalid_event",
            "`id`, `type`, `user_id` and `anonymous_id` may not contain the NUL character"
            " (\\u0000).",
        )
    properties = _check_properties(wire.properties, numbers=suspects.numbers)
    if isinstance(properties, tuple):
        return properties
    timestamp = _event_time(wire.timestamp, now=now, limits=limits)
    if isinstance(timestamp, tuple):
        return timestamp
    event_id = wire.id if wire.id is not None else new_event_id()
    return Event(
        id=event_id,
        type=wire.type,
        timestamp=timestamp,
        properties=properties,
        user_id=wire.user_id,
        anonymous_id=wire.anonymous_id,
    )


def new_event_id() -> str:
    """An id for an event the client sent without one (it is then not protected from resends)."""
    return uuid.uuid4().hex


def _check_properties(raw: Raw, *, numbers: bool) -> Raw | tuple[str, str]:
    text = bytes(raw)
    if text == b"null":
        return _EMPTY_OBJECT
    if not text.startswith(b"{"):
        return "invalid_properties", "`properties` must be a JSON object."
    if b"\\u0000" in text and _contains_nul(msgspec.json.decode(text)):
        return "invalid_properties", "`properties` may not contain the NUL character (\\u0000)."
    unreadable = unreadable_number(text, "`properties`") if numbers else None
    return raw if unreadable is None else unreadable


def unreadable_number(text: bytes, where: str) -> tuple[str, str] | None:
    """``("invalid_number", message)`` if the JSON ``text`` holds a number that JSON readers cannot
    read back as sent (see :data:`MIN_INTEGER`), else None; ``where`` names the text for the message.

    Most texts hold no exponent and no 19 digits in a row, which two substring searches show.
    """
    if not _may_hold_unreadable_number(text):
        return None
    for match in _STRING_OR_RISKY_NUMBER.finditer(text):
        number = match.group(1)
        if number is not None and not _readable(number):
            shown = number.decode()
            if len(shown) > 40:
                shown = f"{shown[:24]}… ({len(shown)} characters)"
            return (
                "invalid_number",
                f"{where} holds the number {shown} at byte {match.start(1)}, which JSON readers"
                f" cannot read back: {_NUMBER_LIMITS}.",
            )
    return None


def _may_hold_unreadable_number(text: bytes) -> bool:
    folded = text.translate(_DIGIT_FOLD)
    return b"0e" in folded or _LONG_RUN in folded


def _readable(number: bytes) -> bool:
    if b"." in number or b"e" in number or b"E" in number:
        return math.isfinite(float(number))
    # At most 19 digits (and a sign) before int(), which refuses texts of thousands of digits.
    return len(number.lstrip(b"-")) <= 19 and MIN_INTEGER <= int(number) <= MAX_INTEGER


def repeated_key(
    text: bytes, keys: Sequence[bytes], inner: Sequence[bytes | Raw], where: str
) -> tuple[str, str] | None:
    """``("duplicate_key", message)`` naming the first of ``keys`` (each a quoted JSON string) that
    the JSON object ``text`` gives more than once at its top level, else None; ``where`` names the
    object for the message.

    ``inner`` holds the texts of values nested in ``text`` already decoded from it: a key's name
    found within them is not at the top level. So the common case costs a few substring counts,
    and ``text`` is parsed again only when a name appears twice outside them, or an escape
    (``\\u00..``, which can spell a name) does.
    """
    parts: list[bytes] | None = None
    for key in (_ESCAPE, *keys):
        count = text.count(key)
        if count > 1 or (count and key == _ESCAPE):
            parts = parts or [bytes(part) for part in inner]
            outside = count - sum(part.count(key) for part in parts)
            if outside > 1 or (outside and key == _ESCAPE):
                break
    else:
        return None
    top: list[list[tuple[str, Any]]] = []
    try:
        # Only the members of each object are kept (the outermost comes last); numbers are
        # not converted, so that none is too long for Python's reader.
        json.loads(text, object_pairs_hook=top.append, parse_int=len, parse_float=len)
    except RecursionError:
        # Python's reader stops a few levels short of msgspec's (about 1,000): refuse rather
        # than guess.
        return (
            "invalid_event",
            f"{where} is nested too deeply to check that it gives each field once.",
        )
    names = [name for name, _value in top[-1]] if top else []
    for key in keys:
        name = key[1:-1].decode()
        if names.count(name) > 1:
            return "duplicate_key", f"{where} gives `{name}` more than once."
    return None


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


class StoredEvent(msgspec.Struct, frozen=True):
    """An event as read back: ``seq`` is the store's insertion order, a tie-breaker for paging."""

    id: str
    type: str
    timestamp: datetime
    received_at: datetime
    properties: Raw
    seq: int
    user_id: str | None = None
    anonymous_id: str | None = None

    @property
    def person(self) -> str | None:
        return self.user_id if self.user_id is not None else self.anonymous_id


class EventCursor(msgspec.Struct, frozen=True, array_like=True):
    """Where the next page starts: strictly older than (timestamp, seq).

    It reaches clients only sealed, as :class:`eventcore.cursors.CursorCodec` makes it.
    """

    timestamp: Annotated[datetime, Meta(tz=True)]
    seq: int

    @classmethod
    def after(cls, event: StoredEvent) -> EventCursor:
        return cls(event.timestamp, event.seq)
