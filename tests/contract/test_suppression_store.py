"""The SuppressionStore contract: a deletion request with ``suppress`` suppresses its persons in
the same transaction; they are listed, lifted once, gone with their workspace; and an append
never stores an event of a suppressed person, whenever it was received."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from eventcore.audit import AuditAction
from eventcore.deletions import Deletion, DeletionStatus, EventSelector
from eventcore.ports import AppendResult, Store
from eventcore.suppressions import Suppression
from tests.contract.support import EVERYTHING, T0, batch, event, new_id
from tests.contract.test_audit_store import entry
from tests.contract.test_dimension_store import declared_project

START, END = EVERYTHING
LIFTED = T0 + timedelta(hours=2)


def suppressing(
    ws: str,
    prj: str,
    *persons: str,
    at: timedelta = timedelta(0),
    start_days: int | None = None,
) -> Deletion:
    """A request that suppresses ``persons`` (its deletion takes only events from
    ``start_days`` after T0 on, when given: so that what an append withholds is the
    suppression's doing, not the deletion's)."""
    return Deletion(
        id=new_id("del"),
        workspace_id=ws,
        project_id=prj,
        selector=EventSelector(
            user_ids=persons,
            start=None if start_days is None else T0 + timedelta(days=start_days),
        ),
        status=DeletionStatus.PENDING,
        requested_at=T0 + at,
        requested_by="user-1",
        suppress=True,
    )


async def test_a_request_with_suppress_suppresses_its_persons_in_its_project(
    store: Store,
) -> None:
    ws, prj = await declared_project(store, ("plan",))
    other_ws, other_prj = await declared_project(store, ("plan",))
    request = suppressing(ws, prj, "bob", "ada")
    added = entry(ws, AuditAction.SUPPRESSION_ADDED)

    await store.create_deletion(
        request, audit=entry(ws, AuditAction.DELETION_REQUESTED), suppression_audit=added
    )

    assert await store.suppressed_persons(ws, prj) == {"ada", "bob"}
    assert await store.suppressed_persons(ws, "prj-other") == frozenset()
    assert await store.suppressed_persons(other_ws, other_prj) == frozenset()
    assert await store.list_suppressions(ws, prj, limit=10) == [
        Suppression(ws, prj, person, T0, request.id, "user-1") for person in ("ada", "bob")
    ]
    stored = await store.get_deletion(ws, request.id)
    assert stored is not None
    assert stored.suppress
    logged = [e.action for e in await store.list_audit(ws, limit=10)]
    assert sorted(logged) == sorted([AuditAction.DELETION_REQUESTED, AuditAction.SUPPRESSION_ADDED])


async def test_a_request_without_suppress_suppresses_nobody(store: Store) -> None:
    ws, prj = await declared_project(store, ("plan",))
    plain = msgspec.structs.replace(suppressing(ws, prj, "ada"), suppress=False)

    await store.create_deletion(plain, suppression_audit=entry(ws, AuditAction.SUPPRESSION_ADDED))

    assert await store.suppressed_persons(ws, prj) == frozenset()
    assert await store.list_suppressions(ws, prj, limit=10) == []
    stored = await store.get_deletion(ws, plain.id)
    assert stored is not None
    assert not stored.suppress
    assert await store.list_audit(ws, limit=10) == []


async def test_a_person_suppressed_again_keeps_the_first_suppression(store: Store) -> None:
    ws, prj = await declared_project(store, ("plan",))
    first = suppressing(ws, prj, "ada")
    again = suppressing(ws, prj, "ada", "cy", at=timedelta(hours=1))

    await store.create_deletion(first)
    await store.create_deletion(again)

    listed = await store.list_suppressions(ws, prj, limit=10)
    assert [(s.user_id, s.deletion_id, s.suppressed_at) for s in listed] == [
        ("ada", first.id, T0),
        ("cy", again.id, T0 + timedelta(hours=1)),
    ]


async def test_the_listing_pages_by_person_in_byte_order(store: Store) -> None:
    ws, prj = await declared_project(store, ("plan",))
    persons = ("b", "a", "é", "Z", "aa", "10", "9", "😀")
    await store.create_deletion(suppressing(ws, prj, *persons))

    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = await store.list_suppressions(ws, prj, limit=3, after=after)
        if not page:
            break
        pages.append([s.user_id for s in page])
        after = page[-1].user_id

    order = sorted(persons, key=lambda p: p.encode())
    assert [p for page in pages for p in page] == order
    assert [len(page) for page in pages] == [3, 3, 2]
    assert await store.list_suppressions(ws, prj, limit=0) == []


async def test_a_suppression_is_lifted_once_and_recorded(store: Store) -> None:
    ws, prj = await declared_project(store, ("plan",))
    await store.create_deletion(suppressing(ws, prj, "ada", "bob"))

    lifted = await store.lift_suppression(
        ws, prj, "ada", LIFTED, audit=entry(ws, AuditAction.SUPPRESSION_LIFTED)
    )
    again = await store.lift_suppression(
        ws, prj, "ada", LIFTED, audit=entry(ws, AuditAction.SUPPRESSION_LIFTED)
    )

    assert (lifted, again) == (True, False)
    assert await store.suppressed_persons(ws, prj) == {"bob"}
    assert [e.action for e in await store.list_audit(ws, limit=10)] == [
        AuditAction.SUPPRESSION_LIFTED
    ]
    # Another project's or workspace's lift of the same person touches nothing of it.
    other_ws, other_prj = await declared_project(store, ("plan",))
    assert not await store.lift_suppression(other_ws, prj, "bob", LIFTED)
    assert not await store.lift_suppression(ws, other_prj, "bob", LIFTED)
    assert await store.suppressed_persons(ws, prj) == {"bob"}


async def test_an_append_never_stores_a_suppressed_persons_event(store: Store) -> None:
    """Received after the suppression (an event past the ingest check), by user_id or by
    anonymous_id: not stored, its id kept as deleted; other persons, events without one and
    the same person in another project are stored."""
    ws, prj = await declared_project(store, ("plan",))
    await store.create_deletion(suppressing(ws, prj, "ada", "anon-7"))
    later = T0 + timedelta(minutes=1)

    result = await store.append(
        [
            batch(
                ws,
                prj,
                event("s1", user_id="ada"),
                event("s2", anonymous_id="ada"),
                event("s3", user_id="bob", anonymous_id="anon-7"),
                event("k1", user_id="bob"),
                event("k2"),
                received_at=later,
            ),
            batch(ws, "prj-app", event("k3", user_id="ada"), received_at=later),
        ]
    )

    assert result == AppendResult(inserted=3, duplicates=3)
    assert {e.id for e in await store.list_events(ws, prj, limit=10)} == {"k1", "k2"}
    assert {e.id for e in await store.list_events(ws, "prj-app", limit=10)} == {"k3"}
    # The withheld ids are kept as deleted: after a lift, the same ids stay out (a redelivery
    # of a batch received while suppressed), and new events of the person are stored.
    assert await store.lift_suppression(ws, prj, "ada", LIFTED)
    assert await store.lift_suppression(ws, prj, "anon-7", LIFTED)
    redelivered = batch(ws, prj, event("s1", user_id="ada"), event("s3", user_id="bob"))
    assert await store.append([redelivered]) == AppendResult(inserted=0, duplicates=2)
    fresh = batch(ws, prj, event("n1", user_id="ada"), received_at=LIFTED)
    assert await store.append([fresh]) == AppendResult(inserted=1, duplicates=0)


async def test_events_received_before_the_suppression_and_appended_after_are_withheld(
    store: Store,
) -> None:
    """Accepted before the request and still queued when it was made: the suppression
    withholds them too, even those its deletion does not take (here: before its start)."""
    ws, prj = await declared_project(store, ("plan",))
    await store.create_deletion(suppressing(ws, prj, "ada", at=timedelta(hours=1), start_days=1))
    queued = [event("q1", user_id="ada"), event("q2", anonymous_id="ada"), event("q3")]

    late = await store.append([batch(ws, prj, *queued, received_at=T0)])

    assert late == AppendResult(inserted=1, duplicates=2)
    assert {e.id for e in await store.list_events(ws, prj, limit=10)} == {"q3"}
    counted = await store.event_type_totals(ws, prj, START, END)
    assert sum(c.count for c in counted) == 1


async def test_events_received_while_suppressed_are_withheld_even_after_the_lift(
    store: Store,
) -> None:
    """A lifted suppression still withholds the events received while it was in force (they
    waited in the queue across the lift); those received before it or since the lift are
    stored. Suppressed again, the person is refused again, and listed once."""
    ws, prj = await declared_project(store, ("plan",))
    await store.create_deletion(suppressing(ws, prj, "ada", at=timedelta(hours=1), start_days=9))
    assert await store.lift_suppression(ws, prj, "ada", LIFTED)
    assert await store.list_suppressions(ws, prj, limit=10) == []
    assert await store.suppressed_persons(ws, prj) == frozenset()

    late = await store.append(
        [
            batch(ws, prj, event("before", user_id="ada"), received_at=T0),
            batch(ws, prj, event("during", user_id="ada"), received_at=T0 + timedelta(hours=1)),
            batch(
                ws,
                prj,
                event("during-2", anonymous_id="ada"),
                received_at=LIFTED - timedelta(seconds=1),
            ),
            batch(ws, prj, event("after", user_id="ada"), received_at=LIFTED),
        ]
    )

    assert late == AppendResult(inserted=2, duplicates=2)
    assert {e.id for e in await store.list_events(ws, prj, limit=10)} == {"before", "after"}
    again = suppressing(ws, prj, "ada", at=timedelta(hours=3))
    await store.create_deletion(again)
    assert await store.suppressed_persons(ws, prj) == {"ada"}
    listed = await store.list_suppressions(ws, prj, limit=10)
    assert [(s.user_id, s.deletion_id) for s in listed] == [("ada", again.id)]
    now = batch(ws, prj, event("again", user_id="ada"), received_at=T0 + timedelta(hours=3))
    assert await store.append([now]) == AppendResult(inserted=0, duplicates=1)


async def test_a_workspace_deletion_removes_its_suppressions(store: Store) -> None:
    gone, web = await declared_project(store, ("plan",))
    kept, shop = await declared_project(store, ("plan",))
    await store.create_deletion(suppressing(gone, web, "ada"))
    await store.create_deletion(suppressing(kept, shop, "ada"))

    assert await store.delete_workspace(gone, T0) is not None

    assert await store.suppressed_persons(gone, web) == frozenset()
    assert await store.list_suppressions(gone, web, limit=10) == []
    assert await store.suppressed_persons(kept, shop) == {"ada"}
