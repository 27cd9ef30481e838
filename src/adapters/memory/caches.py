"""In-process caches: API keys, committed idempotency keys and analytics answers."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from eventcore.defaults import API_KEY_CACHE_SECONDS
from eventcore.events import IngestBatch
from eventcore.idempotency import IdempotencyKey
from eventcore.ports import Clock
from eventcore.tenancy import ApiKey, ProjectRef


class MemoryKeyCache:
    """Entries live ``ttl`` seconds, so a revocation made elsewhere is seen within that time."""

    def __init__(
        self, clock: Clock, ttl: float = API_KEY_CACHE_SECONDS, max_entries: int = 100_000
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()

    async def get(self, key_hash: str) -> ApiKey | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry[0] <= self._clock.now().timestamp():
            del self._entries[key_hash]
            return None
        return entry[1]

    async def put(self, key: ApiKey) -> None:
        self._entries[key.key_hash] = (self._clock.now().timestamp() + self._ttl, key)
        self._entries.move_to_end(key.key_hash)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def evict(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)


class MemoryCommittedKeys:
    """The most recent ``max_entries`` committed keys; older ones are forgotten (the store decides)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._max = max_entries
        self._keys: OrderedDict[IdempotencyKey, None] = OrderedDict()

    async def known(self, tenant: ProjectRef, event_ids: Sequence[str]) -> set[str]:
        return {
            event_id
            for event_id in event_ids
            if IdempotencyKey(tenant.workspace_id, tenant.project_id, event_id) in self._keys
        }

    async def remember(self, batches: Sequence[IngestBatch]) -> None:
        for batch in batches:
            for event in batch.events:
                self._keys[IdempotencyKey(batch.workspace_id, batch.project_id, event.id)] = None
        while len(self._keys) > self._max:
            self._keys.popitem(last=False)


class MemoryQueryCache:
    def __init__(self, clock: Clock, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._generations: dict[str, int] = {}
        self._entries: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()

    async def generation(self, workspace_id: str) -> int:
        return self._generations.get(workspace_id, 0)

    async def bump(self, workspace_ids: Iterable[str]) -> None:
        for workspace_id in workspace_ids:
            self._generations[workspace_id] = self._generations.get(workspace_id, 0) + 1

    async def get(self, workspace_id: str, key: str) -> bytes | None:
        entry = self._entries.get((workspace_id, key))
        if entry is None or entry[0] <= self._clock.now().timestamp():
            return None
        return entry[1]

    async def put(self, workspace_id: str, key: str, value: bytes, ttl_seconds: float) -> None:
        self._entries[(workspace_id, key)] = (self._clock.now().timestamp() + ttl_seconds, value)
        self._entries.move_to_end((workspace_id, key))
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
