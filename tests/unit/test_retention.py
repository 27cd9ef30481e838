"""The retention run: the audit log keeps its entries for its retention, and for ever at 0; a
project keeps its events for its retention, and for ever without one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory import MemoryQueryCache, MemoryStore
from eventcore.audit import ActorType, AuditAction, AuditEntry
from eventcore.errors import InvalidRequest, NotFound, PermissionDenied
from eventcore.tenancy import Role
from eventcore.usecases.maintenance import Maintenance, Retained
from tests.unit.conftest import App, Tenant
from tests.unit.helpers import event

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def recorded(store: MemoryStore, days_ago: int) -> None:
    store.audit_log.append(
        AuditEntry(
            id=f"entry-{days_ago}",
            workspace_id="ws",
            at=NOW.replace(day=10 - days_ago) if days_ago < 10 else NOW.replace(month=1),
            action=AuditAction.SIGNUP,
            actor_type=ActorType.USER,
            actor_id="user",
        )
    )


async def test_entries_older_than_the_retention_go_the_others_stay() -> None:
    store, clock = MemoryStore(), ManualClock(NOW)
    for days_ago in (0, 2, 69):
        recorded(store, days_ago)
    maintenance = Maintenance(store, MemoryQueryCache(clock), clock, audit_retention_days=3)

    assert await maintenance.run_retention() == Retained(audit_entries=1)
    assert sorted(e.id for e in store.audit_log) == ["entry-0", "entry-2"]
    assert await maintenance.run_retention() == Retained(audit_entries=0)


async def test_a_retention_of_0_keeps_every_entry() -> None:
    store, clock = MemoryStore(), ManualClock(NOW)
    recorded(store, 69)
    maintenance = Maintenance(store, MemoryQueryCache(clock), clock, audit_retention_days=0)

    assert await maintenance.run_retention() == Retained(audit_entries=0)
    assert len(store.audit_log) == 1


# A project's retention of its events.


async def _old_and_new(app: App, tenant: Tenant) -> None:
    """Three events of 10 days ago, two of 2 days ago, one of now (the app's clock)."""
    now = app.clock.now()
    events = [
        event(f"old{n}", timestamp=(now - timedelta(days=10, minutes=n)).isoformat(), user_id="a")
        for n in range(3)
    ]
    events += [
        event(f"mid{n}", timestamp=(now - timedelta(days=2, hours=n)).isoformat()) for n in range(2)
    ]
    events.append(event("new"))
    receipt = await app.ingestor.submit(tenant.ref, events)
    assert receipt.accepted == 6


async def test_events_past_a_projects_retention_are_expired_by_the_run(
    app: App, tenant: Tenant
) -> None:
    await _old_and_new(app, tenant)
    other = await app.signup(workspace="Other")
    await _old_and_new(app, other)
    await app.accounts.set_retention(tenant.principal, tenant.project_id, 5)

    retained = await app.platform.maintenance.run_retention()

    assert (retained.events, retained.projects) == (3, 1)
    assert sorted(e.id for e in app.stored(tenant.ref)) == ["mid0", "mid1", "new"]
    assert len(app.stored(other.ref)) == 6
    counts = await app.analytics.counts(
        tenant.principal,
        tenant.project_id,
        start=app.clock.now() - timedelta(days=30),
        end=app.clock.now() + timedelta(hours=1),
    )
    assert counts.total == 3
    assert (await app.platform.maintenance.run_retention()).events == 0


async def test_the_clock_moving_on_expires_more_and_null_keeps_for_ever(
    app: App, tenant: Tenant
) -> None:
    await _old_and_new(app, tenant)
    await app.accounts.set_retention(tenant.principal, tenant.project_id, 5)
    await app.platform.maintenance.run_retention()

    app.clock.advance(4 * 86_400)
    assert (await app.platform.maintenance.run_retention()).events == 2
    assert [e.id for e in app.stored(tenant.ref)] == ["new"]

    await app.accounts.set_retention(tenant.principal, tenant.project_id, None)
    app.clock.advance(30 * 86_400)
    assert await app.platform.maintenance.run_retention() == Retained(0, 0, 0)
    assert [e.id for e in app.stored(tenant.ref)] == ["new"]


async def test_a_run_retires_the_workspaces_cached_answers(app: App, tenant: Tenant) -> None:
    await _old_and_new(app, tenant)
    window = {"start": app.clock.now() - timedelta(days=30), "end": app.clock.now()}
    assert (await app.analytics.counts(tenant.principal, tenant.project_id, **window)).total == 6
    generation = await app.query_cache.generation(tenant.workspace_id)
    await app.accounts.set_retention(tenant.principal, tenant.project_id, 3)

    await app.platform.maintenance.run_retention()

    assert await app.query_cache.generation(tenant.workspace_id) > generation
    assert (await app.analytics.counts(tenant.principal, tenant.project_id, **window)).total == 3


async def test_an_event_sent_past_the_retention_is_not_stored(app: App, tenant: Tenant) -> None:
    await app.accounts.set_retention(tenant.principal, tenant.project_id, 1)
    old = (app.clock.now() - timedelta(days=1, minutes=2)).isoformat()

    await app.ingestor.submit(tenant.ref, [event("late", timestamp=old), event("fresh")])

    assert [e.id for e in app.stored(tenant.ref)] == ["fresh"]


async def test_only_owners_and_admins_set_a_retention_and_it_is_audited(
    app: App, tenant: Tenant
) -> None:
    viewer = await app.member(tenant, Role.VIEWER)
    admin = await app.member(tenant, Role.ADMIN)
    with pytest.raises(PermissionDenied):
        await app.accounts.set_retention(viewer, tenant.project_id, 30)

    changed = await app.accounts.set_retention(admin, tenant.project_id, 30)

    assert changed.retention_days == 30
    entry = app.memory.audit_log[-1]
    assert (entry.action, entry.actor_id, entry.target_id, entry.details) == (
        AuditAction.RETENTION_CHANGED,
        admin.user_id,
        tenant.project_id,
        {"retention_days": 30},
    )


@pytest.mark.parametrize("days", [0, 3651, -1, True, 1.5, "30"])
async def test_a_retention_out_of_bounds_is_refused_and_changes_nothing(
    app: App, tenant: Tenant, days: object
) -> None:
    logged = len(app.memory.audit_log)
    with pytest.raises(InvalidRequest, match="retention_days"):
        await app.accounts.set_retention(tenant.principal, tenant.project_id, days)  # type: ignore[arg-type]
    assert (await app.accounts.project(tenant.principal, tenant.project_id)).retention_days is None
    assert len(app.memory.audit_log) == logged


async def test_another_workspaces_project_is_not_found(app: App, tenant: Tenant) -> None:
    other = await app.signup(workspace="Other")
    with pytest.raises(NotFound):
        await app.accounts.set_retention(other.principal, tenant.project_id, 30)
    assert (await app.accounts.project(tenant.principal, tenant.project_id)).retention_days is None
