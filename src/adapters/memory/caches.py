"""In-process caches: API keys, committed idempotency keys, analytics answers and projects."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from eventcore.defaults import (
    API_KEY_CACHE_SECONDS,
    MEMBERSHIP_CACHE_SECONDS,
    PROJECT_CACHE_SECONDS,
)
from eventcore.events import IngestBatch
from eventcore.idempotency import IdempotencyKey
from eventcore.ports import Clock
from eventcore.tenancy import ApiKey, Project, ProjectRef, Role

K = TypeVar("K")
V = TypeVar("V")


class _Expiring(Generic[K, V]):
    """Entries that each end at a time, the most recent ``max_entries`` of them."""

    def __init__(self, clock: Clock, max_entries: int) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock.now().timestamp():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V, ttl_seconds: float) -> None:
        self._entries[key] = (self._clock.now().timestamp() + ttl_seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)


class MemoryKeyCache:
    """Entries live ``ttl`` seconds, so a revocation made elsewhere is seen within that time."""

    def __init__(
        self, clock: Clock, ttl: float = API_KEY_CACHE_SECONDS, max_entries: int = 100_000
    ) -> None:
        self._ttl = ttl
        self._entries: _Expiring[str, ApiKey] = _Expiring(clock, max_entries)

    async def get(self, key_hash: str) -> ApiKey | None:
        return self._entries.get(key_hash)

    async def put(self, key: ApiKey) -> None:
        self._entries.put(key.key_hash, key, self._ttl)

    async def evict(self, key_hash: str) -> None:
        self._entries.pop(key_hash)


class MemoryCommittedKeys:
    """The most recent ``max_entries`` committed keys; older ones are forgotten (the store decides).

    About 220 bytes a key: the default bound keeps the embedded process's cache near 45 MB (a
    million keys made it pass 200 MB); a resend of an older id is counted in ``accepted`` and
    stored once all the same (the store ignores it)."""

    def __init__(self, max_entries: int = 200_000) -> None:
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
    """Answers of this process, the most recent ``max_entries`` queries' (like the Redis cache,
    one answer per query, served only at the generation it was filed under)."""

    def __init__(self, clock: Clock, max_entries: int = 10_000) -> None:
        self._generations: dict[str, int] = {}
        self._entries: _Expiring[tuple[str, str], tuple[int, bytes]] = _Expiring(clock, max_entries)

    async def generation(self, workspace_id: str) -> int:
        return self._generations.get(workspace_id, 0)

    async def bump(self, workspace_ids: Iterable[str]) -> None:
        for workspace_id in workspace_ids:
            self._generations[workspace_id] = self._generations.get(workspace_id, 0) + 1

    async def lookup(self, workspace_id: str, key: str) -> tuple[int, bytes | None]:
        generation = self._generations.get(workspace_id, 0)
        return generation, self._answer(workspace_id, key, generation)

    def _answer(self, workspace_id: str, key: str, generation: int) -> bytes | None:
        """The answer filed under ``key`` at ``generation``, if it is still held."""
        entry = self._entries.get((workspace_id, key))
        return entry[1] if entry is not None and entry[0] == generation else None

    async def put(
        self, workspace_id: str, key: str, generation: int, value: bytes, ttl_seconds: float
    ) -> None:
        if generation >= 0:
            self._entries.put((workspace_id, key), (generation, value), ttl_seconds)


class NoQueryCache:
    """No cache: every answer is computed from the store. For processes that cannot learn of
    each other's commits (PostgreSQL without Redis: the workers commit, the API answers), where
    a cache of their own would serve answers from before the data."""

    async def generation(self, workspace_id: str) -> int:
        return -1

    async def bump(self, workspace_ids: Iterable[str]) -> None:
        return None

    async def lookup(self, workspace_id: str, key: str) -> tuple[int, bytes | None]:
        return -1, None

    async def put(
        self, workspace_id: str, key: str, generation: int, value: bytes, ttl_seconds: float
    ) -> None:
        return None


class MemoryProjectCache:
    """Projects as read, each for ``ttl`` seconds, the most recent ``max_entries`` of them.

    Only projects that exist are remembered: a project not found is asked about again every
    time, so one created a moment ago is found at once, and one deleted stops being found (one
    changed, read as changed) within ``ttl``; in this process, at once (:meth:`forget`).
    """

    def __init__(
        self, clock: Clock, ttl: float = PROJECT_CACHE_SECONDS, max_entries: int = 100_000
    ) -> None:
        self._ttl = ttl
        self._entries: _Expiring[tuple[str, str], Project] = _Expiring(clock, max_entries)

    async def get(self, workspace_id: str, project_id: str) -> Project | None:
        return self._entries.get((workspace_id, project_id))

    async def remember(self, project: Project) -> None:
        self._entries.put((project.workspace_id, project.id), project, self._ttl)

    async def forget(self, workspace_id: str, project_id: str) -> None:
        self._entries.pop((workspace_id, project_id))


class MemoryMembershipCache:
    """Roles of current memberships, each for ``ttl`` seconds, the most recent ``max_entries``.

    Only memberships that exist are remembered: one not found is asked about again every time
    (an accepted invitation counts at once), and a removal or role change made in another
    process is seen within ``ttl``; in this process, at once (:meth:`forget`)."""

    def __init__(
        self, clock: Clock, ttl: float = MEMBERSHIP_CACHE_SECONDS, max_entries: int = 100_000
    ) -> None:
        self._ttl = ttl
        self._entries: _Expiring[tuple[str, str], Role] = _Expiring(clock, max_entries)

    async def role(self, workspace_id: str, user_id: str) -> Role | None:
        return self._entries.get((workspace_id, user_id))

    async def remember(self, workspace_id: str, user_id: str, role: Role) -> None:
        self._entries.put((workspace_id, user_id), role, self._ttl)

    async def forget(self, workspace_id: str, user_id: str) -> None:
        self._entries.pop((workspace_id, user_id))
