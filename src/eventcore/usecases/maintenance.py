"""Maintenance: repairs an operator runs, each leaving every cache of the data it changed stale-free."""

from __future__ import annotations

from eventcore.ports import EventStore, QueryCache, Recount


class Maintenance:
    """What ``eventcore rollup`` does; safe while ingest keeps running."""

    def __init__(self, store: EventStore, cache: QueryCache) -> None:
        self._store = store
        self._cache = cache

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
