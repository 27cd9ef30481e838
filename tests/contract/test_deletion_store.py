"""The deletion half of the EventStore contract: the events a selector takes are gone, their ids
stay known, and every count, sketch and tally equals a rebuild from what remains."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from eventcore.aggregation import StoredGrain
from eventcore.deletions import Deletion, DeletionStatus, EventSelector
from eventcore.events import Event
from eventcore.persons import estimate
from eventcore.ports import AppendResult, Store
from tests.contract.support import EVERYTHING, T0, batch, event
from tests.contract.test_dimension_store import declared_project

START, END = EVERYTHING
TYPES = ("view", "signup", "buy")
PERSONS = ("ada", "bob", "cy", "dee")


def spread(count: int, prefix: str = "e") -> list[Event]:
    """Events over three days: three types, four persons (some anonymous), two plans."""
    made = []
    for n in range(count):
        person = PERSONS[n % 4]
        made.append(
            event(
                f"{prefix}{n}",
                TYPES[n % 3],
                T0 + timedelta(hours=n * 5 % 72, minutes=n % 60),
                b'{"plan": "%s"}' % (b"pro" if n % 2 else b"free"),
                user_id=person if n % 5 else None,
                anonymous_id=None if n % 5 else f"anon-{person}",
            )
        )
    return made


async def derived(store: Store, ws: str, prj: str) -> dict[str, Any]:
    """Everything a store keeps of a project besides its events."""
    answers: dict[str, Any] = {}
    for grain in StoredGrain:
        answers[f"counts {grain}"] = await store.count_series(ws, prj, grain, START, END)
    for event_type in (None, *TYPES):
        answers[f"sketches {event_type}"] = await store.user_sketches(
            ws, prj, START, END, event_type
        )
        answers[f"tallies {event_type}"] = await store.dimension_tallies(
            ws, prj, "plan", START, END, event_type
        )
    return answers


async def test_a_deletion_leaves_what_a_rebuild_of_the_rest_makes(store: Store) -> None:
    """By person (user_id or anonymous_id): those events are gone, and every count, sketch and
    tally equals what a rebuild makes from the events that remain."""
    ws, prj = await declared_project(store, ("plan",))
    events = spread(60)
    await store.append([batch(ws, prj, *events)])

    deleted = await store.delete_events(
        ws, prj, EventSelector(user_ids=("bob", "anon-cy")), limit=1000
    )

    gone = [e for e in events if e.user_id == "bob" or e.anonymous_id == "anon-cy"]
    assert deleted == len(gone) > 0
    listed = await store.list_events(ws, prj, limit=1000)
    assert {e.id for e in listed} == {e.id for e in events} - {e.id for e in gone}
    after = await derived(store, ws, prj)
    await store.rebuild_counts(ws)
    assert after == await derived(store, ws, prj)
    assert sum(p.count for p in after[f"counts {StoredGrain.HOUR}"]) == len(listed)


async def test_a_deleted_id_is_a_duplicate_for_ever(store: Store) -> None:
    """A resend or redelivery of a deleted event is a duplicate: it is never stored again."""
    ws, prj = await declared_project(store, ("plan",))
    events = spread(10)
    await store.append([batch(ws, prj, *events)])
    await store.delete_events(ws, prj, EventSelector(event_ids=("e1", "e2")), limit=100)
    before = await derived(store, ws, prj)

    again = await store.append([batch(ws, prj, *events)])

    assert again == AppendResult(inserted=0, duplicates=10)
    assert len(await store.list_events(ws, prj, limit=100)) == 8
    assert await derived(store, ws, prj) == before


async def test_the_criteria_intersect(store: Store) -> None:
    """Persons and a time range together take the persons' events in the range only."""
    ws, prj = await declared_project(store, ("plan",))
    events = spread(60)
    await store.append([batch(ws, prj, *events)])
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=2)
    selector = EventSelector(user_ids=("ada",), start=start, end=end)

    deleted = await store.delete_events(ws, prj, selector, limit=1000)

    gone = {e.id for e in events if e.user_id == "ada" and start <= e.timestamp < end}
    assert deleted == len(gone) > 0
    kept = {e.id for e in await store.list_events(ws, prj, limit=1000)}
    assert kept == {e.id for e in events} - gone
    assert any(e.user_id == "ada" for e in events if e.id in kept)


@pytest.mark.parametrize("limit", [1, 7, 1000])
async def test_a_deletion_runs_in_chunks_of_at_most_limit(store: Store, limit: int) -> None:
    ws, prj = await declared_project(store, ("plan",))
    events = spread(30)
    await store.append([batch(ws, prj, *events)])
    selector = EventSelector(start=T0, end=T0 + timedelta(days=2))
    total = sum(1 for e in events if e.timestamp < T0 + timedelta(days=2))

    chunks = []
    while (done := await store.delete_events(ws, prj, selector, limit=limit)) == limit:
        chunks.append(done)
    chunks.append(done)

    assert sum(chunks) == total
    assert all(chunk <= limit for chunk in chunks)
    assert await store.delete_events(ws, prj, selector, limit=limit) == 0
    after = await derived(store, ws, prj)
    await store.rebuild_counts(ws)
    assert after == await derived(store, ws, prj)


async def test_nothing_of_another_project_or_workspace_is_touched(store: Store) -> None:
    ours, web = await declared_project(store, ("plan",))
    theirs, shop = await declared_project(store, ("plan",))
    events = spread(20)
    await store.append([batch(ours, web, *events), batch(theirs, shop, *events)])
    await store.append([batch(ours, "prj-app", *events)])
    others = [await derived(store, theirs, shop), await derived(store, ours, "prj-app")]

    await store.delete_events(ours, web, EventSelector(user_ids=PERSONS), limit=1000)

    assert [await derived(store, theirs, shop), await derived(store, ours, "prj-app")] == others
    assert len(await store.list_events(theirs, shop, limit=100)) == 20
    # Their ids are not deleted in the other tenants: appending them there is a duplicate as
    # any stored id is, and a new id there is stored.
    assert await store.append([batch(theirs, shop, event("new-one"))]) == AppendResult(1, 0)


async def test_a_selector_taking_nothing_deletes_nothing(store: Store) -> None:
    ws, prj = await declared_project(store, ("plan",))
    await store.append([batch(ws, prj, *spread(10))])
    before = await derived(store, ws, prj)

    assert await store.delete_events(ws, prj, EventSelector(user_ids=("nobody",)), limit=10) == 0
    assert await store.delete_events(ws, prj, EventSelector(event_ids=("nope",)), limit=10) == 0

    assert await derived(store, ws, prj) == before


async def test_events_received_before_a_deletion_and_committed_after_are_withheld(
    store: Store,
) -> None:
    """An event accepted before a deletion was requested but appended after (it waited in the
    queue) is not stored when the deletion takes it, and its id is kept as deleted; one
    received after the request is stored."""
    ws, prj = await declared_project(store, ("plan",))
    requested = T0 + timedelta(minutes=5)
    await store.create_deletion(
        Deletion(
            id="del-1",
            workspace_id=ws,
            project_id=prj,
            selector=EventSelector(user_ids=("ada",)),
            status=DeletionStatus.DONE,
            requested_at=requested,
            requested_by="user-1",
        )
    )
    queued = [event("q1", user_id="ada"), event("q2", user_id="bob"), event("q3")]

    late = await store.append([batch(ws, prj, *queued, received_at=T0)])

    assert late == AppendResult(inserted=2, duplicates=1)
    assert {e.id for e in await store.list_events(ws, prj, limit=10)} == {"q2", "q3"}
    # Its id is known as deleted: even received later, it is a duplicate.
    again = batch(ws, prj, event("q1", user_id="ada"), received_at=requested + timedelta(1))
    assert await store.append([again]) == AppendResult(inserted=0, duplicates=1)
    # Ada's events received after the request are hers to keep.
    after = batch(ws, prj, event("n1", user_id="ada"), received_at=requested + timedelta(1))
    assert await store.append([after]) == AppendResult(inserted=1, duplicates=0)
    hours = await store.count_series(ws, prj, StoredGrain.HOUR, START, END)
    assert sum(point.count for point in hours) == 3
    persons = await store.user_sketches(ws, prj, START, END)
    assert estimate(sketch for _, sketch in persons).users == 2
