"""The EventStore contract: exactly-once appends, exact counts, paging and tenant isolation."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta

import pytest

from eventcore.aggregation import (
    CountPoint,
    EventTypeCount,
    Granularity,
    StoredGrain,
    bucket_start,
)
from eventcore.events import Event, EventCursor, StoredEvent
from eventcore.ports import AppendResult, Recount, Store
from tests.contract.implementations import StoreKit
from tests.contract.support import (
    EVERYTHING,
    T0,
    Model,
    assert_matches_model,
    at,
    batch,
    event,
    is_utc,
    json_value,
    model_summary,
    page_through,
    summary,
)

WS, OTHER_WS = "ws-acme", "ws-globex"
WEB, APP = "prj-web", "prj-app"
START, END = EVERYTHING


def spread(count: int, prefix: str = "e") -> list[Event]:
    """Events over three hours, several per minute, three types, some sharing a timestamp."""
    types = ("page_view", "signup", "click")
    return [
        event(
            f"{prefix}{n}",
            types[n % 3],
            at(minutes=(n * 7) % 180, seconds=(n * 13) % 60 if n % 4 else 0),
        )
        for n in range(count)
    ]


async def test_new_events_are_all_inserted(store: Store) -> None:
    """An append of new events reports every one inserted and none duplicate."""
    result = await store.append([batch(WS, WEB, *spread(5))])

    assert result == AppendResult(inserted=5, duplicates=0)


async def test_an_empty_append_changes_nothing(store: Store) -> None:
    """Appending no batches, or a batch without events, inserts nothing."""
    assert await store.append([]) == AppendResult(0, 0)
    assert await store.append([batch(WS, WEB)]) == AppendResult(0, 0)
    assert await store.list_events(WS, WEB, limit=10) == []


async def test_appending_the_same_events_again_is_a_no_op(store: Store) -> None:
    """Events appended again in later appends are duplicates and change neither rows nor counts."""
    events = spread(6)
    await store.append([batch(WS, WEB, *events)])
    listed = await store.list_events(WS, WEB, limit=100)
    counts = await store.count_series(WS, WEB, StoredGrain.MINUTE, START, END)

    for _ in range(3):
        assert await store.append([batch(WS, WEB, *events)]) == AppendResult(0, 6)

    assert await store.list_events(WS, WEB, limit=100) == listed
    assert await store.count_series(WS, WEB, StoredGrain.MINUTE, START, END) == counts


async def test_a_redelivered_batch_in_the_same_append_counts_once(store: Store) -> None:
    """The same batch twice in one append stores and counts each event once."""
    redelivered = batch(WS, WEB, *spread(4))

    result = await store.append([redelivered, redelivered])

    assert result == AppendResult(inserted=4, duplicates=4)
    assert len(await store.list_events(WS, WEB, limit=100)) == 4
    totals = await store.event_type_totals(WS, WEB, START, END)
    assert sum(t.count for t in totals) == 4


async def test_a_listed_append_names_exactly_the_rows_it_inserted(store: Store) -> None:
    """With ``listed``, the result names each event the append stored, in insertion order (the
    first of a repeated id, in its position), and no duplicate; without it, none."""
    old = spread(3, "old")
    await store.append([batch(WS, WEB, *old)])
    new = [event("n1"), old[1], event("n2"), event("n1"), event("n3")]
    other = [event("x1"), event("n1")]

    result = await store.append(
        [batch(WS, WEB, *new), batch(OTHER_WS, WEB, *other), batch(WS, APP, event("a1"))],
        listed=True,
    )

    assert (result.inserted, result.duplicates) == (6, 2)
    stored = [(key.workspace_id, key.project_id, key.event_id) for key in result.stored]
    assert sorted(stored) == sorted(
        [
            (WS, WEB, "n1"),
            (WS, WEB, "n2"),
            (WS, WEB, "n3"),
            (OTHER_WS, WEB, "x1"),
            (OTHER_WS, WEB, "n1"),
            (WS, APP, "a1"),
        ]
    )
    # Insertion order within each project: the order the events were sent in.
    assert [k[2] for k in stored if k[:2] == (WS, WEB)] == ["n1", "n2", "n3"]
    assert [k[2] for k in stored if k[:2] == (OTHER_WS, WEB)] == ["x1", "n1"]
    again = await store.append([batch(WS, WEB, event("n4"))])
    assert again == AppendResult(1, 0)
    assert again.stored == ()


async def test_a_repeated_id_inside_one_batch_keeps_the_first(store: Store) -> None:
    """Of two events sharing an id in one batch, the first is stored and counted, the second not."""
    first = event("same", "signup", at(1), b'{"n":1}')
    second = event("same", "click", at(2), b'{"n":2}')

    result = await store.append([batch(WS, WEB, first, second)])

    assert result == AppendResult(inserted=1, duplicates=1)
    [stored] = await store.list_events(WS, WEB, limit=10)
    assert (stored.type, stored.timestamp, json_value(stored.properties)) == (
        "signup",
        at(1),
        {"n": 1},
    )
    assert await store.event_type_totals(WS, WEB, START, END) == [EventTypeCount("signup", 1)]


async def test_a_partly_known_batch_inserts_only_the_new_events(store: Store) -> None:
    """An append overlapping an earlier one reports exactly the new and the known events."""
    events = spread(10)
    await store.append([batch(WS, WEB, *events[:6])])

    result = await store.append([batch(WS, WEB, *events[4:])])

    assert result == AppendResult(inserted=4, duplicates=2)
    assert len(await store.list_events(WS, WEB, limit=100)) == 10


async def test_stored_events_read_back_field_for_field(store: Store) -> None:
    """A stored event comes back with its id, type, times and the same JSON properties."""
    moment = at(3, seconds=4, microseconds=567_891)
    received = at(10, microseconds=1)
    properties = '{"plan":"pro","n":[1,2.5,null,true,false],"unicode":"żółw 🐢"}'.encode()

    await store.append(
        [batch(WS, WEB, event("e1", "signup", moment, properties), received_at=received)]
    )

    [stored] = await store.list_events(WS, WEB, limit=10)
    assert summary([stored]) == [("e1", "signup", moment, received, json_value(properties))]
    assert json_value(stored.properties) == {
        "plan": "pro",
        "n": [1, 2.5, None, ("bool", True), ("bool", False)],
        "unicode": "żółw 🐢",
    }
    assert is_utc(stored.timestamp)
    assert is_utc(stored.received_at)


async def test_properties_keep_their_json_value_though_not_always_their_text(
    store: Store,
) -> None:
    """Spacing, key order and duplicate keys may be normalised; the JSON value never changes."""
    text = b'{ "b" : [ 1 , {"z":0,"y":1} ] , "a":"first", "a" : "last", "c":{} }'

    await store.append([batch(WS, WEB, event("e1", properties=text))])

    [stored] = await store.list_events(WS, WEB, limit=10)
    assert json_value(stored.properties) == {"b": [1, {"z": 0, "y": 1}], "a": "last", "c": {}}


async def test_counts_equal_a_brute_force_recount(store: Store) -> None:
    """Minute and hour counts equal a recount of the stored events, bucket by bucket."""
    events = spread(60)
    model = Model()
    appends = [
        [batch(WS, WEB, *events[:25])],
        [batch(WS, WEB, *events[20:45]), batch(WS, WEB, *events[40:])],
    ]
    for batches in appends:
        assert await store.append(batches) == model.append(batches)

    for grain in StoredGrain:
        expected = model.series(WS, WEB, grain, START, END)
        assert await store.count_series(WS, WEB, grain, START, END) == expected
        assert sum(p.count for p in expected) == 60


@pytest.mark.parametrize("grain", list(StoredGrain))
async def test_every_stored_grain_answers_as_the_model(store: Store, grain: StoredGrain) -> None:
    """At each stored grain, every store answers the same buckets, windows and type filters."""
    events = [*spread(90), event("edge", "tick", at(60) - timedelta(microseconds=1))]
    model = Model()
    batches = [batch(WS, WEB, *events), batch(WS, APP, *events[:10])]
    assert await store.append(batches) == model.append(batches)
    windows = [(START, END), (at(59), at(121)), (at(1, seconds=30), at(2))]

    for (start, end), event_type in itertools.product(windows, (None, "signup", "tick")):
        assert await store.count_series(WS, WEB, grain, start, end, event_type) == model.series(
            WS, WEB, grain, start, end, event_type
        )
    assert await store.count_series(WS, WEB, grain, START, END) != []


async def test_minute_buckets_sum_to_their_hour(store: Store) -> None:
    """Summing the minute buckets of each hour gives that hour's count, type by type."""
    await store.append([batch(WS, WEB, *spread(50))])

    minutes = await store.count_series(WS, WEB, StoredGrain.MINUTE, START, END)
    hours = await store.count_series(WS, WEB, StoredGrain.HOUR, START, END)

    summed: Counter[tuple[datetime, str]] = Counter()
    for point in minutes:
        summed[(bucket_start(point.bucket, Granularity.HOUR), point.event_type)] += point.count
    assert [CountPoint(b, t, n) for (b, t), n in sorted(summed.items())] == hours


async def test_buckets_split_exactly_at_the_boundary(store: Store) -> None:
    """An event a microsecond before a boundary and one exactly on it fall in different buckets."""
    hour = T0 + timedelta(hours=1)
    await store.append(
        [
            batch(
                WS,
                WEB,
                event("before", "tick", hour - timedelta(microseconds=1)),
                event("on", "tick", hour),
            )
        ]
    )

    assert await store.count_series(WS, WEB, StoredGrain.HOUR, START, END) == [
        CountPoint(T0, "tick", 1),
        CountPoint(hour, "tick", 1),
    ]
    assert await store.count_series(WS, WEB, StoredGrain.MINUTE, START, END) == [
        CountPoint(hour - timedelta(minutes=1), "tick", 1),
        CountPoint(hour, "tick", 1),
    ]


async def test_count_series_selects_buckets_starting_in_the_half_open_window(store: Store) -> None:
    """count_series includes the bucket starting at ``start``, not the one starting at ``end``."""
    await store.append(
        [batch(WS, WEB, *(event(f"m{m}", "view", at(m, seconds=30)) for m in range(5)))]
    )

    points = await store.count_series(WS, WEB, StoredGrain.MINUTE, at(1), at(4))

    assert points == [CountPoint(at(m), "view", 1) for m in (1, 2, 3)]


async def test_count_series_filters_by_event_type(store: Store) -> None:
    """With an event type, count_series counts only that type."""
    await store.append([batch(WS, WEB, *spread(30))])
    model = Model()
    model.append([batch(WS, WEB, *spread(30))])

    points = await store.count_series(WS, WEB, StoredGrain.HOUR, START, END, "signup")

    assert points == model.series(WS, WEB, StoredGrain.HOUR, START, END, "signup")
    assert {p.event_type for p in points} == {"signup"}


async def test_event_type_totals_rank_largest_first_then_by_name(store: Store) -> None:
    """Totals come largest first; equal totals are ordered by type name."""
    counts = {"view": 3, "buy": 1, "add": 3, "zoom": 1, "click": 5}
    events = [
        event(f"{name}{n}", name, at(n * 20))
        for name, count in counts.items()
        for n in range(count)
    ]
    await store.append([batch(WS, WEB, *events)])

    totals = await store.event_type_totals(WS, WEB, START, END)

    assert totals == [
        EventTypeCount("click", 5),
        EventTypeCount("add", 3),
        EventTypeCount("view", 3),
        EventTypeCount("buy", 1),
        EventTypeCount("zoom", 1),
    ]


async def test_event_type_totals_cover_only_hours_in_the_window(store: Store) -> None:
    """Totals sum the hour buckets starting in [start, end) and nothing outside."""
    await store.append(
        [
            batch(
                WS,
                WEB,
                event("a", "view", at(30)),
                event("b", "view", at(90)),
                event("c", "click", at(150)),
            )
        ]
    )

    totals = await store.event_type_totals(
        WS, WEB, T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    )

    assert totals == [EventTypeCount("view", 1)]


async def test_events_are_listed_newest_first_ties_by_insertion(store: Store) -> None:
    """list_events orders by timestamp, newest first; equal timestamps newest-inserted first."""
    await store.append(
        [batch(WS, WEB, event("old", timestamp=at(1)), event("tie1", timestamp=at(5)))]
    )
    await store.append(
        [batch(WS, WEB, event("tie2", timestamp=at(5)), event("new", timestamp=at(9)))]
    )

    listed = await store.list_events(WS, WEB, limit=10)

    assert [e.id for e in listed] == ["new", "tie2", "tie1", "old"]
    assert [e.seq for e in listed if e.id.startswith("tie")] == sorted(
        (e.seq for e in listed if e.id.startswith("tie")), reverse=True
    )


async def test_list_events_returns_at_most_limit(store: Store) -> None:
    """A page holds at most ``limit`` events, the newest ones."""
    await store.append([batch(WS, WEB, *(event(f"e{n}", timestamp=at(n)) for n in range(10)))])

    listed = await store.list_events(WS, WEB, limit=4)

    assert [e.id for e in listed] == ["e9", "e8", "e7", "e6"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 1000])
async def test_paging_visits_every_event_exactly_once(store: Store, limit: int) -> None:
    """Following the cursor from page to page returns every event once, in order."""
    events = spread(40)
    model = Model()
    for chunk in (events[:15], events[15:]):
        model.append([batch(WS, WEB, *chunk)])
        await store.append([batch(WS, WEB, *chunk)])

    visited = await page_through(store, WS, WEB, limit=limit)

    assert summary(visited) == model_summary(model.events(WS, WEB))
    assert len({e.id for e in visited}) == 40


async def test_paging_with_an_event_type_stays_within_the_type(store: Store) -> None:
    """The event type filter applies to every page, and paging still visits each event once."""
    await store.append([batch(WS, WEB, *spread(40))])

    visited = await page_through(store, WS, WEB, limit=4, event_type="signup")

    everything = await store.list_events(WS, WEB, limit=100)
    assert [e.id for e in visited] == [e.id for e in everything if e.type == "signup"]
    assert {e.type for e in visited} == {"signup"}


async def test_the_same_event_id_in_two_tenants_is_two_events(store: Store) -> None:
    """One id used in two workspaces and two projects is stored and counted in each."""
    tenants = [(WS, WEB), (WS, APP), (OTHER_WS, WEB)]
    batches = [batch(ws, prj, event("shared", "view", at(1))) for ws, prj in tenants]

    assert await store.append(batches) == AppendResult(inserted=3, duplicates=0)
    for ws, prj in tenants:
        [stored] = await store.list_events(ws, prj, limit=10)
        assert stored.id == "shared"
        assert await store.event_type_totals(ws, prj, START, END) == [EventTypeCount("view", 1)]


async def test_queries_never_return_another_tenants_data(store: Store) -> None:
    """Every query as one workspace or project sees only its own events and counts."""
    await store.append([batch(WS, WEB, *spread(12, "mine"))])
    await store.append([batch(OTHER_WS, APP, *spread(9, "theirs"))])

    assert {e.id[:4] for e in await store.list_events(WS, WEB, limit=100)} == {"mine"}
    for ws, prj in ((OTHER_WS, WEB), (WS, APP), ("ws-nobody", WEB)):
        assert await store.list_events(ws, prj, limit=100) == []
        assert await store.list_events(ws, prj, limit=100, event_type="signup") == []
        assert await store.count_series(ws, prj, StoredGrain.MINUTE, START, END) == []
        assert await store.count_series(ws, prj, StoredGrain.HOUR, START, END, "signup") == []
        assert await store.event_type_totals(ws, prj, START, END) == []
    totals = await store.event_type_totals(OTHER_WS, APP, START, END)
    assert sum(t.count for t in totals) == 9


async def test_rebuild_counts_reproduces_the_maintained_counts(store: Store) -> None:
    """Recomputing the counts from events changes nothing and reports every event counted."""
    await store.append([batch(WS, WEB, *spread(30))])
    await store.append([batch(OTHER_WS, APP, *spread(20))])
    model = Model()
    model.append([batch(WS, WEB, *spread(30)), batch(OTHER_WS, APP, *spread(20))])

    assert await store.rebuild_counts() == Recount(50, frozenset({WS, OTHER_WS}))
    assert await store.rebuild_counts(OTHER_WS) == Recount(20, frozenset({OTHER_WS}))
    assert await store.rebuild_counts("ws-nobody") == Recount(0, frozenset())

    await assert_matches_model(store, model, [(WS, WEB), (OTHER_WS, APP)], ["signup"])


async def test_rebuild_counts_repairs_wiped_counts(store_kit: StoreKit) -> None:
    """After the count tables are lost, a rebuild restores them from the stored events."""
    store = store_kit.store
    batches = [batch(WS, WEB, *spread(30)), batch(OTHER_WS, APP, *spread(20))]
    model = Model()
    model.append(batches)
    await store.append(batches)
    await store_kit.wipe_counts()
    assert await store.count_series(WS, WEB, StoredGrain.HOUR, START, END) == []

    assert await store.rebuild_counts(WS) == Recount(30, frozenset({WS}))

    assert await store.count_series(WS, WEB, StoredGrain.HOUR, START, END) == model.series(
        WS, WEB, StoredGrain.HOUR, START, END
    )
    assert await store.count_series(OTHER_WS, APP, StoredGrain.HOUR, START, END) == []
    assert await store.rebuild_counts() == Recount(50, frozenset({WS, OTHER_WS}))
    await assert_matches_model(store, model, [(WS, WEB), (OTHER_WS, APP)], ["signup", "click"])


async def test_counts_keep_growing_exactly_after_a_rebuild(store_kit: StoreKit) -> None:
    """Appends after a repair add to the rebuilt counts exactly once."""
    store = store_kit.store
    events = spread(30)
    model = Model()
    for chunk in (events[:10], events[5:20]):
        model.append([batch(WS, WEB, *chunk)])
        await store.append([batch(WS, WEB, *chunk)])
    await store_kit.wipe_counts()
    await store.rebuild_counts()

    for chunk in (events[15:], events):
        assert await store.append([batch(WS, WEB, *chunk)]) == model.append(
            [batch(WS, WEB, *chunk)]
        )

    await assert_matches_model(store, model, [(WS, WEB)], ["page_view"])


async def test_an_export_page_is_oldest_first_ties_by_insertion(store: Store) -> None:
    """export_events orders by timestamp, oldest first; equal timestamps first-inserted first."""
    await store.append(
        [batch(WS, WEB, event("new", timestamp=at(9)), event("tie1", timestamp=at(5)))]
    )
    await store.append(
        [batch(WS, WEB, event("tie2", timestamp=at(5)), event("old", timestamp=at(1)))]
    )

    exported = await store.export_events(WS, WEB, START, END, limit=10)

    assert [e.id for e in exported] == ["old", "tie1", "tie2", "new"]
    assert exported == list(reversed(await store.list_events(WS, WEB, limit=10)))


async def test_an_export_page_keeps_to_its_window_type_and_limit(store: Store) -> None:
    """[start, end) bounds the timestamps, the type filter applies, and ``limit`` cuts the
    page after its oldest events."""
    await store.append([batch(WS, WEB, *spread(30))])
    everything = await store.export_events(WS, WEB, START, END, limit=100)
    # The bounds are stored timestamps: start is included, end excluded.
    start, end = everything[5].timestamp, everything[20].timestamp

    windowed = await store.export_events(WS, WEB, start, end, limit=100)
    assert windowed == [e for e in everything if start <= e.timestamp < end]
    assert windowed[0].timestamp == start
    assert windowed[-1].timestamp < end
    typed = await store.export_events(WS, WEB, START, END, limit=100, event_type="signup")
    assert typed == [e for e in everything if e.type == "signup"]
    assert await store.export_events(WS, WEB, START, END, limit=7) == everything[:7]
    assert await store.export_events(WS, WEB, START, END, limit=0) == []


@pytest.mark.parametrize("limit", [1, 3, 7, 1000])
async def test_export_pages_visit_every_event_once_in_order(store: Store, limit: int) -> None:
    """Each page strictly after the last event of the one before: every event once, in order,
    also across runs of equal timestamps; another workspace's and project's events never."""
    await store.append([batch(WS, WEB, *spread(40))])
    await store.append([batch(WS, APP, *spread(5, "app")), batch(OTHER_WS, WEB, *spread(5, "x"))])
    visited: list[StoredEvent] = []
    after: EventCursor | None = None
    while True:
        page = await store.export_events(WS, WEB, START, END, limit=limit, after=after)
        visited += page
        if len(page) < limit:
            break
        after = EventCursor(page[-1].timestamp, page[-1].seq)

    assert visited == await store.export_events(WS, WEB, START, END, limit=1000)
    assert [(e.timestamp, e.seq) for e in visited] == sorted((e.timestamp, e.seq) for e in visited)
    assert sorted(e.id for e in visited) == sorted(f"e{n}" for n in range(40))
