"""The retention run: the audit log keeps its entries for its retention, and for ever at 0."""

from __future__ import annotations

from datetime import UTC, datetime

from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory import MemoryQueryCache, MemoryStore
from eventcore.audit import ActorType, AuditAction, AuditEntry
from eventcore.usecases.maintenance import Maintenance, Retained

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
