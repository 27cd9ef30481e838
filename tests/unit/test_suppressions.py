"""Suppressions through the use cases: a deletion request with ``suppress``, the ingest refusing
the persons' events one by one, lifting, listing, and the per-process cache's bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory import MemoryStore
from eventcore.audit import AuditAction
from eventcore.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from eventcore.events import EventLimits, validate_events
from eventcore.tenancy import ProjectRef, Role
from eventcore.usecases.deletions import Deletions
from eventcore.usecases.ingest import SuppressedPersons, without_suppressed
from tests.unit.conftest import NOW, App, AppFactory, Tenant

SUPPRESSED = "suppressed"


async def suppress(app: App, tenant: Tenant, *persons: str) -> None:
    await app.platform.deletions.request(
        tenant.principal, tenant.project_id, user_ids=list(persons), suppress=True
    )


def codes(receipt: Any) -> list[tuple[int, str]]:
    return [(r.index, r.code) for r in receipt.rejected]


async def test_a_request_with_suppress_is_stored_with_its_suppressions_and_audit(
    app: App,
) -> None:
    tenant = await app.signup()

    deletion = await app.platform.deletions.request(
        tenant.principal, tenant.project_id, user_ids=["ada", "bob", "ada"], suppress=True
    )

    assert deletion.suppress
    assert await app.memory.suppressed_persons(tenant.workspace_id, tenant.project_id) == {
        "ada",
        "bob",
    }
    page = await app.platform.deletions.suppressions(tenant.principal, tenant.project_id)
    assert [(s.user_id, s.deletion_id) for s in page.suppressions] == [
        ("ada", deletion.id),
        ("bob", deletion.id),
    ]
    assert page.next_after is None
    added = next(e for e in app.memory.audit_log if e.action == AuditAction.SUPPRESSION_ADDED)
    assert (added.actor_id, added.target_type, added.target_id) == (
        tenant.principal.user_id,
        "project",
        tenant.project_id,
    )
    assert added.details == {"deletion_id": deletion.id, "user_ids": 2}


@pytest.mark.parametrize(
    "criteria",
    [{}, {"event_ids": ["e1"]}, {"start": NOW}, {"user_ids": []}],
)
async def test_suppress_needs_user_ids_and_changes_nothing_without(
    app: App, criteria: dict[str, Any]
) -> None:
    tenant = await app.signup()
    logged = len(app.memory.audit_log)

    with pytest.raises(InvalidRequest) as refused:
        await app.platform.deletions.request(
            tenant.principal, tenant.project_id, suppress=True, **criteria
        )

    assert "`user_ids`" in str(refused.value)
    assert app.memory.deletions == {}
    assert app.memory.suppressions == {}
    assert len(app.memory.audit_log) == logged


async def test_viewers_and_other_workspaces_may_not_suppress_list_or_lift(app: App) -> None:
    tenant = await app.signup()
    viewer = await app.member(tenant, Role.VIEWER)
    stranger = await app.signup(workspace="Globex")
    await suppress(app, tenant, "ada")
    deletions = app.platform.deletions

    with pytest.raises(PermissionDenied):
        await deletions.request(viewer, tenant.project_id, user_ids=["bob"], suppress=True)
    with pytest.raises(PermissionDenied):
        await deletions.lift(viewer, tenant.project_id, "ada")
    with pytest.raises(PermissionDenied):
        await deletions.suppressions(viewer, tenant.project_id)
    with pytest.raises(NotFound):
        await deletions.request(
            stranger.principal, tenant.project_id, user_ids=["bob"], suppress=True
        )
    with pytest.raises(NotFound):
        await deletions.lift(stranger.principal, tenant.project_id, "ada")
    with pytest.raises(NotFound):
        await deletions.suppressions(stranger.principal, tenant.project_id)
    assert await app.memory.suppressed_persons(tenant.workspace_id, tenant.project_id) == {"ada"}


async def test_a_suppressed_persons_events_are_rejected_one_by_one(app: App) -> None:
    """By user_id or anonymous_id, reported at their request indexes among invalid events;
    the rest is accepted, and a request of suppressed events only is not an error."""
    tenant = await app.signup()
    await suppress(app, tenant, "ada")

    receipt = await app.ingestor.submit(
        tenant.ref,
        [
            {"id": "a", "type": "view", "user_id": "ada"},
            {"type": ""},
            {"id": "b", "type": "view", "user_id": "bob"},
            {"id": "c", "type": "view", "user_id": "bob", "anonymous_id": "ada"},
            {"id": "d", "type": "view"},
            {"id": "e", "type": "view", "timestamp": "yesterday"},
            {"id": "f", "type": "view", "anonymous_id": "ada"},
        ],
    )

    assert (receipt.accepted, receipt.duplicates) == (2, 0)
    assert codes(receipt) == [
        (0, SUPPRESSED),
        (1, "invalid_event"),
        (3, SUPPRESSED),
        (5, "invalid_event"),
        (6, SUPPRESSED),
    ]
    assert {e.id for e in app.stored(tenant.ref)} == {"b", "d"}
    only = await app.ingestor.submit(tenant.ref, [{"type": "view", "user_id": "ada"}])
    assert (only.accepted, codes(only)) == (0, [(0, SUPPRESSED)])
    # The same person in another project of the workspace is not suppressed.
    other, _, _ = await app.add_project(tenant.principal, "Shop")
    there = ProjectRef(tenant.workspace_id, other.id)
    assert (await app.ingestor.submit(there, [{"type": "view", "user_id": "ada"}])).accepted == 1


async def test_lifting_accepts_the_persons_events_again_and_is_recorded(app: App) -> None:
    tenant = await app.signup()
    await suppress(app, tenant, "ada", "bob")
    refused = await app.ingestor.submit(tenant.ref, [{"type": "view", "user_id": "ada"}])
    assert codes(refused) == [(0, SUPPRESSED)]

    await app.platform.deletions.lift(tenant.principal, tenant.project_id, "ada")

    # This process made the change: its ingestor knows at once.
    receipt = await app.ingestor.submit(
        tenant.ref, [{"type": "view", "user_id": "ada"}, {"type": "view", "user_id": "bob"}]
    )
    assert (receipt.accepted, codes(receipt)) == (1, [(1, SUPPRESSED)])
    lifted = [e for e in app.memory.audit_log if e.action == AuditAction.SUPPRESSION_LIFTED]
    assert [(e.target_id, e.details) for e in lifted] == [(tenant.project_id, {"user_id": "ada"})]
    with pytest.raises(NotFound):
        await app.platform.deletions.lift(tenant.principal, tenant.project_id, "ada")
    with pytest.raises(NotFound):
        await app.platform.deletions.lift(tenant.principal, "no-such-project", "bob")
    assert [e.action for e in app.memory.audit_log].count(AuditAction.SUPPRESSION_LIFTED) == 1


async def test_another_processes_change_is_seen_within_the_cache_lifetime(app: App) -> None:
    """A suppression made elsewhere (straight in the store here) is refused at ingest once this
    process's entry of the project ends, 1 s; the append withholds the events in between."""
    tenant = await app.signup()
    ada = [{"type": "view", "user_id": "ada"}]
    assert (await app.ingestor.submit(tenant.ref, ada)).accepted == 1
    other_process = build_deletions_beside(app)
    await other_process.request(
        tenant.principal, tenant.project_id, user_ids=["ada"], suppress=True
    )

    slipped = await app.ingestor.submit(tenant.ref, ada)
    app.clock.advance(1.0)
    refused = await app.ingestor.submit(tenant.ref, ada)

    assert (slipped.accepted, slipped.rejected) == (1, [])
    assert (refused.accepted, codes(refused)) == (0, [(0, SUPPRESSED)])
    # The event that slipped past the ingest check was not stored: only the first one is.
    assert len(app.stored(tenant.ref)) == 1


def build_deletions_beside(app: App) -> Deletions:
    """The deletion use case of another process over the same store (its own cache)."""
    return Deletions(
        app.memory, app.query_cache, app.clock, suppressed=SuppressedPersons(app.memory, app.clock)
    )


async def test_the_listing_pages_by_person(app: App) -> None:
    tenant = await app.signup()
    await suppress(app, tenant, *(f"p{n:02d}" for n in range(7)))
    listing = app.platform.deletions.suppressions

    first = await listing(tenant.principal, tenant.project_id, limit=3)
    second = await listing(tenant.principal, tenant.project_id, limit=3, after=first.next_after)
    last = await listing(tenant.principal, tenant.project_id, limit=3, after=second.next_after)
    exact = await listing(tenant.principal, tenant.project_id, limit=7)

    assert [[s.user_id for s in page.suppressions] for page in (first, second, last)] == [
        ["p00", "p01", "p02"],
        ["p03", "p04", "p05"],
        ["p06"],
    ]
    assert (first.next_after, second.next_after, last.next_after) == ("p02", "p05", None)
    assert (len(exact.suppressions), exact.next_after) == (7, None)
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": ""}, {"after": "x" * 129}):
        with pytest.raises(InvalidRequest) as refused:
            await listing(tenant.principal, tenant.project_id, **bad)
        assert refused.value.code == "invalid_query"
        assert f"`{next(iter(bad))}`" in str(refused.value)


async def test_a_project_holds_a_bounded_number_of_suppressed_persons(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("eventcore.usecases.deletions.MAX_SUPPRESSIONS", 3)
    tenant = await app.signup()
    await suppress(app, tenant, "a", "b")

    with pytest.raises(Conflict) as refused:
        await suppress(app, tenant, "c", "d")

    assert refused.value.code == "too_many_suppressions"
    assert len(app.memory.deletions) == 1
    # Persons already suppressed do not count twice.
    await suppress(app, tenant, "a", "b", "c")
    assert len(app.memory.suppressions) == 3


class UnreachableSuppressions(MemoryStore):
    async def suppressed_persons(self, workspace_id: str, project_id: str) -> frozenset[str]:
        raise DatabaseUnavailable("down")


async def test_the_ingest_check_fails_open_when_the_store_is_unreachable(
    make_app: AppFactory,
) -> None:
    """The append is the guarantee: a store the ingest cannot ask refuses nothing at ingest,
    and the answer is not remembered."""
    cache = SuppressedPersons(UnreachableSuppressions(), make_app().clock)
    ref = ProjectRef("ws", "prj")

    assert await cache.of(ref) == frozenset()
    assert cache._entries == {}


async def test_a_project_without_suppressions_is_asked_once_per_lifetime() -> None:
    calls: list[tuple[str, str]] = []

    class Counting(MemoryStore):
        async def suppressed_persons(self, workspace_id: str, project_id: str) -> frozenset[str]:
            calls.append((workspace_id, project_id))
            return frozenset()

    clock = ManualClock(NOW)
    cache = SuppressedPersons(Counting(), clock)
    ref = ProjectRef("ws", "prj")
    for _ in range(5):
        assert await cache.of(ref) == frozenset()
    clock.advance(0.999)
    await cache.of(ref)
    assert len(calls) == 1
    clock.advance(0.001)
    await cache.of(ref)
    assert len(calls) == 2


PERSONS = st.sampled_from(["ada", "bob", "cy"])
ITEM = st.one_of(
    st.builds(
        lambda user, anonymous: {
            "type": "view",
            **({"user_id": user} if user else {}),
            **({"anonymous_id": anonymous} if anonymous else {}),
        },
        st.none() | PERSONS,
        st.none() | PERSONS,
    ),
    st.just({"type": ""}),
    st.just({"type": "view", "timestamp": "never"}),
)


@settings(max_examples=200)
@given(items=st.lists(ITEM, min_size=1, max_size=12), suppressed=st.frozensets(PERSONS))
def test_rejections_name_each_events_own_index(
    items: list[dict[str, Any]], suppressed: frozenset[str]
) -> None:
    """Every event is either kept or rejected once, at its own index, with the code it has on
    its own: invalid, else suppressed when its person is."""
    texts = [json.dumps(item).encode() for item in items]
    validated = validate_events(texts, now=NOW, limits=EventLimits())

    kept, rejected = without_suppressed(validated, suppressed, len(texts))

    expected: list[tuple[int, str]] = []
    for index, text in enumerate(texts):
        alone = validate_events([text], now=NOW, limits=EventLimits())
        if alone.rejected:
            expected.append((index, alone.rejected[0].code))
        elif {items[index].get("user_id"), items[index].get("anonymous_id")} & suppressed:
            expected.append((index, SUPPRESSED))
    assert [(r.index, r.code) for r in rejected] == expected
    assert len(kept) + len(rejected) == len(items)
