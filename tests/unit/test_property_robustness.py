"""Property: any input is accepted or refused with a domain error, never any other exception."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import hypothesis
import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventcore import (
    CountSeries,
    EventPage,
    EventsRejected,
    Granularity,
    IngestReceipt,
    InvalidRequest,
    PayloadTooLarge,
)
from tests.unit.conftest import NOW, App, AppFactory, Tenant

EVENT_ERRORS = {
    "invalid_event",
    "invalid_properties",
    "invalid_timestamp",
    "timestamp_in_future",
    "event_too_large",
    "invalid_number",
    "duplicate_key",
}

# Text as a client might send it, plus lone surrogates, which cannot be encoded as UTF-8 at all.
TEXT = st.text(max_size=12) | st.builds(
    lambda before, surrogate, after: before + surrogate + after,
    st.text(max_size=4),
    st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]),
    st.text(max_size=4),
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
# What code embedding eventcore might hand over: JSON plus NaN, infinities and surrogates.
LOOSE = st.recursive(
    SCALARS | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=5,
)
TIMESTAMPS = (
    st.datetimes(timezones=st.just(UTC) | st.none())
    | st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(2026, 1, 12)).map(
        lambda d: d.replace(tzinfo=UTC).isoformat()
    )
    | st.floats(min_value=-1e3, max_value=(NOW + timedelta(days=2)).timestamp())
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from(["2026-01-10T10:00:00", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59-23:59"])
)
# Mostly well-formed events with one field off, so that receipts are as common as refusals.
EVENTISH = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["click", "view", "t" * 128])
        | st.sampled_from(["", " ", "t" * 129])
        | TEXT
        | LOOSE
    },
    optional={
        "id": st.text(max_size=130) | LOOSE,
        "timestamp": TIMESTAMPS | LOOSE,
        "properties": st.dictionaries(st.text(max_size=6), JSON, max_size=4)
        | st.dictionaries(TEXT, LOOSE, max_size=4)
        | LOOSE,
        "extra": LOOSE,
    },
)


async def _outcome(
    app: App, tenant: Tenant, send: Callable[[], Awaitable[IngestReceipt]], events: int | None
) -> None:
    """Run one request: a receipt that adds up, or a domain refusal that stored nothing."""
    before = len(app.memory.events)
    # Only these two refusals are allowed: anything else propagates and fails the test.
    refusal: InvalidRequest | PayloadTooLarge | None = None
    try:
        receipt = await send()
    except (InvalidRequest, PayloadTooLarge) as exc:
        refusal = exc
    hypothesis.event(f"refused: {refusal.code}" if refusal else "receipt")
    if refusal is not None:
        assert refusal.code
        assert refusal.message
        if isinstance(refusal, EventsRejected):
            assert refusal.rejected
            assert {r.code for r in refusal.rejected} <= EVENT_ERRORS
        assert len(app.memory.events) == before
        return
    indexes = [r.index for r in receipt.rejected]
    assert indexes == sorted(set(indexes))
    assert {r.code for r in receipt.rejected} <= EVENT_ERRORS
    assert all(r.message for r in receipt.rejected)
    if events is not None:
        assert all(0 <= i < events for i in indexes)
        assert receipt.accepted + receipt.duplicates + len(receipt.rejected) == events
    assert receipt.accepted + receipt.duplicates >= 1
    assert len(app.memory.events) == before + receipt.accepted


SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(events=st.lists(EVENTISH | st.dictionaries(TEXT, LOOSE, max_size=3), max_size=4))
async def test_any_mapping_submitted_is_accepted_or_refused(
    make_app: AppFactory, events: list[dict[str, Any]]
) -> None:
    """Submitting any mappings gives a receipt accounting for each, or a domain error."""
    app = make_app()
    tenant = await app.signup()
    await _outcome(app, tenant, lambda: app.ingestor.submit(tenant.ref, events), len(events))


@SETTINGS
@given(
    texts=st.lists(
        JSON.map(msgspec.json.encode)
        | EVENTISH.map(lambda e: msgspec.json.encode(e, enc_hook=str) if _encodable(e) else b"{")
        | st.binary(max_size=64),
        max_size=5,
    )
)
async def test_any_json_text_submitted_is_accepted_or_refused(
    make_app: AppFactory, texts: list[bytes]
) -> None:
    """Submitting any JSON value or any bytes as event texts gives a receipt or a domain error."""
    app = make_app()
    tenant = await app.signup()
    await _outcome(app, tenant, lambda: app.ingestor.submit(tenant.ref, texts), len(texts))


def _encodable(value: Any) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _body(value: Any) -> bytes:
    return msgspec.json.encode(value) if _encodable(value) else b"{]"


BODIES = (
    JSON.map(_body)
    | EVENTISH.map(_body)
    | st.lists(EVENTISH | JSON, max_size=5).map(lambda events: _body({"events": events}))
    | st.dictionaries(st.sampled_from(["events", "type", "id"]), JSON, max_size=3).map(_body)
    | st.binary(max_size=200)
    | st.binary(max_size=40).map(lambda junk: b'{"events": [' + junk + b"]}")
)


@SETTINGS
@given(request=BODIES)
async def test_any_request_body_is_accepted_or_refused(
    make_app: AppFactory, request: bytes
) -> None:
    """Ingesting any body, JSON or not, gives a receipt or a domain error, never a crash."""
    app = make_app()
    tenant = await app.signup()
    await _outcome(app, tenant, lambda: app.ingestor.ingest(tenant.api_key, request), None)


def _cursor_of(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


ANY_OFFSET = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
MOMENTS = st.datetimes(timezones=ANY_OFFSET) | st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2026, 2, 1), timezones=ANY_OFFSET
)
CURSORS = (
    st.none()
    | st.text(max_size=24)
    | JSON.map(lambda v: _cursor_of(msgspec.json.encode(v)))
    | st.tuples(
        st.datetimes(timezones=st.none() | ANY_OFFSET).map(datetime.isoformat),
        st.integers(-(2**70), 2**70),
    ).map(lambda pair: _cursor_of(msgspec.json.encode(list(pair))))
)


@SETTINGS
# Known hard cases first: a cursor time without an offset, and a default start before year 1.
@example(None, None, Granularity.HOUR, None, _cursor_of(b'["2026-01-10T10:00:00",1]'), 10)
@example(None, datetime(1, 1, 1, 12, tzinfo=UTC), Granularity.HOUR, None, None, 10)
@given(
    start=st.none() | MOMENTS,
    end=st.none() | MOMENTS,
    granularity=st.sampled_from(list(Granularity)),
    event_type=st.none() | st.sampled_from(["click", ""]) | st.text(max_size=8),
    cursor=CURSORS,
    limit=st.integers(-2, 1002),
)
async def test_any_analytics_query_is_answered_or_refused(
    make_app: AppFactory,
    start: datetime | None,
    end: datetime | None,
    granularity: Granularity,
    event_type: str | None,
    cursor: str | None,
    limit: int,
) -> None:
    """Any window, filter, cursor and page size gets an answer or a bad-query error."""
    app = make_app()
    tenant = await app.signup()
    await app.ingestor.submit(tenant.ref, [{"id": "a", "type": "click"}])
    queries: list[Callable[[], Awaitable[object]]] = [
        lambda: app.analytics.counts(
            tenant.principal,
            tenant.project_id,
            start=start,
            end=end,
            granularity=granularity,
            event_type=event_type,
        ),
        lambda: app.analytics.event_types(
            tenant.principal, tenant.project_id, start=start, end=end
        ),
        lambda: app.analytics.list_events(
            tenant.principal, tenant.project_id, event_type=event_type, limit=limit, cursor=cursor
        ),
    ]
    for query in queries:
        outcome: object
        try:
            outcome = await query()
        except InvalidRequest as exc:
            outcome = exc
        hypothesis.event(type(outcome).__name__)
        # One event is stored: an answer can only ever show it or nothing.
        if isinstance(outcome, CountSeries):
            assert outcome.total in {0, 1}
        elif isinstance(outcome, EventPage):
            assert [e.id for e in outcome.events] in ([], ["a"])
        elif isinstance(outcome, InvalidRequest):
            assert outcome.code in {"invalid_query", "window_too_large", "invalid_cursor"}
