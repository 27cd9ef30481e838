"""Property: counts always equal a brute-force recount of the stored events, at every granularity."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventcore import Granularity
from eventcore.aggregation import CountPoint
from eventcore.events import StoredEvent
from tests.unit.conftest import NOW, App, AppFactory, Tenant
from tests.unit.helpers import floor_to, recount

TYPES = st.sampled_from(["view", "click", "buy", "sign up", "ünïcode"])
EARLIEST = NOW - timedelta(days=3)
# Whole days around every event the test can send (3 days back, up to 24 hours ahead).
START = datetime(2026, 1, 7, tzinfo=UTC)
END = datetime(2026, 1, 12, tzinfo=UTC)
OFFSETS = st.builds(
    lambda quarters: timezone(timedelta(minutes=15 * quarters)), st.integers(-56, 56)
)


@st.composite
def wire_timestamps(draw: st.DrawFn) -> tuple[datetime, Any]:
    """An instant in the accepted range and one of the forms a client may send it in."""
    latest = NOW + timedelta(hours=24)
    if draw(st.booleans()):
        seconds = draw(st.integers(0, int((latest - EARLIEST).total_seconds()) - 1))
        micros = draw(st.integers(0, 999_999) | st.just(0))
        moment = EARLIEST + timedelta(seconds=seconds, microseconds=micros)
    else:
        # Right on, just before or just after a minute, hour or day boundary.
        boundary = floor_to(EARLIEST, timedelta(hours=1)) + timedelta(
            minutes=draw(st.integers(60, int((latest - EARLIEST).total_seconds() // 60) - 60))
        )
        nudge = draw(st.sampled_from([0, -1, 1, -1_000_000, 999_999]))
        moment = boundary + timedelta(microseconds=nudge)
    form = draw(st.sampled_from(["z", "offset", "epoch", "epoch_float", "datetime"]))
    if form == "z":
        return moment, moment.isoformat().replace("+00:00", "Z")
    if form == "offset":
        return moment, moment.astimezone(draw(OFFSETS)).isoformat()
    if form == "epoch":
        moment = moment.replace(microsecond=0)
        return moment, int(moment.timestamp())
    if form == "epoch_float":
        return moment, moment.timestamp()
    return moment, moment.astimezone(draw(OFFSETS))


EVENTS = st.lists(st.tuples(TYPES, wire_timestamps()), max_size=80)


def _as_counter(points: list[CountPoint]) -> Counter[tuple[datetime, str]]:
    keys = [(p.bucket, p.event_type) for p in points]
    assert keys == sorted(keys), "series are ordered by bucket then event type"
    assert len(set(keys)) == len(keys), "one point per bucket and type"
    assert all(p.count > 0 for p in points), "zero buckets are left out"
    return Counter({(p.bucket, p.event_type): p.count for p in points})


def _roll(points: Counter[tuple[datetime, str]], step: timedelta) -> Counter[tuple[datetime, str]]:
    rolled: Counter[tuple[datetime, str]] = Counter()
    for (bucket, event_type), count in points.items():
        rolled[(floor_to(bucket, step), event_type)] += count
    return rolled


def _ceil_to(moment: datetime, step: timedelta) -> datetime:
    floor = floor_to(moment, step)
    return floor if floor == moment else floor + step


async def _load(app: App, events: list[tuple[str, tuple[datetime, Any]]]) -> Tenant:
    tenant = await app.signup()
    wire = [
        {"id": f"e{i}", "type": t, "timestamp": sent} for i, (t, (_, sent)) in enumerate(events)
    ]
    for chunk in range(0, len(wire), 25):
        receipt = await app.ingestor.submit(tenant.ref, wire[chunk : chunk + 25])
        assert receipt.rejected == []
    return tenant


def _check_stored(
    stored: list[StoredEvent], events: list[tuple[str, tuple[datetime, Any]]]
) -> None:
    assert len(stored) == len(events)
    for e in stored:
        t, (moment, sent) = events[int(e.id[1:])]
        assert e.type == t
        tolerance = timedelta(microseconds=1 if isinstance(sent, float) else 0)
        assert abs(e.timestamp - moment) <= tolerance


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS)
async def test_counts_equal_a_recount_at_every_granularity(
    make_app: AppFactory, events: list[tuple[str, tuple[datetime, Any]]]
) -> None:
    """Minute, hour and day counts equal a recount; minutes sum to hours and hours to days."""
    app = make_app()
    tenant = await _load(app, events)
    stored = app.stored(tenant.ref)
    _check_stored(stored, events)

    answers: dict[Granularity, Counter[tuple[datetime, str]]] = {}
    for grain in Granularity:
        series = await app.analytics.counts(
            tenant.principal, tenant.project_id, start=START, end=END, granularity=grain
        )
        assert (series.start, series.end, series.granularity) == (START, END, grain)
        answers[grain] = _as_counter(series.series)
        assert answers[grain] == recount(stored, grain.step)
        assert series.total == len(stored)
    assert _roll(answers[Granularity.MINUTE], Granularity.HOUR.step) == answers[Granularity.HOUR]
    assert _roll(answers[Granularity.HOUR], Granularity.DAY.step) == answers[Granularity.DAY]

    totals = await app.analytics.event_types(
        tenant.principal, tenant.project_id, start=START, end=END
    )
    counts = [t.count for t in totals.event_types]
    assert counts == sorted(counts, reverse=True), "largest first"
    assert {t.event_type: t.count for t in totals.event_types} == Counter(e.type for e in stored)

    for event_type in {e.type for e in stored}:
        only = await app.analytics.counts(
            tenant.principal, tenant.project_id, start=START, end=END, event_type=event_type
        )
        assert only.total == sum(1 for e in stored if e.type == event_type)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=EVENTS,
    start_at=st.integers(
        -int(timedelta(days=4).total_seconds()), int(timedelta(days=1).total_seconds())
    ),
    length=st.integers(1, int(timedelta(days=3).total_seconds())),
    grain=st.sampled_from(list(Granularity)),
    offset=OFFSETS,
)
async def test_any_window_counts_exactly_the_buckets_it_covers(
    make_app: AppFactory,
    events: list[tuple[str, tuple[datetime, Any]]],
    start_at: int,
    length: int,
    grain: Granularity,
    offset: timezone,
) -> None:
    """Any window, in any offset, counts exactly the events whose bucket starts inside it."""
    app = make_app()
    tenant = await _load(app, events)
    stored = app.stored(tenant.ref)
    start = (NOW + timedelta(seconds=start_at)).astimezone(offset)
    end = start + timedelta(seconds=length)

    series = await app.analytics.counts(
        tenant.principal, tenant.project_id, start=start, end=end, granularity=grain
    )
    assert series.start == floor_to(start, grain.step)
    assert series.end == _ceil_to(end, grain.step)
    inside = [e for e in stored if series.start <= floor_to(e.timestamp, grain.step) < series.end]
    assert _as_counter(series.series) == recount(inside, grain.step)
    assert series.total == len(inside)

    totals = await app.analytics.event_types(
        tenant.principal, tenant.project_id, start=start, end=end
    )
    hour = Granularity.HOUR.step
    in_hours = [
        e
        for e in stored
        if floor_to(start, hour) <= floor_to(e.timestamp, hour) < _ceil_to(end, hour)
    ]
    assert {t.event_type: t.count for t in totals.event_types} == Counter(e.type for e in in_hours)
    counts = [t.count for t in totals.event_types]
    assert counts == sorted(counts, reverse=True)
