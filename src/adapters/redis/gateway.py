"""One Redis client shared by the Redis adapters, with a circuit breaker so a dead Redis costs little."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from eventcore.defaults import REDIS_PREFIX
from eventcore.errors import CacheUnavailable

T = TypeVar("T")

log = structlog.get_logger("eventcore.redis")

# What a failed command can raise: redis-py wraps most socket errors, but not every path does.
_FAILURES = (RedisError, OSError)


class RedisGateway:
    """Owns the client; every adapter command goes through :meth:`attempt`.

    Redis is only ever a cache or a shared budget here, so a failing Redis must not slow the
    platform down: after a failure every adapter skips Redis for ``cooldown`` seconds, then one
    command probes it, and the first success puts it back in use. Only the transitions are logged.
    """

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = REDIS_PREFIX, cooldown: float = 1.0
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

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        prefix: str = REDIS_PREFIX,
        socket_timeout: float = 0.25,
        cooldown: float = 1.0,
    ) -> Self:
        """A gateway for ``url``; it does not connect yet, so start-up never waits on Redis."""
        client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=socket_timeout,
            socket_timeout=socket_timeout,
            # No client-side retries: the breaker decides when Redis is worth another try.
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix=prefix, cooldown=cooldown)

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
        """A key of the workspace; ``{workspace}`` is a hash tag, one Redis Cluster slot each."""
        return ":".join((self.prefix, f"{{{workspace_id}}}", *parts))

    async def drop_workspace(self, workspace_id: str) -> int:
        """Remove every key of the workspace (cached answers, its generation, committed ids,
        rate buckets: they all start with its hash-tagged prefix); how many. Fails open (0)."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.key(workspace_id)) + ":*"

        async def drop(client: aioredis.Redis) -> int:
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

    async def attempt(self, command: Callable[[aioredis.Redis], Awaitable[T]], fallback: T) -> T:
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

    async def _run(self, command: Callable[[aioredis.Redis], Awaitable[T]], fallback: T) -> T:
        try:
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


def _location(client: aioredis.Redis) -> str:
    """Where the client points, without credentials (they must never reach a log)."""
    kwargs: dict[str, Any] = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}/{kwargs.get('db', 0)}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
