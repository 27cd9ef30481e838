"""The read replica: where analytics and listings read, and what such a read may return.

The rule, which keeps the query cache's promise (an answer is never staler than the data): a
read served by the replica sees everything the primary had committed when the read began.
Before its query, the read asks the primary for its WAL insert position (one small statement)
and waits, on the replica connection it will query, until the replica has replayed up to it.
The query's snapshot is taken after that, so it holds every commit the primary had made; an
analytics answer filed in the cache under the generation read before it therefore holds every
commit whose generation bump it could have seen, as an answer computed on the primary does.

A replica that has not caught up within ``wait`` seconds (it lags, or its replay is paused)
leaves the read to the primary; so does a replica that fails (stopped, unreachable, a query
cancelled by a recovery conflict): the read is run again on the primary, and the replica is
skipped for ``cooldown`` seconds, after which one read probes it. A read therefore never
answers older than its start, and the replica's absence costs capacity, never an error.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Final, Literal, TypeAlias, TypeVar

import psycopg
import structlog
from prometheus_client import Counter as Metric
from psycopg_pool import PoolTimeout

from eventcore.adapters.postgres._database import Connection, Pool

T = TypeVar("T")
Served: TypeAlias = Literal["replica", "lagging", "unavailable"]
"""Where a read went: the replica; the primary because the replica had not caught up in time;
the primary because the replica failed or is being skipped after a failure."""

log = structlog.get_logger("eventcore.postgres")

# Whether the replica has replayed up to the primary's position (a server not in recovery,
# e.g. a promoted replica, holds all it has).
_CAUGHT_UP: Final = "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= %s::pg_lsn"
# Between two looks at the replica's position: from the first, doubling up to the last.
_FIRST_POLL, _LONGEST_POLL = 0.002, 0.05


@functools.cache
def _reads() -> Metric:
    """Registered by the first replica, so that a process without one does not export it."""
    return Metric(
        "eventcore_replica_reads_total",
        "Analytics and listing reads by where they were served: replica, or the primary because"
        " the replica lagged beyond EVENTCORE_DATABASE_READ_WAIT_SECONDS (lagging) or failed"
        " (unavailable).",
        ["served"],
    )


class ReadReplica:
    """The replica's pool, its circuit breaker and the wait for its replay."""

    def __init__(self, pool: Pool, *, wait: float, cooldown: float = 1.0) -> None:
        if wait < 0:
            raise ValueError("wait may not be negative")
        self.pool = pool
        self._wait = wait
        self._cooldown = cooldown
        self._down = False
        self._retry_at = 0.0
        self._probing = False
        self.served: Counter[Served] = Counter()
        """How many reads went where, since the store opened (the metric counts per process)."""

    def _skipped(self) -> bool:
        return self._down and (self._probing or time.monotonic() < self._retry_at)

    async def read(
        self,
        position: Callable[[], Awaitable[str]],
        on_replica: Callable[[Connection], Awaitable[T]],
        on_primary: Callable[[], Awaitable[T]],
    ) -> T:
        """``on_replica`` on a replica connection that has replayed up to ``position()`` (the
        primary's, read first), else ``on_primary``."""
        if self._skipped():
            return await self._primary("unavailable", on_primary)
        probe = self._down
        self._probing = probe
        try:
            at = await position()
            async with self.pool.connection(timeout=max(self._wait, 0.1)) as conn:
                caught_up = await self._caught_up(conn, at)
                answer = await on_replica(conn) if caught_up else None
        # QueryCanceled: a recovery conflict, or the replica's statement timeout.
        except (psycopg.OperationalError, psycopg.errors.QueryCanceled, PoolTimeout) as exc:
            self._failed(exc)
            return await self._primary("unavailable", on_primary)
        finally:
            if probe:
                self._probing = False
        self._succeeded()
        if not caught_up:
            return await self._primary("lagging", on_primary)
        self._count("replica")
        return answer  # type: ignore[return-value]  # T itself when caught up

    async def _caught_up(self, conn: Connection, at: str) -> bool:
        deadline = time.monotonic() + self._wait
        pause = _FIRST_POLL
        while True:
            cursor = await conn.execute(_CAUGHT_UP, (at,))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _LONGEST_POLL)

    async def _primary(self, why: Served, on_primary: Callable[[], Awaitable[T]]) -> T:
        self._count(why)
        return await on_primary()

    def _count(self, served: Served) -> None:
        self.served[served] += 1
        _reads().labels(served).inc()

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self._cooldown
        if not self._down:
            self._down = True
            log.warning("replica_down", error=repr(exc), retry_in_seconds=self._cooldown)

    def _succeeded(self) -> None:
        if self._down:
            self._down = False
            log.info("replica_back")

    async def close(self) -> None:
        await self.pool.close()
