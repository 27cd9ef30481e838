"""One Redis client shared by the Redis adapters, with a circuit breaker so a dead Redis costs little.

The client is a single Redis's or, for a ``redis+cluster://`` URL, a Redis Cluster's (redis-py's
cluster client, which routes each command to its slot's master and follows the cluster when a
master fails over). Every key of a workspace carries its hash tag (:meth:`RedisGateway.key`), so
each multi-key script and pipeline of one workspace stays in one slot.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeAlias, TypeVar, cast
from urllib.parse import unquote

import redis.asyncio as aioredis
import structlog
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from eventcore.defaults import REDIS_PREFIX
from eventcore.errors import CacheUnavailable

T = TypeVar("T")

log = structlog.get_logger("eventcore.redis")

# What a failed command can raise: redis-py wraps most socket errors, but not every path does;
# the cluster client raises its own errors too (no node for a slot while a master fails over).
_FAILURES = (RedisError, RedisClusterException, OSError)

Client: TypeAlias = aioredis.Redis | RedisCluster
"""What the adapters' commands run on: one Redis, or a Redis Cluster."""

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
"""The URL schemes of a Redis Cluster: ``redis+cluster://[user:password@]host:port,host:port``."""


def queued(pipe: Pipeline | ClusterPipeline) -> Client:
    """A pipeline, where a script call takes its client: redis-py's AsyncScript queues the call
    on either kind of pipeline, though its signature names only clients."""
    return cast(Client, pipe)


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def cluster_nodes(url: str) -> tuple[list[ClusterNode], str | None, str | None]:
    """The nodes a cluster URL lists (port 6379 if none is given), its user and password.

    ValueError if it lists no node or a port that is not a number."""
    _, _, rest = url.partition("://")
    location = rest.split("/", 1)[0].split("?", 1)[0]
    credentials, _, hosts = location.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes = []
    for each in filter(None, hosts.split(",")):
        if each.startswith("["):  # [IPv6]:port
            host, _, port = each[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = each.rpartition(":") if ":" in each else (each, "", "")
        if not host:
            raise ValueError(f"no host in {each!r}")
        nodes.append(ClusterNode(host, int(port) if port else 6379))
    if not nodes:
        raise ValueError("no node listed")
    return nodes, unquote(username) or None, unquote(password) or None


class RedisGateway:
    """Owns the client; every adapter command goes through :meth:`attempt`.

    Redis is only ever a cache or a shared budget here, so a failing Redis must not slow the
    platform down: after a failure every adapter skips Redis for ``cooldown`` seconds, then one
    command probes it, and the first success puts it back in use. Only the transitions are logged.
    """

    def __init__(
        self, client: Client, *, prefix: str = REDIS_PREFIX, cooldown: float = 1.0
    ) -> None:
        if not prefix or any(c in prefix for c in "{}"):
            raise ValueError("prefix must be non-empty and may not contain '{' or '}'")
        self.client = client
        self.prefix = prefix
        self._cooldown = cooldown
        self._down = False
        self._retry_at = 0.0
        self._probing = False
        self._location = _location(client)
        self._scripts: list[AsyncScript] = []

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        prefix: str = REDIS_PREFIX,
        socket_timeout: float = 0.25,
        cooldown: float = 1.0,
    ) -> Self:
        """A gateway for ``url`` (one Redis, or a Redis Cluster: ``redis+cluster://``); it does
        not connect yet, so start-up never waits on Redis."""
        client: Client
        if is_cluster_url(url):
            nodes, username, password = cluster_nodes(url)
            client = RedisCluster(
                startup_nodes=nodes,
                username=username,
                password=password,
                ssl=url.startswith("rediss+"),
                socket_connect_timeout=socket_timeout,
                socket_timeout=socket_timeout,
                # The slots of the masters that answer keep working while one fails over.
                require_full_coverage=False,
                # No client-side retries: the breaker decides when Redis is worth another
                # try. A command that fails on a dead master makes the client ask the
                # cluster for its slots again before the next one.
                retry=Retry(NoBackoff(), 0),
            )
        else:
            client = aioredis.Redis.from_url(
                url,
                socket_connect_timeout=socket_timeout,
                socket_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        return cls(client, prefix=prefix, cooldown=cooldown)

    @property
    def cluster(self) -> bool:
        """Whether the client is a Redis Cluster's."""
        return isinstance(self.client, RedisCluster)

    @property
    def scripts(self) -> tuple[str, ...]:
        """The source of every script registered, in order (for tests of their keys)."""
        return tuple(str(script.script) for script in self._scripts)

    def register_script(self, source: str) -> AsyncScript:
        """A Lua script of the adapters, loaded again wherever a command finds it missing (a
        fresh server, a replica promoted to master): see :meth:`attempt`."""
        script = self.client.register_script(source)
        self._scripts.append(script)
        return script

    async def close(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def key(self, workspace_id: str, *parts: str) -> str:
        """A key of the workspace; ``{workspace}`` is a hash tag, one Redis Cluster slot each.

        A cluster hashes what lies between a key's first ``{`` and the next ``}``, or the whole
        key when that is empty: a workspace id holding a ``}`` (none that eventcore makes: they
        are UUIDs) would cut the tag short or empty it, and its keys would land in different
        slots. Such an id's tag is a digest of it instead."""
        tag = workspace_id
        if "}" in workspace_id:
            tag = "#" + hashlib.sha256(workspace_id.encode()).hexdigest()
        return ":".join((self.prefix, f"{{{tag}}}", *parts))

    async def drop_workspace(self, workspace_id: str) -> int:
        """Remove every key of the workspace (cached answers, its generation, committed ids,
        rate buckets: they all start with its hash-tagged prefix); how many. Fails open (0)."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.key(workspace_id)) + ":*"

        async def drop(client: Client) -> int:
            removed = 0
            batch: list[bytes] = []
            async for found in client.scan_iter(match=pattern, count=1000):
                batch.append(found)
                if len(batch) >= 1000:
                    removed += await client.unlink(*batch)
                    batch = []
            if batch:
                removed += await client.unlink(*batch)
            return removed

        return await self.attempt(drop, 0)

    @property
    def available(self) -> bool:
        """False while the breaker keeps adapters away from Redis."""
        return not self._down or (not self._probing and time.monotonic() >= self._retry_at)

    async def ping(self) -> None:
        """Readiness: ask Redis itself, whatever the breaker says; CacheUnavailable if it does
        not answer (the one Redis failure that is raised: every other command fails open)."""
        try:
            await self.client.ping()
        except _FAILURES as exc:
            self._failed(exc)
            raise CacheUnavailable(f"Redis at {self._location} does not answer: {exc}") from exc
        self._succeeded()

    async def attempt(self, command: Callable[[Client], Awaitable[T]], fallback: T) -> T:
        """Run ``command`` on the client; ``fallback`` if Redis is skipped or the command fails."""
        if self._down:
            if self._probing or time.monotonic() < self._retry_at:
                return fallback
            # This command is the probe; the others keep skipping Redis until it answers.
            self._probing = True
            try:
                return await self._run(command, fallback)
            finally:
                self._probing = False
        return await self._run(command, fallback)

    async def _run(self, command: Callable[[Client], Awaitable[T]], fallback: T) -> T:
        try:
            try:
                result = await command(self.client)
            except NoScriptError:
                # A script sent by its digest in a pipeline is not loaded where it ran (a
                # single call loads it itself): load every script, then run the command again.
                for script in self._scripts:
                    await self.client.script_load(script.script)
                result = await command(self.client)
        except _FAILURES as exc:
            self._failed(exc)
            return fallback
        self._succeeded()
        return result

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self._cooldown
        if not self._down:
            self._down = True
            log.warning(
                "redis_down",
                location=self._location,
                error=repr(exc),
                retry_in_seconds=self._cooldown,
            )

    def _succeeded(self) -> None:
        if self._down:
            self._down = False
            log.info("redis_back", location=self._location)


def _location(client: Client) -> str:
    """Where the client points, without credentials (they must never reach a log)."""
    if isinstance(client, RedisCluster):
        nodes = client.get_nodes() or client.nodes_manager.startup_nodes.values()
        return "cluster:" + ",".join(sorted(node.name for node in nodes))
    kwargs: dict[str, Any] = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}/{kwargs.get('db', 0)}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
