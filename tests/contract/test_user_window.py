"""The EventStore contract for a unique-users window's read (``user_window``): the whole days'
sketches and the other hours', the same answer as every hour's sketch merged, maintained by
appends, rebuilds and deletions, walled off by tenant."""

from __future__ import annotations

from datetime import datetime, timedelta

from eventcore.aggregation import Granularity, bucket_start
from eventcore.deletions import EventSelector
from eventcore.persons import StoredSketch, UserSeries, user_series, window_user_series
from eventcore.ports import Store
from tests.contract.implementations import StoreKit
from tests.contract.support import batch, event

WS, OTHER_WS = "ws-acme", "ws-globex"
WEB, APP = "prj-web", "prj-app"
DAY0 = datetime.fromisoformat("2026-03-01T00:00:00+00:00")
# Hour boundaries inside the first and the last day: two partial days around three whole ones.
START, END = DAY0 + timedelta(hours=7), DAY0 + timedelta(days=4, hours=17)
TYPES = ("page_view", "signup", "purchase")


def visits(count: int, *, persons: int, prefix: str = "v", days: int = 5) -> list:
    """Events spread over ``days`` days, every ~37 minutes, by ``persons`` users (one in seven
    anonymous, one in eleven nobody's)."""
    made = []
    span = days * 24 * 60
    for n in range(count):
        kind = n % 11
        person = f"user-{(n * 7919) % persons}"
        made.append(
            event(
                f"{prefix}{n}",
                TYPES[n % 3],
                DAY0 + timedelta(minutes=(n * 37) % span, seconds=n % 60),
                user_id=None if kind in (0, 7) else person,
                anonymous_id=f"anon-{n % 5}" if kind == 7 else None,
            )
        )
    return made


def _window(granularity: Granularity) -> tuple[datetime, datetime]:
    if granularity is Granularity.DAY:
        return bucket_start(START, Granularity.DAY), bucket_start(END, Granularity.DAY) + timedelta(
            days=1
        )
    return START, END


async def answer(
    store: Store,
    granularity: Granularity,
    event_type: str | None = None,
    ws: str = WS,
    project: str = WEB,
) -> UserSeries:
    start, end = _window(granularity)
    rows = await store.user_window(ws, project, start, end, granularity, event_type)
    return window_user_series(project, granularity, start, end, rows)


async def from_hours(
    store: Store, granularity: Granularity, event_type: str | None = None
) -> UserSeries:
    """The reference: every hour's sketch of the window merged (user_series)."""
    start, end = _window(granularity)
    hours = await store.user_sketches(WS, WEB, start, end, event_type)
    return user_series(WEB, granularity, start, end, hours)


def counted(series: UserSeries) -> tuple[int, list[tuple[datetime, int]]]:
    return series.total, [(p.bucket, p.users) for p in series.series]


def by_bucket(events: list, granularity: Granularity, event_type: str | None = None) -> dict:
    start, end = _window(granularity)
    buckets: dict[datetime, set[str]] = {}
    for e in events:
        if e.person is not None and event_type in (None, e.type) and start <= e.timestamp < end:
            buckets.setdefault(bucket_start(e.timestamp, granularity), set()).add(e.person)
    return {bucket: len(persons) for bucket, persons in sorted(buckets.items())}


def distinct_in(events: list, granularity: Granularity, event_type: str | None = None) -> int:
    start, end = _window(granularity)
    return len(
        {
            e.person
            for e in events
            if e.person is not None and event_type in (None, e.type) and start <= e.timestamp < end
        }
    )


async def test_a_window_reads_whole_days_sketches_and_the_edges_hours(store: Store) -> None:
    """Hourly: every hour of the window, and the whole days' sketches with their bytes; daily:
    the days' sketches only. No row lies outside the window."""
    await store.append([batch(WS, WEB, *visits(400, persons=40))])

    hourly = await store.user_window(WS, WEB, START, END, Granularity.HOUR)
    days = [row.bucket for row in hourly if row.granularity is Granularity.DAY]
    assert days == [DAY0 + timedelta(days=n) for n in (1, 2, 3)]
    assert all(row.sketch is not None for row in hourly if row.granularity is Granularity.DAY)
    hours = [row for row in hourly if row.granularity is Granularity.HOUR]
    assert all(START <= row.bucket < END for row in hours)
    edges = [row for row in hours if row.bucket < days[0] or row.bucket >= days[-1] + timedelta(1)]
    assert edges
    assert all(row.sketch is not None for row in edges)
    assert all(row.estimate is not None or row.sketch is not None for row in hours)

    start, end = _window(Granularity.DAY)
    daily = await store.user_window(WS, WEB, start, end, Granularity.DAY)
    assert all(isinstance(row, StoredSketch) for row in daily)
    assert [row.granularity for row in daily] == [Granularity.DAY] * 5


async def test_the_answer_equals_the_hours_merged_and_an_exact_count(store: Store) -> None:
    """For few persons (exact sketches): the same total and buckets as every hour's sketch
    merged, and as the exact count, of every type together and of each type, hourly and daily."""
    events = visits(500, persons=60)
    await store.append([batch(WS, WEB, *events[:200])])
    await store.append([batch(WS, WEB, *events[200:])])

    for event_type in (None, *TYPES):
        for granularity in (Granularity.HOUR, Granularity.DAY):
            found = await answer(store, granularity, event_type)
            assert counted(found) == counted(await from_hours(store, granularity, event_type))
            assert found.total == distinct_in(events, granularity, event_type)
            assert dict(counted(found)[1]) == by_bucket(events, granularity, event_type)
            assert found.relative_error == 0.0


async def test_past_exact_counting_the_total_is_the_hours_union(store: Store) -> None:
    """Thousands of persons (estimated sketches): the total and each day within three standard
    errors of the exact count, an error reported; hourly, each hour's own sketch's estimate."""
    events = visits(9000, persons=6000, days=2)
    for n in range(0, len(events), 1500):
        await store.append([batch(WS, WEB, *events[n : n + 1500])])

    found = await answer(store, Granularity.DAY)
    assert found.relative_error > 0
    assert abs(found.total - distinct_in(events, Granularity.DAY)) <= 3 * found.relative_error * (
        found.total
    )
    for bucket, users in counted(found)[1]:
        truth = by_bucket(events, Granularity.DAY)[bucket]
        assert abs(users - truth) <= 3 * found.relative_error * truth
    hourly = await answer(store, Granularity.HOUR)
    reference = await from_hours(store, Granularity.HOUR)
    assert counted(hourly)[1] == counted(reference)[1]
    assert abs(hourly.total - distinct_in(events, Granularity.HOUR)) <= 3 * (
        hourly.relative_error * hourly.total
    )


async def test_resends_change_no_sketch_of_the_window(store: Store) -> None:
    """Events appended again, alone or under other persons, leave every row as it was."""
    events = visits(200, persons=30)
    await store.append([batch(WS, WEB, *events)])
    before = await store.user_window(WS, WEB, START, END, Granularity.HOUR)

    await store.append([batch(WS, WEB, *events)])
    renamed = [event(e.id, e.type, e.timestamp, user_id="intruder") for e in events]
    await store.append([batch(WS, WEB, *renamed)])

    assert await store.user_window(WS, WEB, START, END, Granularity.HOUR) == before


async def test_a_rebuild_and_a_deletion_make_the_days_again(store_kit: StoreKit) -> None:
    """After the derived rows are wiped, a rebuild gives the same answers; after a person's
    events are deleted, the answers are those of the events left."""
    store = store_kit.store
    events = visits(300, persons=25)
    await store.append([batch(WS, WEB, *events)])
    maintained = {g: counted(await answer(store, g)) for g in Granularity if g.value != "minute"}

    await store_kit.wipe_counts()
    assert (await answer(store, Granularity.DAY)).total == 0
    await store.rebuild_counts(WS)
    for granularity, expected in maintained.items():
        assert counted(await answer(store, granularity)) == expected

    gone = "user-0"
    assert any(e.user_id == gone for e in events)
    deleted = await store.delete_events(WS, WEB, EventSelector(user_ids=(gone,)), limit=1000)
    assert deleted == sum(1 for e in events if e.user_id == gone)
    left = [e for e in events if e.user_id != gone]
    for granularity in (Granularity.HOUR, Granularity.DAY):
        found = await answer(store, granularity)
        assert found.total == distinct_in(left, granularity)
        assert dict(counted(found)[1]) == by_bucket(left, granularity)


async def test_windows_are_walled_off_by_tenant(store: Store) -> None:
    """Nothing of another workspace or project is in a window's rows."""
    mine, theirs = visits(100, persons=10, prefix="a"), visits(100, persons=50, prefix="b")
    await store.append([batch(WS, WEB, *mine)])
    await store.append([batch(OTHER_WS, WEB, *theirs)])

    assert await store.user_window(WS, APP, START, END, Granularity.HOUR) == []
    assert await store.user_window(OTHER_WS, APP, START, END, Granularity.DAY) == []
    assert (await answer(store, Granularity.HOUR)).total == distinct_in(mine, Granularity.HOUR)
    assert (await answer(store, Granularity.HOUR, ws=OTHER_WS)).total == distinct_in(
        theirs, Granularity.HOUR
    )
