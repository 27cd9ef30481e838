"""Event validation: the documented rules for ids, types, timestamps, properties and sizes, and
the clock-skew rule that corrects a sender's timestamp."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventcore import EventsRejected, InvalidRequest, PayloadTooLarge
from eventcore.events import EventLimits, corrected_time
from tests.unit.conftest import NOW, App, Tenant
from tests.unit.helpers import body, event


async def _outcome(app: App, tenant: Tenant, wire: dict[str, Any]) -> str:
    """``accepted`` or the per-event error code of one event submitted alone."""
    try:
        receipt = await app.ingestor.submit(tenant.ref, [event("ok"), wire])
    except EventsRejected as exc:  # pragma: no cover - the first event is always valid
        return exc.rejected[0].code
    if receipt.rejected:
        assert [r.index for r in receipt.rejected] == [1]
        return receipt.rejected[0].code
    return "accepted"


@pytest.mark.parametrize(
    ("event_id", "accepted"),
    [("x", True), ("x" * 128, True), ("é" * 128, True), ("", False), ("x" * 129, False)],
)
async def test_event_id_length(app: App, tenant: Tenant, event_id: str, accepted: bool) -> None:
    """An id is 1 to 128 characters."""
    outcome = await _outcome(app, tenant, event(event_id))
    assert (outcome == "accepted") is accepted, outcome


async def test_event_id_must_be_a_string(app: App, tenant: Tenant) -> None:
    """An id that is not a string is rejected."""
    assert await _outcome(app, tenant, {"id": 7, "type": "click"}) == "invalid_event"


async def test_event_without_id_gets_one(app: App, tenant: Tenant) -> None:
    """An event sent without an id is stored under an id the server made up."""
    receipt = await app.ingestor.submit(tenant.ref, [event(None), event(None)])
    assert receipt.accepted == 2
    stored = app.stored(tenant.ref)
    assert len(stored) == 2
    assert all(e.id for e in stored)
    assert stored[0].id != stored[1].id


@pytest.mark.parametrize(
    ("event_type", "accepted"),
    [("a", True), ("t" * 128, True), ("", False), ("   ", False), ("t" * 129, False)],
)
async def test_event_type_length(app: App, tenant: Tenant, event_type: str, accepted: bool) -> None:
    """A type is 1 to 128 characters with at least one that is not blank."""
    outcome = await _outcome(app, tenant, event("e", event_type))
    assert (outcome == "accepted") is accepted, outcome


async def test_event_type_is_required(app: App, tenant: Tenant) -> None:
    """An event without a type is rejected."""
    assert await _outcome(app, tenant, {"id": "e"}) == "invalid_event"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-01-10T10:00:00Z", datetime(2026, 1, 10, 10, tzinfo=UTC)),
        ("2026-01-10T12:00:00+02:00", datetime(2026, 1, 10, 10, tzinfo=UTC)),
        ("2026-01-10T05:30:00.250-04:30", datetime(2026, 1, 10, 10, 0, 0, 250000, tzinfo=UTC)),
        (1_768_039_200, datetime(2026, 1, 10, 10, tzinfo=UTC)),
        (1_768_039_200.5, datetime(2026, 1, 10, 10, 0, 0, 500000, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
async def test_timestamp_forms(
    app: App, tenant: Tenant, timestamp: str | float, expected: datetime
) -> None:
    """RFC 3339 with any offset and epoch seconds are stored as the same UTC instant."""
    receipt = await app.ingestor.submit(tenant.ref, [event("t", timestamp=timestamp)])
    assert receipt.accepted == 1
    (stored,) = app.stored(tenant.ref)
    assert stored.timestamp == expected
    assert stored.timestamp.utcoffset() == timedelta(0)


async def test_missing_timestamp_is_the_time_received(app: App, tenant: Tenant) -> None:
    """An event without a timestamp happened when it was received."""
    await app.ingestor.submit(tenant.ref, [event("t")])
    (stored,) = app.stored(tenant.ref)
    assert stored.timestamp == NOW
    assert stored.received_at == NOW


@pytest.mark.parametrize(
    "timestamp",
    ["2026-01-10T10:00:00", "2026-01-10", "yesterday", "2026-13-01T00:00:00Z", True, [1], {}],
)
async def test_timestamp_without_offset_or_malformed_is_rejected(
    app: App, tenant: Tenant, timestamp: Any
) -> None:
    """A timestamp must be RFC 3339 with a UTC offset, or a number of epoch seconds."""
    receipt = await app.ingestor.submit(tenant.ref, [event("ok"), event("t", timestamp=timestamp)])
    assert receipt.accepted == 1
    (rejected,) = receipt.rejected
    assert rejected.index == 1
    assert "timestamp" in rejected.message


@pytest.mark.parametrize(
    "timestamp",
    [
        (NOW + timedelta(hours=24)).isoformat(),
        (NOW + timedelta(hours=24)).timestamp(),
        (NOW + timedelta(hours=23, minutes=59))
        .astimezone(timezone(timedelta(hours=-7)))
        .isoformat(),
    ],
)
async def test_timestamp_up_to_24_hours_ahead_is_accepted(
    app: App, tenant: Tenant, timestamp: str | float
) -> None:
    """A timestamp at most 24 hours in the future is accepted (clocks drift)."""
    assert await _outcome(app, tenant, event("t", timestamp=timestamp)) == "accepted"


@pytest.mark.parametrize(
    "timestamp",
    [
        (NOW + timedelta(hours=24, seconds=1)).isoformat(),
        (NOW + timedelta(days=365)).astimezone(timezone(timedelta(hours=5))).isoformat(),
    ],
)
async def test_timestamp_more_than_24_hours_ahead_is_rejected(
    app: App, tenant: Tenant, timestamp: str
) -> None:
    """A timestamp more than 24 hours in the future is rejected as such."""
    assert await _outcome(app, tenant, event("t", timestamp=timestamp)) == "timestamp_in_future"


@pytest.mark.parametrize(
    "timestamp",
    [
        (NOW + timedelta(hours=24, seconds=1)).timestamp(),
        10**12,
        1e300,
        -1,
        -0.5,
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:30:00+01:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
async def test_timestamp_out_of_range_is_rejected(
    app: App, tenant: Tenant, timestamp: str | float
) -> None:
    """Timestamps before 1970, beyond the supported range or far ahead are rejected."""
    outcome = await _outcome(app, tenant, event("t", timestamp=timestamp))
    assert outcome in {"invalid_timestamp", "timestamp_in_future"}


@pytest.mark.parametrize("properties", [[], [1, 2], "text", 3, 1.5, True])
async def test_properties_must_be_an_object(app: App, tenant: Tenant, properties: Any) -> None:
    """`properties` is a JSON object or nothing."""
    outcome = await _outcome(app, tenant, event("p", properties=properties))
    assert outcome == "invalid_properties"


async def test_properties_null_or_missing_become_empty_object(app: App, tenant: Tenant) -> None:
    """Missing or null properties are stored as an empty object."""
    await app.ingestor.submit(tenant.ref, [event("a"), event("b", properties=None)])
    assert sorted(bytes(e.properties) for e in app.stored(tenant.ref)) == [b"{}", b"{}"]


async def test_properties_are_stored_as_sent(app: App, tenant: Tenant) -> None:
    """Properties keep the client's JSON, nested values included."""
    properties = {"path": "/a", "n": [1, 2.5, None, {"deep": True}], "ünï": "☃"}
    await app.ingestor.submit(tenant.ref, [event("p", properties=properties)])
    (stored,) = app.stored(tenant.ref)
    assert msgspec.json.decode(stored.properties) == properties


@pytest.mark.parametrize(
    "properties",
    [{"a": "x\x00y"}, {"a\x00": 1}, {"a": [{"b": ["\x00"]}]}],
)
async def test_nul_in_properties_is_rejected(app: App, tenant: Tenant, properties: Any) -> None:
    """The NUL character is refused anywhere in properties (PostgreSQL cannot store it)."""
    assert await _outcome(app, tenant, event("p", properties=properties)) == "invalid_properties"


async def test_escaped_backslash_u0000_is_not_nul(app: App, tenant: Tenant) -> None:
    """The six characters `\\u0000` written literally are not a NUL and are accepted."""
    raw = b'{"id":"p","type":"click","properties":{"a":"\\\\u0000"}}'
    receipt = await app.ingestor.submit(tenant.ref, [raw])
    assert receipt.accepted == 1
    (stored,) = app.stored(tenant.ref)
    assert msgspec.json.decode(stored.properties) == {"a": "\\u0000"}


async def test_nul_in_raw_json_properties_is_rejected(app: App, tenant: Tenant) -> None:
    """A NUL escaped in the JSON text of an event is refused like one in a mapping."""
    raw = b'{"id":"p","type":"click","properties":{"a":"x\\u0000"}}'
    with pytest.raises(EventsRejected) as caught:
        await app.ingestor.submit(tenant.ref, [raw])
    assert caught.value.rejected[0].code == "invalid_properties"


async def test_event_too_large_is_rejected_alone(app: App, tenant: Tenant) -> None:
    """An event over the per-event size limit is rejected; its neighbours are stored."""
    limit = app.ingestor.limits.max_event_bytes
    big = event("big", properties={"blob": "x" * limit})
    receipt = await app.ingestor.ingest(tenant.api_key, body(event("a"), big, event("b")))
    assert receipt.accepted == 2
    assert [(r.index, r.code) for r in receipt.rejected] == [(1, "event_too_large")]
    assert {e.id for e in app.stored(tenant.ref)} == {"a", "b"}


async def test_event_just_under_the_size_limit_is_accepted(app: App, tenant: Tenant) -> None:
    """An event of exactly the per-event size limit is accepted."""
    limit = app.ingestor.limits.max_event_bytes
    skeleton = len(msgspec.json.encode(event("big", properties={"blob": ""})))
    wire = event("big", properties={"blob": "x" * (limit - skeleton)})
    assert len(msgspec.json.encode(wire)) == limit
    assert await _outcome(app, tenant, wire) == "accepted"


async def test_too_many_events_in_a_request_is_payload_too_large(app: App, tenant: Tenant) -> None:
    """A request body with more events than the batch limit is refused whole as too large."""
    count = app.ingestor.limits.max_events_per_batch + 1
    with pytest.raises(PayloadTooLarge) as caught:
        await app.ingestor.ingest(tenant.api_key, body(*(event(str(i)) for i in range(count))))
    assert caught.value.code == "too_many_events"
    assert app.stored(tenant.ref) == []


async def test_too_many_events_submitted_is_payload_too_large(app: App, tenant: Tenant) -> None:
    """Submitting more events than the batch limit is refused whole as too large, like a request."""
    count = app.ingestor.limits.max_events_per_batch + 1
    with pytest.raises(PayloadTooLarge) as caught:
        await app.ingestor.submit(tenant.ref, [event(str(i)) for i in range(count)])
    assert caught.value.code == "too_many_events"
    assert app.stored(tenant.ref) == []


async def test_full_batch_is_accepted(app: App, tenant: Tenant) -> None:
    """A batch of exactly the event limit is accepted."""
    count = app.ingestor.limits.max_events_per_batch
    receipt = await app.ingestor.ingest(
        tenant.api_key, body(*(event(str(i)) for i in range(count)))
    )
    assert receipt.accepted == count
    assert len(app.stored(tenant.ref)) == count


async def test_request_over_the_byte_limit_is_payload_too_large(app: App, tenant: Tenant) -> None:
    """A body larger than the request limit is refused before it is parsed."""
    limit = app.ingestor.limits.max_request_bytes
    oversized = body(event("a", properties={"blob": "x" * limit}))
    with pytest.raises(PayloadTooLarge) as caught:
        await app.ingestor.ingest(tenant.api_key, oversized)
    assert caught.value.code == "request_too_large"
    assert app.stored(tenant.ref) == []


async def test_limits_are_configurable(make_app: Any) -> None:
    """The limits given to the platform are the ones enforced."""
    app: App = make_app(limits=EventLimits(max_events_per_batch=2, max_request_bytes=200))
    tenant = await app.signup()
    with pytest.raises(PayloadTooLarge):
        await app.ingestor.ingest(tenant.api_key, body(event("1"), event("2"), event("3")))
    with pytest.raises(PayloadTooLarge):
        await app.ingestor.ingest(tenant.api_key, body(event("1", properties={"x": "y" * 200})))
    receipt = await app.ingestor.ingest(tenant.api_key, body(event("1"), event("2")))
    assert receipt.accepted == 2


@pytest.mark.parametrize("events", [b'{"events": []}', b"[]"])
async def test_empty_batch_is_refused(app: App, tenant: Tenant, events: bytes) -> None:
    """A request with no event is a bad request."""
    with pytest.raises(InvalidRequest):
        await app.ingestor.ingest(tenant.api_key, events)
    with pytest.raises(InvalidRequest):
        await app.ingestor.submit(tenant.ref, [])


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"type": "click"', b"not json", b'{"type": "a",}', b"\x00", b'{"a":1}{"b":2}'],
)
async def test_malformed_json_is_refused(app: App, tenant: Tenant, raw: bytes) -> None:
    """A body that is not well-formed JSON is refused as malformed."""
    with pytest.raises(InvalidRequest) as caught:
        await app.ingestor.ingest(tenant.api_key, raw)
    assert caught.value.code == "malformed_json"
    assert app.stored(tenant.ref) == []


@pytest.mark.parametrize("raw", [b'"event"', b"42", b"null", b'[{"type": "a"}]', b'{"events": 5}'])
async def test_body_of_the_wrong_shape_is_refused(app: App, tenant: Tenant, raw: bytes) -> None:
    """A body that is neither an event object nor {"events": [...]} is refused."""
    with pytest.raises(InvalidRequest) as caught:
        await app.ingestor.ingest(tenant.api_key, raw)
    assert caught.value.code == "invalid_body"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "\xff"}',
        b'{"type": "caf\xc3"}',
        b'{"type": "a", "properties": {"\xed\xa0\x80": 1}}',
    ],
)
async def test_invalid_utf8_is_refused(app: App, tenant: Tenant, raw: bytes) -> None:
    """A body that is not valid UTF-8 is refused as malformed."""
    with pytest.raises(InvalidRequest) as caught:
        await app.ingestor.ingest(tenant.api_key, raw)
    assert caught.value.code == "malformed_json"


@pytest.mark.parametrize("depth", [100, 5_000, 200_000])
async def test_deep_nesting_is_refused_cleanly(app: App, tenant: Tenant, depth: int) -> None:
    """Deeply nested JSON is either accepted or refused with a domain error, never a crash."""
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    wire = b'{"id":"deep","type":"click","properties":' + nested + b"}"
    try:
        receipt = await app.ingestor.ingest(tenant.api_key, wire)
    except (InvalidRequest, PayloadTooLarge):
        assert app.stored(tenant.ref) == []
    else:
        assert receipt.accepted == 1
        assert depth <= 1_000


async def test_deep_array_body_is_refused(app: App, tenant: Tenant) -> None:
    """A body of many thousand nested arrays is refused as a bad request."""
    depth = 100_000
    with pytest.raises(InvalidRequest):
        await app.ingestor.ingest(tenant.api_key, b"[" * depth + b"]" * depth)
    with pytest.raises(InvalidRequest):
        await app.ingestor.ingest(
            tenant.api_key, b'{"events":' + b"[" * depth + b"]" * depth + b"}"
        )


async def test_single_event_body_is_accepted(app: App, tenant: Tenant) -> None:
    """A body that is one event object is a batch of one."""
    receipt = await app.ingestor.ingest(tenant.api_key, b'{"id": "one", "type": "signup"}')
    assert (receipt.accepted, receipt.duplicates, receipt.rejected) == (1, 0, [])
    assert [(e.id, e.type) for e in app.stored(tenant.ref)] == [("one", "signup")]


async def test_unknown_fields_are_ignored(app: App, tenant: Tenant) -> None:
    """Fields the contract does not name are ignored, not refused."""
    receipt = await app.ingestor.submit(tenant.ref, [event("x", extra={"k": 1}, userId="u")])
    assert receipt.accepted == 1


async def test_mapping_with_unencodable_value_is_rejected_alone(app: App, tenant: Tenant) -> None:
    """A submitted mapping that cannot be encoded as JSON is a per-event error."""
    receipt = await app.ingestor.submit(
        tenant.ref,
        [
            event("ok"),
            event("bad", properties={"x": object()}),
            event("s", properties={"x": "\ud800"}),
        ],
    )
    assert receipt.accepted == 1
    assert [r.index for r in receipt.rejected] == [1, 2]
    assert all(r.code == "invalid_event" for r in receipt.rejected)


# --- clock skew --------------------------------------------------------------------------------


def test_without_sent_at_the_timestamp_stands_and_without_timestamp_the_receipt_does() -> None:
    """No time of sending: the timestamp as sent; no timestamp: the time received."""
    timestamp = datetime(2026, 1, 10, 10, 59, tzinfo=UTC)

    assert corrected_time(timestamp, sent_at=None, received_at=NOW) == timestamp
    assert corrected_time(None, sent_at=timestamp, received_at=NOW) == NOW


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
offsets = st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650))


@settings(max_examples=100)
@given(
    happened=moments,
    sending_delay=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
    sender_clock_error=offsets,
    hours=st.integers(min_value=-12, max_value=14),
)
def test_any_sender_clock_error_is_corrected_away(
    happened: datetime, sending_delay: timedelta, sender_clock_error: timedelta, hours: int
) -> None:
    """However wrong the sender's clock and whatever its zone, the corrected time is the same."""
    received = happened + sending_delay
    zone = timezone(timedelta(hours=hours))
    timestamp = (happened + sender_clock_error).astimezone(zone)
    sent_at = (received + sender_clock_error).astimezone(zone)

    assert corrected_time(timestamp, sent_at=sent_at, received_at=received) == happened
