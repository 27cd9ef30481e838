"""Maintenance: repairs an operator runs, each leaving every cache of the data it changed stale-free."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import msgspec

from eventcore.defaults import (
    AUDIT_RETENTION_DAYS,
    EXPIRY_CHUNK,
    EXPIRY_PAUSE,
    EXPIRY_PAUSE_MAX_SECONDS,
)
from eventcore.errors import NotFound
from eventcore.events import StoredEvent
from eventcore.ports import Clock, QueryCache, Recount, Store
from eventcore.retention import cutoff
from eventcore.usecases.export import ExportWindow, event_pages


class Retained(msgspec.Struct, frozen=True):
    """What a retention run removed: the audit log's entries, and the events past their
    projects' retention (``projects``: how many projects had some)."""

    audit_entries: int
    events: int = 0
    projects: int = 0


class Maintenance:
    """What ``eventcore rollup`` and ``eventcore export`` do; safe while ingest keeps running."""

    def __init__(
        self,
        store: Store,
        cache: QueryCache,
        clock: Clock,
        audit_retention_days: int = AUDIT_RETENTION_DAYS,
        expiry_chunk: int = EXPIRY_CHUNK,
        expiry_pause: float = EXPIRY_PAUSE,
    ) -> None:
        self._store = store
        self._cache = cache
        self._clock = clock
        self._audit_retention_days = audit_retention_days
        self._expiry_chunk = expiry_chunk
        self._expiry_pause = expiry_pause

    async def run_retention(self) -> Retained:
        """Remove what is past its retention, now: the audit log's entries older than its
        retention (``audit_retention_days``; 0 keeps them for ever), and the events of every
        project with a retention older than its cutoff (:mod:`eventcore.retention`), a chunk a
        transaction, each chunk retiring its workspace's cached answers. The schedule of every
        API process and ``eventcore retention run`` both call this."""
        now = self._clock.now()
        audit_entries = 0
        if self._audit_retention_days:
            before = now - timedelta(days=self._audit_retention_days)
            audit_entries = await self._store.expire_audit_log(before)
        events = projects = 0
        for project in await self._store.projects_with_retention():
            if project.retention_days is None:
                continue
            expired = await self._expire(
                project.workspace_id, project.id, cutoff(now, project.retention_days)
            )
            events += expired
            projects += 1 if expired else 0
        return Retained(audit_entries=audit_entries, events=events, projects=projects)

    async def _expire(self, workspace_id: str, project_id: str, before: datetime) -> int:
        """Expire one project's events before ``before``, chunk by chunk; how many."""
        expired = 0
        while True:
            began = time.monotonic()
            deleted = await self._store.expire_events(
                workspace_id, project_id, before, limit=self._expiry_chunk
            )
            expired += deleted
            if deleted:
                await self._cache.bump([workspace_id])
            if deleted < self._expiry_chunk:
                return expired
            # Paced: between chunks the database gets back twice the time a chunk took
            # (EXPIRY_PAUSE, at most EXPIRY_PAUSE_MAX_SECONDS), for the ingest it serves
            # meanwhile (bench/README.md, "Retention").
            took = time.monotonic() - began
            await asyncio.sleep(min(took * self._expiry_pause, EXPIRY_PAUSE_MAX_SECONDS))

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
