"""Redis caches shared by every process: API keys, committed idempotency keys and analytics answers.

Each one behaves like its in-memory counterpart while Redis answers, and fails open otherwise:
a miss, an empty answer or a no-op, never an error.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from collections.abc import Iterable, Sequence

import msgspec

from eventcore.adapters.redis.gateway import Client, RedisGateway, queued
from eventcore.events import IngestBatch
from eventcore.tenancy import ApiKey, ProjectRef

_MAX_RAW_ID_BYTES = 64

_key_encoder = msgspec.msgpack.Encoder()
_key_decoder = msgspec.msgpack.Decoder(ApiKey)


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


# Marks every id of ARGV[2] (a JSON array) committed: the key KEYS[1] .. id set to "1" with a
# TTL. The ids travel as one JSON argument and the keys are made here, which costs the client
# one encode instead of building, encoding and sending a key per event. Every key shares the
# workspace's hash tag with KEYS[1], so the script stays in one Redis Cluster slot.
_REMEMBER = """
local ttl = ARGV[1]
local ids = cjson.decode(ARGV[2])
for i = 1, #ids do
  redis.call('SET', KEYS[1] .. ids[i], '1', 'PX', ttl)
end
return #ids
"""
# 1 or 0 for each id of ARGV[1] (a JSON array): whether KEYS[1] .. id exists.
_KNOWN = """
local ids = cjson.decode(ARGV[1])
local found = {}
for i = 1, #ids do
  found[i] = redis.call('EXISTS', KEYS[1] .. ids[i])
end
return found
"""
# The replication id of the master that holds KEYS[1] (a workspace's generation key): a replica
# a failover promotes starts a new one.
_MASTER_RUN = """
return string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')
"""
# Lua reads the id list this script-friendly way: a JSON array of strings.
_ids_encoder = msgspec.json.Encoder()


class RedisCommittedKeys:
    """One Redis key per committed (workspace, project, event id), forgotten after ``ttl_seconds``.

    A project's keys are its prefix (:meth:`prefix`) followed by the id (:meth:`bounded`).
    """

    def __init__(self, gateway: RedisGateway, ttl_seconds: float = 86_400) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._gw = gateway
        self._ttl_ms = _milliseconds(ttl_seconds)
        self._remember = gateway.register_script(_REMEMBER)
        self._known = gateway.register_script(_KNOWN)

    def prefix(self, workspace_id: str, project_id: str) -> str:
        """What every committed-id key of the project starts with."""
        return self._gw.key(workspace_id, "ck", project_id, "")

    def key(self, workspace_id: str, project_id: str, event_id: str) -> str:
        """The Redis key that says this event id of the project is committed."""
        return self.prefix(workspace_id, project_id) + bounded(event_id)

    def ids_argument(self, event_ids: Sequence[str]) -> bytes:
        """The ids as the scripts read them: one JSON array of their key suffixes."""
        return _ids_encoder.encode([bounded(event_id) for event_id in event_ids])

    async def known(self, tenant: ProjectRef, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        prefix = self.prefix(tenant.workspace_id, tenant.project_id)
        ids = self.ids_argument(event_ids)
        found: list[int] = await self._gw.attempt(
            lambda r: self._known(keys=[prefix], args=[ids], client=r), []
        )
        return {event_id for event_id, hit in zip(event_ids, found, strict=False) if hit}

    async def remember(self, batches: Sequence[IngestBatch]) -> None:
        by_project: dict[tuple[str, str], list[str]] = {}
        for batch in batches:
            if batch.events:
                by_project.setdefault((batch.workspace_id, batch.project_id), []).extend(
                    event.id for event in batch.events
                )
        if not by_project:
            return

        async def set_all(client: Client) -> None:
            # One script call per project: its keys share a hash tag, so one cluster slot.
            async with client.pipeline(transaction=False) as pipe:
                for (workspace_id, project_id), ids in by_project.items():
                    await self._remember(
                        keys=[self.prefix(workspace_id, project_id)],
                        args=[self._ttl_ms, self.ids_argument(ids)],
                        client=queued(pipe),
                    )
                await pipe.execute()

        await self._gw.attempt(set_all, None)


class RedisQueryCache:
    """A generation counter per workspace under ``{ws}:gen``; each query's latest answer under
    ``{ws}:q:<sha256 of the query key>``, as ``<generation>:<answer>``, with its TTL.

    One entry per query, whatever the generation: a put replaces the answer filed before (so a
    stream of commits does not leave a stale copy per generation behind), and a lookup serves the
    answer only if it was filed under the generation it reads. The generation and the answer
    are read in one pipelined round trip; an answer that arrives through a Lua script instead
    is copied once more on the server, which costs more than the round trip for a large one.

    On a Redis Cluster the generation a lookup returns also names the master's replication run
    (``_MASTER_RUN``). Replication is asynchronous, so a master that dies may take a bump it had
    acknowledged with it, and its promoted replica then holds the generation from before that
    commit, with an answer filed under it before the commit; a new run is a new generation, so
    every answer filed before a failover is a miss after it.

    When Redis cannot be read, the generation is a fresh negative number that no stored answer
    was ever filed under, so the caller computes the answer instead of trusting the cache.
    Bumps that could not reach Redis are kept and sent with the next bump, so answers filed
    before a commit this process could not announce stop being served once Redis answers it
    again (until then they are bounded by their TTL).
    """

    def __init__(self, gateway: RedisGateway) -> None:
        self._gw = gateway
        self._unsent_bumps: set[str] = set()
        self._master_run = gateway.register_script(_MASTER_RUN) if gateway.cluster else None

    def _generation_key(self, workspace_id: str) -> str:
        return self._gw.key(workspace_id, "gen")

    def _answer_key(self, workspace_id: str, key: str) -> str:
        return self._gw.key(workspace_id, "q", hashlib.sha256(key.encode()).hexdigest())

    async def generation(self, workspace_id: str) -> int:
        generation, _ = await self._read(workspace_id, None)
        return generation

    async def lookup(self, workspace_id: str, key: str) -> tuple[int, bytes | None]:
        generation, stored = await self._read(workspace_id, self._answer_key(workspace_id, key))
        if generation < 0 or stored is None:
            return generation, None
        filed_under, _, answer = stored.partition(b":")
        return generation, answer if filed_under == b"%d" % generation else None

    async def _read(self, workspace_id: str, answer_key: str | None) -> tuple[int, bytes | None]:
        """The workspace's generation (with its master's run on a cluster) and, if asked for,
        what is filed under ``answer_key``: one pipelined round trip."""
        generation_key = self._generation_key(workspace_id)

        async def read(client: Client) -> list[bytes | str | None]:
            # Every key carries the workspace's hash tag: one cluster slot, one round trip.
            async with client.pipeline(transaction=False) as pipe:
                pipe.get(generation_key)
                if answer_key is not None:
                    pipe.get(answer_key)
                if self._master_run is not None:
                    await self._master_run(keys=[generation_key], client=queued(pipe))
                found: list[bytes | str | None] = await pipe.execute()
            return found

        found = await self._gw.attempt(read, None)
        unknown = _unknown_generation()
        if found is None:
            return unknown, None
        generation = _generation(found[0], unknown)
        if self._master_run is not None and generation >= 0:
            # Below 2**63 a counter; above it, the run (a new run: a new generation).
            run = _bytes(found[-1]) or b""
            generation |= zlib.crc32(run) << 63
        return generation, _bytes(found[1]) if answer_key is not None else None

    async def bump(self, workspace_ids: Iterable[str]) -> None:
        pending = self._unsent_bumps | set(workspace_ids)
        if not pending:
            return

        async def increment_all(client: Client) -> bool:
            async with client.pipeline(transaction=False) as pipe:
                for workspace_id in pending:
                    pipe.incr(self._generation_key(workspace_id))
                await pipe.execute()
            return True

        if await self._gw.attempt(increment_all, False):
            self._unsent_bumps -= pending
        else:
            self._unsent_bumps |= pending

    async def put(
        self, workspace_id: str, key: str, generation: int, value: bytes, ttl_seconds: float
    ) -> None:
        if generation < 0:
            return
        cache_key = self._answer_key(workspace_id, key)
        if ttl_seconds <= 0:
            # Already expired: like the in-memory cache, it replaces the old answer with nothing.
            await self._gw.attempt(lambda r: r.delete(cache_key), None)
            return
        stored = b"%d:" % generation + value
        await self._gw.attempt(
            lambda r: r.set(cache_key, stored, px=_milliseconds(ttl_seconds)), None
        )


def _unknown_generation() -> int:
    """A generation no answer was ever filed under: each read that cannot trust Redis gets a new one."""
    return -1 - secrets.randbits(62)


def _generation(raw: bytes | str | None, unknown: int) -> int:
    """The generation Redis holds (``raw``), or ``unknown`` if it is not a number."""
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError:
        return unknown


def _bytes(value: bytes | str | None) -> bytes | None:
    # The client is opened without decode_responses, so values are bytes; the types allow str.
    return value.encode() if isinstance(value, str) else value


def bounded(event_id: str) -> str:
    """The id itself when short, else a digest; a digest ('#' + 64 hex) is longer than any kept id."""
    if len(event_id.encode()) <= _MAX_RAW_ID_BYTES:
        return event_id
    return "#" + hashlib.sha256(event_id.encode()).hexdigest()


class RedisWorkspaceCaches:
    """The WorkspaceCaches port: every key of a workspace starts with its hash-tagged prefix."""

    def __init__(self, gateway: RedisGateway) -> None:
        self._gateway = gateway

    async def drop(self, workspace_id: str) -> None:
        await self._gateway.drop_workspace(workspace_id)
