"""The EventStore contract for persons: stored and read back, sketched exactly once per event,
rebuilt from raw events, listed for funnels in (person, time, seq) order, walled off by tenant."""

from __future__ import annotations

from datetime import timedelta

from eventcore.aggregation import Granularity, bucket_start
from eventcore.funnels import PersonEvent
from eventcore.persons import estimate
from eventcore.ports import Store
from tests.contract.implementations import StoreKit
from tests.contract.support import EVERYTHING, T0, at, batch, event

WS, OTHER_WS = "ws-acme", "ws-globex"
WEB, APP = "prj-web", "prj-app"
START, END = EVERYTHING
HOUR = bucket_start(T0, Granularity.HOUR)


def visits(count: int, *, prefix: str = "v", persons: int = 7) -> list:
    """Events over three hours by ``persons`` users, one in five anonymous, one in nine nobody's."""
    made = []
    for n in range(count):
        person = f"user-{n % persons}"
        kind = n % 9
        made.append(
            event(
                f"{prefix}{n}",
                ("page_view", "signup", "purchase")[n % 3],
                at(minutes=(n * 11) % 180, seconds=n % 60),
                user_id=None if kind in (0, 5) else person,
                anonymous_id=(f"anon-{n % 4}" if kind == 5 else None),
            )
        )
    return made


def distinct(events: list, event_type: str | None = None) -> dict:
    """The exact persons per hour, the slow way."""
    hours: dict = {}
    for e in events:
        if e.person is not None and event_type in (None, e.type):
            hours.setdefault(bucket_start(e.timestamp, Granularity.HOUR), set()).add(e.person)
    return hours


async def sketched(store: Store, ws: str, project: str, event_type: str | None = None) -> dict:
    rows = await store.user_sketches(ws, project, START, END, event_type)
    return {hour: estimate([sketch]).users for hour, sketch in rows}


async def test_user_and_anonymous_ids_are_stored_and_listed(store: Store) -> None:
    """Each event's `user_id` and `anonymous_id` come back as they went in, absent as None."""
    events = visits(20)
    await store.append([batch(WS, WEB, *events)])

    listed = {e.id: (e.user_id, e.anonymous_id) for e in await store.list_events(WS, WEB, limit=50)}

    assert listed == {e.id: (e.user_id, e.anonymous_id) for e in events}


async def test_each_hours_sketch_counts_its_distinct_persons(store: Store) -> None:
    """Per hour, of every type together and of each type, the sketch holds exactly the persons
    of the hour's events (few persons: the exact count); hours without persons have no sketch."""
    events = visits(60)
    await store.append([batch(WS, WEB, *events[:25])])
    await store.append([batch(WS, WEB, *events[25:])])

    exact = {hour: len(persons) for hour, persons in distinct(events).items()}
    assert await sketched(store, WS, WEB) == exact
    for event_type in ("page_view", "signup", "purchase"):
        wanted = {hour: len(p) for hour, p in distinct(events, event_type).items()}
        assert await sketched(store, WS, WEB, event_type) == wanted


async def test_the_sketches_of_a_window_are_those_of_its_hours(store: Store) -> None:
    """Only hour buckets starting in [start, end) are returned, ordered by hour."""
    events = visits(60)
    await store.append([batch(WS, WEB, *events)])

    rows = await store.user_sketches(WS, WEB, HOUR + timedelta(hours=1), HOUR + timedelta(hours=2))

    assert [hour for hour, _ in rows] == [HOUR + timedelta(hours=1)]
    all_rows = await store.user_sketches(WS, WEB, START, END)
    assert [hour for hour, _ in all_rows] == sorted(distinct(events))


async def test_resends_and_redeliveries_never_change_a_sketch(store: Store) -> None:
    """Events appended again, alone or among new ones, leave every sketch's bytes as they were,
    but for the new events' persons."""
    events = visits(30)
    await store.append([batch(WS, WEB, *events)])
    before = await store.user_sketches(WS, WEB, START, END)

    await store.append([batch(WS, WEB, *events)])
    # The same ids with other persons are duplicates: their persons count for nothing.
    renamed = [event(e.id, e.type, e.timestamp, user_id="intruder") for e in events]
    await store.append([batch(WS, WEB, *renamed)])

    assert await store.user_sketches(WS, WEB, START, END) == before


async def test_a_rebuild_makes_the_sketches_again_from_raw_events(store_kit: StoreKit) -> None:
    """A rebuild after the count tables (and sketches) are wiped gives the same sketches."""
    store = store_kit.store
    events = visits(40)
    await store.append([batch(WS, WEB, *events[:20]), batch(OTHER_WS, APP, *events[20:])])
    maintained = await store.user_sketches(WS, WEB, START, END)

    theirs = await store.user_sketches(OTHER_WS, APP, START, END)
    assert theirs != []

    await store_kit.wipe_counts()
    await store.rebuild_counts(WS)

    rebuilt = await store.user_sketches(WS, WEB, START, END)
    assert {h: estimate([s]).users for h, s in rebuilt} == {
        h: estimate([s]).users for h, s in maintained
    }
    # The rebuild was of one workspace: the other's (wiped) sketches wait for theirs.
    assert await store.user_sketches(OTHER_WS, APP, START, END) == []
    await store.rebuild_counts()
    assert [estimate([s]) for _, s in await store.user_sketches(OTHER_WS, APP, START, END)] == [
        estimate([s]) for _, s in theirs
    ]


async def test_sketches_and_person_events_are_walled_off_by_tenant(store: Store) -> None:
    """Nothing of one workspace or project appears in another's sketches or person events."""
    await store.append([batch(WS, WEB, *visits(30, prefix="a"))])
    await store.append([batch(OTHER_WS, WEB, *visits(30, prefix="b", persons=3))])

    assert await store.user_sketches(WS, APP, START, END) == []
    assert await store.person_events(WS, APP, ["page_view"], START, END) == []
    mine = await store.person_events(WS, WEB, ["page_view", "signup", "purchase"], START, END)
    theirs = await store.person_events(
        OTHER_WS, WEB, ["page_view", "signup", "purchase"], START, END
    )
    assert {e.person for e in mine} >= {"user-3", "user-6"}
    assert {e.person for e in theirs} <= {
        "user-0",
        "user-1",
        "user-2",
        "anon-0",
        "anon-1",
        "anon-2",
        "anon-3",
    }


async def test_person_events_are_the_types_asked_with_a_person_in_order(store: Store) -> None:
    """Events of the given types, with a person, timestamps in [start, end), by person, time, seq."""
    events = visits(45)
    await store.append([batch(WS, WEB, *events)])
    start, end = at(minutes=20), at(minutes=150)

    found = await store.person_events(WS, WEB, ["signup", "purchase"], start, end)

    wanted = sorted(
        (e.person, e.timestamp, e.type)
        for e in events
        if e.person is not None and e.type in ("signup", "purchase") and start <= e.timestamp < end
    )
    assert [(f.person, f.timestamp, f.type) for f in found] == wanted
    assert all(isinstance(f, PersonEvent) for f in found)
    keys = [(f.person, f.timestamp, f.seq) for f in found]
    assert keys == sorted(keys)
    # With a limit: the first events in that order, no more.
    assert await store.person_events(WS, WEB, ["signup", "purchase"], start, end, 3) == found[:3]
    assert len(found) > 3
    assert await store.person_events(WS, WEB, ["signup", "purchase"], start, end, 0) == []
