"""The retention half of the store's contract: expiry deletes a project's events before a cutoff,
oldest first, drops the rows of the whole days it empties, recounts the cutoff's day once, and
leaves exactly what a rebuild of the remaining events makes; an append withholds events already
past their project's retention, keeping no id of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventcore.aggregation import Granularity, StoredGrain, bucket_start
from eventcore.ports import AppendResult, Store
from eventcore.retention import cutoff
from tests.contract.support import T0, batch, event, project
from tests.contract.test_deletion_store import START, derived, spread
from tests.contract.test_dimension_store import declared_project

# A whole minute on the events' second day: their first day (from T0, noon) is wholly expired,
# the second partly, the third and fourth not at all.
BEFORE = T0 + timedelta(hours=19, minutes=13)
CUTOFF_DAY = bucket_start(BEFORE, Granularity.DAY)
DAY = timedelta(days=1)


async def expire_all(store: Store, ws: str, prj: str, limit: int) -> list[int]:
    """A retention run's loop over one project: chunks until one is short."""
    chunks = []
    while True:
        done = await store.expire_events(ws, prj, BEFORE, limit=limit)
        chunks.append(done)
        if done < limit:
            return chunks


async def equals_a_rebuild(store: Store, ws: str, prj: str) -> dict[str, object]:
    after = await derived(store, ws, prj)
    await store.rebuild_counts(ws)
    assert after == await derived(store, ws, prj)
    return after


@pytest.mark.parametrize("limit", [1, 7, 1000])
async def test_expiry_leaves_what_a_rebuild_of_the_rest_makes(store: Store, limit: int) -> None:
    ws, prj = await declared_project(store, ("plan",))
    events = spread(60)
    await store.append([batch(ws, prj, *events)])
    expiring = [e for e in events if e.timestamp < BEFORE]
    assert expiring
    assert any(e.timestamp >= CUTOFF_DAY for e in expiring)

    chunks = await expire_all(store, ws, prj, limit)

    assert sum(chunks) == len(expiring)
    assert all(chunk <= limit for chunk in chunks)
    listed = await store.list_events(ws, prj, limit=1000)
    assert {e.id for e in listed} == {e.id for e in events} - {e.id for e in expiring}
    after = await equals_a_rebuild(store, ws, prj)
    # The whole expired day has no row left; the cutoff's day counts only what remains of it.
    hours = after[f"counts {StoredGrain.HOUR}"]
    assert isinstance(hours, list)
    assert [p for p in hours if p.bucket < CUTOFF_DAY] == []
    remaining_that_day = [e for e in listed if CUTOFF_DAY <= e.timestamp < CUTOFF_DAY + DAY]
    assert sum(p.count for p in hours if CUTOFF_DAY <= p.bucket < CUTOFF_DAY + DAY) == len(
        remaining_that_day
    )
    assert sum(p.count for p in hours) == len(listed)
    assert await store.user_sketches(ws, prj, START, CUTOFF_DAY) == []
    assert await store.dimension_tallies(ws, prj, "plan", START, CUTOFF_DAY) == []


async def test_a_run_again_finds_nothing_and_changes_nothing(store: Store) -> None:
    ws, prj = await declared_project(store, ("plan",))
    await store.append([batch(ws, prj, *spread(40))])
    await expire_all(store, ws, prj, 1000)
    before = await derived(store, ws, prj)

    assert await store.expire_events(ws, prj, BEFORE, limit=1000) == 0

    assert await derived(store, ws, prj) == before


async def test_a_run_stopped_after_a_full_chunk_is_finished_by_the_next(store: Store) -> None:
    """A chunk that deleted exactly ``limit`` events (the cutoff day's among them) leaves the
    cutoff's day to the call that finds none left: that one makes it again."""
    ws, prj = await declared_project(store, ("plan",))
    events = spread(60)
    await store.append([batch(ws, prj, *events)])
    expiring = sum(1 for e in events if e.timestamp < BEFORE)

    assert await store.expire_events(ws, prj, BEFORE, limit=expiring) == expiring
    # Stopped here: the cutoff's day still counts what was deleted of it.
    hours = await store.count_series(ws, prj, StoredGrain.HOUR, START, CUTOFF_DAY + DAY)
    assert sum(p.count for p in hours) > sum(
        1 for e in events if BEFORE <= e.timestamp < CUTOFF_DAY + DAY
    )

    assert await store.expire_events(ws, prj, BEFORE, limit=expiring) == 0

    await equals_a_rebuild(store, ws, prj)


async def test_an_event_stored_behind_a_run_under_way_is_expired_by_it(store: Store) -> None:
    """A run's chunks go on from where the previous one got to (PostgreSQL), yet an event older
    than that, stored meanwhile (by an append that began before the run), is still taken before
    the run ends, and what is left is what a rebuild makes."""
    ws, prj = await declared_project(store, ("plan",))
    events = spread(60)
    await store.append([batch(ws, prj, *events)])
    expiring = sum(1 for e in events if e.timestamp < BEFORE)
    assert await store.expire_events(ws, prj, BEFORE, limit=3) == 3
    (late,) = spread(1, prefix="late")
    assert late.timestamp == min(e.timestamp for e in events)
    await store.append([batch(ws, prj, late)])

    chunks = await expire_all(store, ws, prj, 3)

    assert sum(chunks) == expiring - 3 + 1
    assert all(chunk <= 3 for chunk in chunks)
    listed = await store.list_events(ws, prj, limit=1000)
    assert sorted(e.id for e in listed) == sorted(e.id for e in events if e.timestamp >= BEFORE)
    await equals_a_rebuild(store, ws, prj)


async def test_nothing_of_another_project_or_workspace_is_touched(store: Store) -> None:
    ours, web = await declared_project(store, ("plan",))
    theirs, shop = await declared_project(store, ("plan",))
    events = spread(30)
    await store.create_project(project(ours))
    app = (await store.list_projects(ours))[-1].id
    await store.append([batch(ours, web, *events), batch(theirs, shop, *events)])
    await store.append([batch(ours, app, *events)])
    others = [await derived(store, theirs, shop), await derived(store, ours, app)]

    await expire_all(store, ours, web, 1000)

    assert [await derived(store, theirs, shop), await derived(store, ours, app)] == others
    assert len(await store.list_events(theirs, shop, limit=100)) == 30
    assert len(await store.list_events(ours, app, limit=100)) == 30
    assert len(await store.list_events(ours, web, limit=100)) < 30


async def test_an_append_withholds_events_past_the_retention(store: Store) -> None:
    """Once a project has a retention, an event past it at the time of the append is not stored,
    however long ago its batch was received (a queue's redelivery), and no id of it is kept:
    with no retention, the same event is stored."""
    ws, prj = await declared_project(store, ("plan",))
    now = datetime.now(UTC)
    # Five minutes inside each day's edge: the store's own clock reads a moment later.
    events = [event(f"x{n}", "view", now - timedelta(days=n, minutes=5)) for n in range(5)]
    await store.append([batch(ws, prj, *events[:2])])
    assert await store.set_retention(ws, prj, 2) is not None

    first = await store.append([batch(ws, prj, *events, received_at=now - timedelta(days=9))])

    assert first == AppendResult(inserted=0, duplicates=5)
    assert {e.id for e in await store.list_events(ws, prj, limit=100)} == {"x0", "x1"}
    await equals_a_rebuild(store, ws, prj)
    # Stored before the retention, expired by the run, then sent again: still not stored.
    await store.set_retention(ws, prj, None)
    assert await store.append([batch(ws, prj, *events)]) == AppendResult(3, 2)
    await store.set_retention(ws, prj, 2)
    assert await store.expire_events(ws, prj, cutoff(now, 2), limit=1000) == 3
    before = await derived(store, ws, prj)
    again = await store.append([batch(ws, prj, *events, received_at=now - timedelta(days=9))])
    assert again == AppendResult(inserted=0, duplicates=5)
    assert await derived(store, ws, prj) == before
    # Without a retention, they are new again: no id of them was kept.
    await store.set_retention(ws, prj, None)
    assert await store.append([batch(ws, prj, *events)]) == AppendResult(3, 2)


async def test_a_retention_is_set_read_and_listed_across_workspaces(store: Store) -> None:
    ours, web = await declared_project(store, ("plan",))
    theirs, shop = await declared_project(store, ("plan",))
    await store.create_project(project(ours))
    unset = (await store.list_projects(ours))[-1].id

    changed = await store.set_retention(ours, web, 30)
    await store.set_retention(theirs, shop, 3650)

    assert changed is not None
    assert changed.retention_days == 30
    assert changed.dimensions == ("plan",)
    got = await store.get_project(ours, web)
    assert got is not None
    assert got.retention_days == 30
    assert (await store.get_project(ours, unset)) is not None
    listed = {
        (p.workspace_id, p.id, p.retention_days) for p in await store.projects_with_retention()
    }
    assert {(ours, web, 30), (theirs, shop, 3650)} <= listed
    assert all(p.id != unset for p in await store.projects_with_retention())
    # Another workspace's project is not found, and so not changed.
    assert await store.set_retention(theirs, web, 1) is None
    assert got == await store.get_project(ours, web)
    cleared = await store.set_retention(ours, web, None)
    assert cleared is not None
    assert cleared.retention_days is None
    assert all(p.id != web for p in await store.projects_with_retention())
