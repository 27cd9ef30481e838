"""Maintenance: repairs an operator runs, each leaving every cache of the data it changed stale-free."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import msgspec

from eventcore.defaults import AUDIT_RETENTION_DAYS
from eventcore.errors import NotFound
from eventcore.events import StoredEvent
from eventcore.ports import Clock, QueryCache, Recount, Store
from eventcore.usecases.export import ExportWindow, event_pages


class Retained(msgspec.Struct, frozen=True):
    """What a retention run removed."""

    audit_entries: int


class Maintenance:
    """What ``eventcore rollup`` and ``eventcore export`` do; safe while ingest keeps running."""

    def __init__(
        self,
        store: Store,
        cache: QueryCache,
        clock: Clock,
        audit_retention_days: int = AUDIT_RETENTION_DAYS,
    ) -> None:
        self._store = store
        self._cache = cache
        self._clock = clock
        self._audit_retention_days = audit_retention_days

    async def run_retention(self) -> Retained:
        """Remove what is past its retention, now: the audit log's entries older than its
        retention (``audit_retention_days``; 0 keeps them for ever). The schedule of every API
        process and ``eventcore retention run`` both call this."""
        if not self._audit_retention_days:
            return Retained(audit_entries=0)
        before = self._clock.now() - timedelta(days=self._audit_retention_days)
        return Retained(audit_entries=await self._store.expire_audit_log(before))

    async def rebuild_counts(self, workspace_id: str | None = None) -> Recount:
        """Recompute the count tables from the stored events, of one workspace or of all.

        Every workspace whose counts were rebuilt gets a new data generation, so that no cached
        answer computed from the old counts is served again.
        """
        recount = await self._store.rebuild_counts(workspace_id)
        touched = set(recount.workspace_ids)
        if workspace_id is not None:
            # Its counts were replaced even when it has no events left to count.
            touched.add(workspace_id)
        if touched:
            await self._cache.bump(touched)
        return recount

    async def export(
        self,
        workspace_id: str,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        event_type: str | None = None,
    ) -> AsyncIterator[list[StoredEvent]]:
        """What :meth:`Analytics.export <eventcore.usecases.analytics.Analytics.export>` gives,
        for an operator (no role to check): NotFound before any page if the workspace has no
        such project."""
        window = ExportWindow.of(start, end, event_type)
        if await self._store.get_project(workspace_id, project_id) is None:
            raise NotFound(f"Workspace {workspace_id!r} has no project {project_id!r}.")
        return event_pages(self._store, workspace_id, project_id, window)
