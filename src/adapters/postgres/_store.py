"""The PostgreSQL store: its account, event and deletion parts over one connection pool."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Self

import psycopg

from eventcore.adapters.postgres._accounts import Accounts
from eventcore.adapters.postgres._database import Pool, open_pool
from eventcore.adapters.postgres._deletions import Deletions
from eventcore.adapters.postgres._events import Events
from eventcore.adapters.postgres._replica import ReadReplica
from eventcore.adapters.postgres.schema import DEFAULT_APP_ROLE, load_migrations
from eventcore.errors import DatabaseUnavailable

# The newest schema version this code ships (its last migration).
_SHIPPED = load_migrations()[-1].version


class PostgresStore(Accounts, Events, Deletions):
    """Accounts and events in PostgreSQL, each transaction confined to one workspace.

    The store connects with the DSN's user and works as ``app_role`` (``SET ROLE`` on every new
    pooled connection): a role that owns nothing and is bound by row-level security, so a query
    that forgot its ``workspace_id`` filter still cannot see another tenant. Every failure it
    reports is an :mod:`eventcore.errors` error (see ``_errors``).

    With a read ``replica``, analytics and listings read from it as ``_replica`` says (never
    older than the read's start); writes, account reads and whatever a write decides on read
    the primary.

    ``before_commit`` is for crash tests: called in every append after all its inserts and
    before its COMMIT (a hook that kills the process there leaves nothing committed).
    """

    def __init__(
        self,
        pool: Pool,
        *,
        replica: ReadReplica | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self._pool = pool
        self._replica = replica
        self._before_commit = before_commit
        self._known_keys = OrderedDict()
        self._dimensions = OrderedDict()
        self._expiry_resume = {}
        self._keys_unreachable_until = None
        self._probing_keys = False

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        app_role: str = DEFAULT_APP_ROLE,
        pool_timeout: float = 5.0,
        read_dsn: str = "",
        read_wait: float = 1.0,
        before_commit: Callable[[], None] | None = None,
    ) -> PostgresStore:
        """Open the pool; fails at once, saying why, if the database or the role is not there.

        ``pool_timeout`` bounds both the wait for the pool to fill and each later wait for a
        free connection (then DatabaseUnavailable). ``read_dsn`` names a streaming replica of
        the database for analytics and listings, each read waiting at most ``read_wait``
        seconds for it to catch up (see ``_replica``); it is not waited for at start-up: reads
        go to the primary until it answers.
        """
        pool = await open_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            app_role=app_role,
            pool_timeout=pool_timeout,
        )
        replica = None
        if read_dsn:
            try:
                replica_pool = await open_pool(
                    read_dsn,
                    min_size=min_size,
                    max_size=max_size,
                    app_role=app_role,
                    pool_timeout=pool_timeout,
                    wait=False,
                    name="eventcore-replica",
                )
            except BaseException:
                await pool.close()
                raise
            replica = ReadReplica(replica_pool, wait=read_wait)
        return cls(pool, replica=replica, before_commit=before_commit)

    @property
    def pool(self) -> Pool:
        """The connection pool, for statistics and tests."""
        return self._pool

    @property
    def replica(self) -> ReadReplica | None:
        """The read replica, if any: where its reads went, for statistics and tests."""
        return self._replica

    async def close(self) -> None:
        if self._replica is not None:
            await self._replica.close()
        await self._pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def ping(self) -> None:
        """Readiness: return if a pooled connection answers; raise DatabaseUnavailable otherwise."""
        async with self._connection() as conn:
            await conn.execute("SELECT 1")

    async def check_schema(self) -> None:
        """Return if the schema is at least at this code's version; else DatabaseUnavailable
        saying to run ``eventcore migrate`` (every process checks it at start-up, after it has
        reached every server it needs)."""
        async with self._connection() as conn:
            try:
                cursor = await conn.execute("SELECT eventcore.schema_version()")
                row = await cursor.fetchone()
                found = row[0] if row is not None else None
            except psycopg.errors.UndefinedFunction:
                # Older than 0011, which made the function.
                found = None
        if found is None or found < _SHIPPED:
            raise DatabaseUnavailable(
                f"The database schema is at {found or 'a version before 0011'}; this eventcore"
                f" needs {_SHIPPED}: run `eventcore migrate`."
            )
