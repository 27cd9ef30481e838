"""The Segment protocol at the HTTP edge: parsing requests, write keys, mapping messages to events
(with the core's clock-skew rule), and the body check it shares with the native API."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventcore.entrypoints.http.segment.protocol import (
    ENVELOPE_BYTES,
    MESSAGE_TYPES,
    PROTOCOL_BATCH_BYTES,
    PROTOCOL_MESSAGE_BYTES,
    MappedMessages,
    SegmentRequest,
    basic_write_key,
    map_messages,
    message_to_event,
    parse_batch,
    parse_message,
    protocol_limits,
)
from eventcore.errors import AuthenticationFailed, EventcoreError, InvalidRequest, PayloadTooLarge
from eventcore.events import (
    EventLimits,
    RejectedEvent,
    split_request,
    validate_event,
)

LIMITS = EventLimits()
RECEIVED = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)
SENT = "2026-01-10T11:00:00+00:00"  # the sender's clock is an hour behind the server's


def message(kind: str = "track", **fields: Any) -> dict[str, Any]:
    """A message as the SDKs build it, with ``fields`` added or replaced (None removes one)."""
    base: dict[str, Any] = {
        "type": kind,
        "messageId": "m-1",
        "timestamp": "2026-01-10T10:59:00.000+00:00",
        "userId": "user-1",
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        "integrations": {},
    }
    if kind == "track":
        base.update(event="Order Completed", properties={"total": 42})
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def to_event(text: bytes, sent_at: datetime | None = None) -> dict[str, Any] | tuple[str, str]:
    """The event a message becomes, decoded, or the rejection."""
    outcome = message_to_event(
        text, sent_at=sent_at, received_at=RECEIVED, max_message_bytes=LIMITS.max_event_bytes
    )
    if isinstance(outcome, tuple):
        return outcome
    decoded: dict[str, Any] = msgspec.json.decode(outcome)
    return decoded


def code_of(outcome: dict[str, Any] | tuple[str, str]) -> str:
    assert isinstance(outcome, tuple), outcome
    return outcome[0]


# --- parsing a /v1/batch body ------------------------------------------------------------------


def test_a_batch_body_gives_each_message_text_and_the_batch_fields() -> None:
    """A batch is split into each message's own JSON text, with its sentAt and writeKey."""
    body = b'{"batch": [{"type": "identify", "userId": 1}, {"type":"alias"}], "sentAt": "2026-01-10T11:00:00Z", "writeKey": "ek_x"}'

    parsed = parse_batch(body, LIMITS)

    assert parsed.messages == [b'{"type": "identify", "userId": 1}', b'{"type":"alias"}']
    assert parsed.sent_at == datetime(2026, 1, 10, 11, tzinfo=UTC)
    assert parsed.write_key == "ek_x"


def test_a_batch_without_sent_at_or_write_key_has_neither() -> None:
    """sentAt and writeKey are optional: a key may come in a header, and sentAt only corrects."""
    parsed = parse_batch(b'{"batch": [{}]}', LIMITS)

    assert (parsed.sent_at, parsed.write_key) == (None, None)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[]", "invalid_body"),
        (b'{"batch": {}}', "invalid_body"),
        (b'{"events": [{}]}', "invalid_body"),
        (b'{"batch": []}', "invalid_body"),
        (b'{"batch": [{}], "sentAt": "yesterday"}', "invalid_sent_at"),
        (b'{"batch": [{}], "sentAt": "2026-01-10T11:00:00"}', "invalid_sent_at"),
    ],
)
def test_a_body_that_is_not_a_batch_is_refused_whole(body: bytes, code: str) -> None:
    """Malformed JSON, a body without a non-empty batch, or a bad sentAt is a bad request."""
    with pytest.raises(InvalidRequest) as refused:
        parse_batch(body, LIMITS)
    assert refused.value.code == code


def test_a_write_key_that_is_not_a_string_is_an_authentication_failure() -> None:
    """A writeKey of the wrong JSON type can only be a wrong key."""
    with pytest.raises(AuthenticationFailed):
        parse_batch(b'{"batch": [{}], "writeKey": 42}', LIMITS)


def test_a_batch_over_the_message_count_limit_is_too_large() -> None:
    """More messages than the per-request event limit is refused whole."""
    limits = EventLimits(max_events_per_batch=2)

    with pytest.raises(PayloadTooLarge) as refused:
        parse_batch(b'{"batch": [{}, {}, {}]}', limits)
    assert refused.value.code == "too_many_events"


def test_a_body_over_the_byte_limit_is_too_large() -> None:
    """A body larger than the per-request byte limit is refused before it is parsed."""
    limits = EventLimits(max_request_bytes=10)

    with pytest.raises(PayloadTooLarge) as refused:
        parse_batch(b'{"batch": [{}, {}]}', limits)
    assert refused.value.code == "request_too_large"


def test_the_default_limits_hold_what_the_protocol_documents() -> None:
    """eventcore's default limits fit a 32 KB message and a 500 KB batch."""
    assert LIMITS.max_event_bytes >= PROTOCOL_MESSAGE_BYTES
    assert LIMITS.max_request_bytes >= PROTOCOL_BATCH_BYTES
    assert protocol_limits(LIMITS).max_event_bytes == LIMITS.max_event_bytes + ENVELOPE_BYTES
    assert protocol_limits(LIMITS).max_request_bytes == LIMITS.max_request_bytes


@pytest.mark.parametrize(
    ("body", "limits"),
    [
        (b'{"batch": [{}, {}]}', EventLimits(max_request_bytes=10)),
        (b"\xff\xfe", LIMITS),
        (b'{"batch": ["\xc3"]}', LIMITS),
        (b'{"batch": [', LIMITS),
    ],
    ids=["too large", "not UTF-8", "broken UTF-8", "malformed"],
)
def test_every_ingest_path_refuses_a_bad_body_alike(body: bytes, limits: EventLimits) -> None:
    """A body too large, not UTF-8 or not JSON meets the core's one body check on every path:
    the same error, code and message from /v1/ingest, /v1/batch and /v1/<type>."""
    refusals: set[tuple[type[EventcoreError], str, str]] = set()
    for parse in (
        lambda: split_request(body, limits),
        lambda: parse_batch(body, limits),
        lambda: parse_message(body, "track", limits),
    ):
        with pytest.raises(EventcoreError) as refused:
            parse()
        refusals.add((type(refused.value), refused.value.code, str(refused.value)))

    assert len(refusals) == 1, refusals


# --- parsing a /v1/<type> body -----------------------------------------------------------------


def test_a_single_message_takes_its_type_from_the_path() -> None:
    """A message sent to /v1/<type> without a type gets that type."""
    parsed = parse_message(b'{"userId": "u", "event": "E"}', "track", LIMITS)

    assert msgspec.json.decode(parsed.messages[0]) == {"type": "track", "userId": "u", "event": "E"}


def test_a_single_message_with_a_null_type_takes_the_paths() -> None:
    """A null type counts as absent: the path's type takes its place."""
    parsed = parse_message(b'{"type": null, "anonymousId": "a"}', "screen", LIMITS)

    assert msgspec.json.decode(parsed.messages[0]) == {"type": "screen", "anonymousId": "a"}


def test_a_single_message_of_another_type_is_refused() -> None:
    """A body whose type differs from the path's is a bad request."""
    with pytest.raises(InvalidRequest) as refused:
        parse_message(b'{"type": "identify", "userId": "u"}', "track", LIMITS)
    assert refused.value.code == "type_mismatch"


def test_a_single_message_gives_up_its_write_key_and_keeps_its_sent_at() -> None:
    """writeKey is taken out of the message (never stored); sentAt is read and kept."""
    body = encode({"userId": "u", "writeKey": "ek_secret", "sentAt": SENT})

    parsed = parse_message(body, "identify", LIMITS)

    assert parsed.write_key == "ek_secret"
    assert parsed.sent_at == datetime.fromisoformat(SENT)
    assert b"ek_secret" not in parsed.messages[0]
    assert msgspec.json.decode(parsed.messages[0])["sentAt"] == SENT


@pytest.mark.parametrize("body", [b"[1]", b'"track"', b"{"])
def test_a_single_message_that_is_not_an_object_is_refused(body: bytes) -> None:
    """The body of a single-message route must be a JSON object."""
    with pytest.raises(InvalidRequest):
        parse_message(body, "page", LIMITS)


# --- write keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ek_abc123", "ek_with:colon-after"])
def test_basic_credentials_carry_the_write_key_as_user_name(key: str) -> None:
    """`Basic base64("<key>:")` gives the key back, up to the first colon."""
    credentials = base64.b64encode(f"{key}:".encode()).decode()

    assert basic_write_key(credentials) == key.partition(":")[0]


@pytest.mark.parametrize("credentials", ["not base64!", "////", base64.b64encode(b"\xff").decode()])
def test_malformed_basic_credentials_are_an_authentication_failure(credentials: str) -> None:
    """Credentials that do not decode to text are refused as a bad key, never a crash."""
    with pytest.raises(AuthenticationFailed):
        basic_write_key(credentials)


# --- mapping one message -----------------------------------------------------------------------


def test_a_track_message_is_an_event_named_by_its_event() -> None:
    """Track: the event type is `event`, the id is `messageId`, the payload the whole message."""
    sent = message("track")

    event = to_event(encode(sent))

    assert isinstance(event, dict)
    assert event["id"] == "m-1"
    assert event["type"] == "Order Completed"
    assert event["properties"] == sent


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("identify", {"traits": {"email": "a@example.com"}}),
        ("page", {"name": "Home", "category": "Docs", "properties": {"path": "/"}}),
        ("screen", {"name": "Settings", "category": None}),
        ("group", {"groupId": "acme", "traits": {"plan": "pro"}}),
        ("alias", {"previousId": "anon-1"}),
    ],
)
def test_other_messages_are_events_named_by_their_type(kind: str, fields: dict[str, Any]) -> None:
    """Identify, page, screen, group and alias: the event type is the message type."""
    sent = message(kind, **fields)

    event = to_event(encode(sent))

    assert isinstance(event, dict)
    assert (event["id"], event["type"], event["properties"]) == ("m-1", kind, sent)


def test_the_payload_is_the_message_text_as_sent() -> None:
    """The message's own JSON text (spacing, key order, number spelling) becomes the payload."""
    text = b'{"type": "identify",  "userId": "u", "traits": {"n": 1.50, "z": 1, "a": 2}}'

    outcome = message_to_event(
        text, sent_at=None, received_at=RECEIVED, max_message_bytes=LIMITS.max_event_bytes
    )

    assert isinstance(outcome, bytes)
    assert outcome.endswith(b',"properties":' + text + b"}")


@pytest.mark.parametrize(
    ("ids", "person"),
    [
        ({"userId": "u-7"}, {"user_id": "u-7"}),
        ({"userId": None, "anonymousId": "a-1"}, {"anonymous_id": "a-1"}),
        ({"userId": 42, "anonymousId": "a-1"}, {"user_id": "42", "anonymous_id": "a-1"}),
        ({"userId": "  ", "anonymousId": 1.5}, {"anonymous_id": "1.5"}),
    ],
)
def test_a_messages_ids_become_its_events_person(
    ids: dict[str, Any], person: dict[str, str]
) -> None:
    """`userId` and `anonymousId` map to the event's `user_id` and `anonymous_id` (numbers as their
    JSON text, blanks as absent)."""
    event = to_event(encode(message("track", **ids)))

    assert isinstance(event, dict)
    assert {k: event[k] for k in ("user_id", "anonymous_id") if k in event} == person


@pytest.mark.parametrize("value", ["x" * 129, "a\x00b", 10**130])
def test_an_id_no_event_can_hold_is_refused_as_invalid_identity(value: Any) -> None:
    """An id over 128 characters (as text) or with NUL cannot be an event's person."""
    outcome = message_to_event(
        encode(message("track", userId=value)),
        sent_at=None,
        received_at=RECEIVED,
        max_message_bytes=LIMITS.max_event_bytes,
    )

    assert isinstance(outcome, tuple)
    assert outcome[0] == "invalid_identity"
    assert "128" in outcome[1]


def test_a_write_key_inside_a_message_is_never_stored() -> None:
    """A message carrying writeKey keeps everything but the key."""
    sent = message("identify", writeKey="ek_secret")

    event = to_event(encode(sent))

    assert isinstance(event, dict)
    assert "writeKey" not in event["properties"]
    assert event["properties"] == {k: v for k, v in sent.items() if k != "writeKey"}


def test_fields_of_other_types_and_nulls_are_left_alone() -> None:
    """Other types' fields (any value) and nulls (as absent) pass unchecked into the payload as sent."""
    sent = message("identify", properties=5, name=7, groupId=[], event=12)
    text = encode({**sent, "traits": None, "context": None, "previousId": None})

    outcome = message_to_event(
        text, sent_at=None, received_at=RECEIVED, max_message_bytes=LIMITS.max_event_bytes
    )

    assert outcome == (
        b'{"type":"identify","timestamp":"2026-01-10T10:59:00Z","id":"m-1","user_id":"user-1",'
        b'"properties":' + text + b"}"
    )


def test_a_message_without_message_id_is_left_for_eventcore_to_name() -> None:
    """Without messageId the event has no id, so eventcore gives it one."""
    event = to_event(encode(message("identify", messageId=None)))

    assert isinstance(event, dict)
    assert "id" not in event


@pytest.mark.parametrize(
    "identity",
    [{"userId": "u"}, {"anonymousId": "a"}, {"userId": 42}, {"userId": None, "anonymousId": "a"}],
)
def test_a_user_id_or_an_anonymous_id_is_enough(identity: dict[str, Any]) -> None:
    """Either id (a string or a number, as the SDKs stringify ids) identifies the sender."""
    sent = {**message("identify", userId=None), **identity}

    assert isinstance(to_event(encode(sent)), dict)


@pytest.mark.parametrize(
    "identity",
    [{}, {"userId": None, "anonymousId": None}, {"userId": ""}, {"anonymousId": "  "}],
)
def test_a_message_without_user_id_and_anonymous_id_is_rejected(identity: dict[str, Any]) -> None:
    """No usable userId and no anonymousId: the message is rejected."""
    sent = {**message("identify", userId=None), **identity}

    assert code_of(to_event(encode(sent))) == "missing_identity"


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        (message("track", event=None), "invalid_event_name"),
        (message("track", event=" "), "invalid_event_name"),
        (message("track", event="e" * 129), "invalid_event_name"),
        (message("track", event=7), "invalid_event_name"),
        (message("alias"), "missing_previous_id"),
        (message("group"), "missing_group_id"),
        (message("identify", type="purchase"), "invalid_type"),
        (message("identify", type=None), "invalid_type"),
        (message("identify", messageId=""), "invalid_message_id"),
        (message("identify", messageId="m" * 129), "invalid_message_id"),
        (message("identify", messageId=12), "invalid_message_id"),
        (message("identify", messageId="a\x00b"), "invalid_message_id"),
        (message("identify", timestamp="2026-01-10T10:59:00"), "invalid_timestamp"),
        (message("identify", timestamp=1767999999), "invalid_timestamp"),
        (message("identify", timestamp="soon"), "invalid_timestamp"),
        (message("identify", sentAt="soon"), "invalid_timestamp"),
        (message("identify", userId=True), "invalid_identity"),
        (message("identify", anonymousId={"id": 1}, userId="u"), "invalid_identity"),
        (message("identify", traits=[1]), "invalid_field"),
        (message("track", properties="cheap"), "invalid_field"),
        (message("group", groupId="g", context=5), "invalid_field"),
        (message("page", name=5), "invalid_field"),
        (message("screen", category={}), "invalid_field"),
    ],
)
def test_a_message_breaking_a_protocol_rule_is_rejected(sent: dict[str, Any], code: str) -> None:
    """Each rule of the protocol has its own rejection code."""
    assert code_of(to_event(encode(sent))) == code


@pytest.mark.parametrize("text", [b"[1, 2]", b'"identify"', b"3", b"{"])
def test_a_message_that_is_not_an_object_is_rejected(text: bytes) -> None:
    """A batch item that is not a JSON object is rejected alone."""
    assert code_of(to_event(text)) == "invalid_message"


def test_a_message_as_large_as_an_event_may_be_is_accepted_and_one_byte_more_is_not() -> None:
    """The per-event byte limit applies to the message itself; its event passes eventcore."""
    sent = message("track", properties={"blob": ""})
    padding = LIMITS.max_event_bytes - len(encode(sent))
    largest = encode(message("track", properties={"blob": "x" * padding}))
    assert len(largest) == LIMITS.max_event_bytes

    outcome = message_to_event(
        largest, sent_at=None, received_at=RECEIVED, max_message_bytes=LIMITS.max_event_bytes
    )
    over = encode(message("track", properties={"blob": "x" * (padding + 1)}))

    assert isinstance(outcome, bytes)
    checked = validate_event(outcome, now=RECEIVED, limits=protocol_limits(LIMITS))
    assert not isinstance(checked, tuple), checked
    assert code_of(to_event(over)) == "message_too_large"


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=128)


@settings(max_examples=100)
@given(message_id=names, event=names.filter(lambda text: bool(text.strip())))
def test_the_envelope_around_a_message_fits_the_allowance(message_id: str, event: str) -> None:
    """Whatever the id and event name, an event is at most ENVELOPE_BYTES larger than its message."""
    text = encode(message("track", messageId=message_id, event=event))

    outcome = message_to_event(
        text, sent_at=None, received_at=RECEIVED, max_message_bytes=LIMITS.max_event_bytes
    )

    assert isinstance(outcome, bytes)
    assert len(outcome) - len(text) <= ENVELOPE_BYTES
    checked = validate_event(outcome, now=RECEIVED, limits=protocol_limits(LIMITS))
    assert not isinstance(checked, tuple), checked
    assert (checked.id, checked.type) == (message_id, event)


# --- clock skew --------------------------------------------------------------------------------


def test_the_stored_time_is_corrected_by_the_senders_clock_error() -> None:
    """With sentAt, the time is timestamp + (received_at - sentAt)."""
    event = to_event(encode(message("identify")), sent_at=datetime.fromisoformat(SENT))

    assert isinstance(event, dict)
    # Sent at 11:00 on the sender's clock, received at 12:00: the 10:59 event happened at 11:59.
    assert event["timestamp"] == "2026-01-10T11:59:00Z"


def test_a_messages_own_sent_at_wins_over_the_batchs() -> None:
    """A message that carries its own sentAt is corrected by it."""
    sent = message("identify", sentAt="2026-01-10T10:00:00+00:00")

    event = to_event(encode(sent), sent_at=datetime.fromisoformat(SENT))

    assert isinstance(event, dict)
    assert event["timestamp"] == "2026-01-10T12:59:00Z"


def test_without_sent_at_the_timestamp_is_kept_and_without_timestamp_it_is_the_receipt() -> None:
    """No sentAt: timestamp as sent; no timestamp: the time received."""
    as_sent = to_event(encode(message("identify", timestamp="2026-01-10T12:59:00.5+02:00")))
    untimed = to_event(encode(message("identify", timestamp=None)), sent_at=RECEIVED)

    assert isinstance(as_sent, dict)
    assert isinstance(untimed, dict)
    assert as_sent["timestamp"] == "2026-01-10T10:59:00.500000Z"
    assert untimed["timestamp"] == "2026-01-10T12:00:00Z"


def test_a_correction_out_of_range_is_a_rejection_not_a_crash() -> None:
    """A skew that pushes the time beyond what a datetime holds rejects the message."""
    sent = message("identify", timestamp="9999-12-31T00:00:00+00:00")

    outcome = to_event(encode(sent), sent_at=datetime(1, 1, 2, tzinfo=UTC))

    assert code_of(outcome) == "invalid_timestamp"


# --- mapping a request -------------------------------------------------------------------------


def test_rejections_keep_the_index_of_their_message_in_the_request() -> None:
    """Rejected messages are reported by their index; later rejections map back through positions."""
    request = SegmentRequest(
        messages=[
            encode(message("identify", messageId="a")),
            encode(message("identify", userId=None)),
            encode(message("identify", messageId="c")),
            b"[]",
        ]
    )

    mapped = map_messages(request, received_at=RECEIVED, max_message_bytes=LIMITS.max_event_bytes)

    assert mapped.positions == [0, 2]
    assert [(r.index, r.code) for r in mapped.rejected] == [
        (1, "missing_identity"),
        (3, "invalid_message"),
    ]
    later = [RejectedEvent(index=1, code="timestamp_in_future", message="too late")]
    assert [(r.index, r.code) for r in mapped.merge(later)] == [
        (1, "missing_identity"),
        (2, "timestamp_in_future"),
        (3, "invalid_message"),
    ]


def test_every_message_type_of_the_protocol_is_mapped() -> None:
    """The six message types of the protocol all become events."""
    kinds = {
        "track": {},
        "identify": {},
        "page": {},
        "screen": {},
        "group": {"groupId": "g"},
        "alias": {"previousId": "p"},
    }
    assert set(kinds) == set(MESSAGE_TYPES)
    request = SegmentRequest(
        messages=[encode(message(kind, **extra)) for kind, extra in kinds.items()]
    )

    mapped = map_messages(request, received_at=RECEIVED, max_message_bytes=LIMITS.max_event_bytes)

    assert mapped.rejected == []
    assert mapped.positions == list(range(6))
    assert isinstance(mapped, MappedMessages)
