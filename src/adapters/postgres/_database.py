"""The pool behind the PostgreSQL store: opening it, and every connection's way in and out.

Each connection works as the application role (``SET ROLE`` when the pool makes it, and again
after every checkout's reset) in UTC; ``json`` columns load straight to :class:`msgspec.Raw`.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import msgspec
import psycopg
from msgspec import Raw
from psycopg import AsyncConnection, AsyncPipeline, sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format, TransactionStatus
from psycopg_pool import AsyncConnectionPool

from eventcore.adapters.postgres._errors import postgres_errors

if TYPE_CHECKING:
    from eventcore.adapters.postgres._replica import ReadReplica

Connection: TypeAlias = AsyncConnection[tuple[Any, ...]]
Pool: TypeAlias = AsyncConnectionPool[Connection]
Parameters: TypeAlias = Sequence[Any] | Mapping[str, Any]
T = TypeVar("T")

# Transaction-local, so it ends with the transaction whatever happens to the connection.
SET_TENANT = "SELECT set_config('app.workspace_id', %s, true)"

# Where the primary's last WAL record ends: every commit it has made, even one whose WAL is not
# flushed yet (the appends commit with synchronous_commit off, so they are visible before their
# WAL reaches the disk). The insert position, less a page header it stands just after (a
# record ending on a page boundary: a replica that replayed it stands at the boundary).
PRIMARY_POSITION = """
SELECT (at - CASE WHEN n % segment = 40 THEN 40 WHEN n % page = 24 THEN 24 ELSE 0 END)::text
FROM (SELECT pg_current_wal_insert_lsn() AS at) AS position,
  LATERAL (SELECT pg_wal_lsn_diff(at, '0/0') AS n) AS bytes,
  LATERAL (SELECT current_setting('wal_block_size')::numeric AS page) AS pages,
  LATERAL (SELECT setting::numeric AS segment FROM pg_settings WHERE name = 'wal_segment_size')
    AS segments
"""

# How many projects' declared dimensions a store remembers (see Database._dimensions).
_KNOWN_DIMENSIONS = 10_000


def values(record: msgspec.Struct) -> tuple[Any, ...]:
    """A record's fields in order, as bound parameters (a role by its value)."""
    return tuple(
        field.value if isinstance(field, enum.Enum) else field
        for field in msgspec.structs.astuple(record)
    )


class _RawJsonBinaryLoader(Loader):
    """json straight to msgspec.Raw: its binary form is the client's JSON text itself."""

    format = Format.BINARY

    def load(self, data: Buffer) -> Raw:
        return Raw(bytes(data))


class _RawJsonTextLoader(Loader):
    format = Format.TEXT

    def load(self, data: Buffer) -> Raw:
        return Raw(bytes(data))


async def open_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    app_role: str,
    pool_timeout: float,
    wait: bool = True,
    name: str = "eventcore",
) -> Pool:
    """A filled pool of connections working as ``app_role``; fails at once, saying why, if the
    database or the role is not there. With ``wait=False`` it neither connects nor waits: the
    pool fills in the background (a server that may be away at start-up, the read replica)."""
    session = sql.SQL("SET ROLE {}; SET TIME ZONE 'UTC'").format(sql.Identifier(app_role))
    # Everything a checkout could have changed in the session goes back to how configure
    # left it; the pool has already rolled back any open transaction.
    reset = sql.SQL(
        "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *;"
        " SELECT pg_advisory_unlock_all(); DISCARD TEMP; {}"
    ).format(session)

    async def configure(conn: Connection) -> None:
        conn.adapters.register_loader("json", _RawJsonBinaryLoader)
        conn.adapters.register_loader("json", _RawJsonTextLoader)
        await conn.execute(session)

    async def reset_session(conn: Connection) -> None:
        await conn.execute(reset)

    if wait:
        # The pool alone would retry in the background and only report a timeout; one direct
        # attempt first gives the real reason (server down, role missing: run the migrations).
        async with await AsyncConnection.connect(dsn, autocommit=True) as probe:
            await probe.execute(session)
    pool: Pool = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True},
        configure=configure,
        reset=reset_session,
        open=False,
        timeout=pool_timeout,
        name=name,
    )
    if not wait:
        await pool.open(wait=False)
        return pool
    try:
        await pool.open(wait=True, timeout=pool_timeout)
    except BaseException:
        await pool.close()
        raise
    return pool


@asynccontextmanager
async def pipelined_transaction(conn: Connection) -> AsyncIterator[AsyncPipeline]:
    """A transaction in pipeline mode whose BEGIN and COMMIT cost no round trip of their own:
    BEGIN leaves with the first statement, COMMIT with the last ones, at the pipeline's closing
    sync (psycopg's ``transaction()`` inside a pipeline syncs after its BEGIN and twice around
    its COMMIT). A transaction left open by a failure is rolled back before the connection
    goes back to the pool.

    On a failure, the results still queued (those of the statements after a refused one are
    aborted) are drained here, at a sync whose own error is the failure's echo: else the
    pipeline's exit meets them and logs a warning. Nothing queued is committed by that sync:
    the COMMIT is queued only after the block succeeded."""
    try:
        async with conn.pipeline() as pipeline:
            try:
                await conn.execute("BEGIN")
                yield pipeline
                await conn.execute("COMMIT")
            except BaseException:
                if not conn.closed:
                    with suppress(psycopg.Error):
                        await pipeline.sync()
                raise
    finally:
        if not conn.closed and conn.info.transaction_status is not TransactionStatus.IDLE:
            # The failure is what the caller hears of; a connection that cannot even roll back
            # is discarded by the pool's reset.
            with suppress(psycopg.Error):
                await conn.execute("ROLLBACK")


class Database:
    """The pool, and the ways the store's parts use a connection from it."""

    _pool: Pool
    # Where analytics and listings read (``_read``), if not from the primary.
    _replica: ReadReplica | None
    # Each project's declared dimensions as this process last read or wrote them, the most recent
    # last: only the appends' guess, which each append checks against the projects table in its
    # own transaction (``_events``). A project not held here is guessed to declare none.
    _dimensions: OrderedDict[tuple[str, str], tuple[str, ...]]

    def _remember_dimensions(
        self, workspace_id: str, project_id: str, dimensions: tuple[str, ...]
    ) -> None:
        key = (workspace_id, project_id)
        if not dimensions:
            self._dimensions.pop(key, None)  # the guess for a project not held
            return
        self._dimensions[key] = dimensions
        self._dimensions.move_to_end(key)
        if len(self._dimensions) > _KNOWN_DIMENSIONS:
            self._dimensions.popitem(last=False)

    @asynccontextmanager
    async def _connection(
        self, wait_for_connection: float | None = None
    ) -> AsyncIterator[Connection]:
        """A pooled connection in autocommit; whatever fails in it is translated (``_errors``).

        ``wait_for_connection`` bounds the wait for a free connection (default: the pool's).
        """
        with postgres_errors():
            async with self._pool.connection(timeout=wait_for_connection) as conn:
                yield conn

    @asynccontextmanager
    async def _tenant(
        self, workspace_id: str, *, pipelined: bool = True
    ) -> AsyncIterator[Connection]:
        """A transaction that sees only ``workspace_id``'s rows.

        Pipelined by default (:func:`pipelined_transaction`): BEGIN, the tenant setting and the
        first statement leave in one round trip, the COMMIT with the closing sync. A write that
        a unique key may refuse goes unpipelined: the refusal then comes back on its own
        statement, instead of aborting a pipeline (which psycopg logs).
        """
        async with self._connection() as conn, _in_tenant(conn, workspace_id, pipelined):
            yield conn

    async def _read(self, workspace_id: str, run: Callable[[Connection], Awaitable[T]]) -> T:
        """``run`` on a connection of the read replica when there is one and it has replayed
        what the primary had committed when the read began (``_replica``), else of the primary;
        ``run`` opens the workspace's transaction itself (``_fetch_in_tenant``). For analytics
        and listings only: whatever a write decides on reads the primary."""

        async def on_primary() -> T:
            async with self._connection() as conn:
                return await run(conn)

        if self._replica is None:
            return await on_primary()

        async def position() -> str:
            async with self._connection() as conn:
                cursor = await conn.execute(PRIMARY_POSITION)
                row = await cursor.fetchone()
            assert row is not None
            return str(row[0])

        with postgres_errors():
            return await self._replica.read(position, run, on_primary)

    async def _query(
        self,
        decode: Callable[..., T],
        sql: str,
        parameters: Parameters,
        *,
        workspace_id: str | None,
        binary: bool = False,
        prepare: bool | None = None,
        setting: str | None = None,
        read: bool = False,
    ) -> list[T]:
        """Every row of one query, each as ``decode(*row)``: in ``workspace_id``'s transaction,
        or (None) outside any tenant, for global users and the SECURITY DEFINER lookups.
        ``prepare=False`` plans the query for its own parameters every time (psycopg prepares a
        statement run often, and PostgreSQL may keep a generic plan for it); ``setting``, a
        ``SET LOCAL`` statement run before it in the tenant's transaction. ``read``: an
        analytics or listing query of the workspace, which the read replica may serve."""
        if workspace_id is None:
            async with self._connection() as conn:
                cursor = await conn.execute(sql, parameters, binary=binary, prepare=prepare)
                rows = await cursor.fetchall()
        else:

            async def run(conn: Connection) -> list[tuple[Any, ...]]:
                return await _fetch_in_tenant(
                    conn, workspace_id, sql, parameters, binary, prepare, setting
                )

            if read:
                rows = await self._read(workspace_id, run)
            else:
                async with self._connection() as conn:
                    rows = await run(conn)
        return [decode(*row) for row in rows]

    async def _query_one(
        self,
        decode: Callable[..., T],
        sql: str,
        parameters: Parameters,
        *,
        workspace_id: str | None,
    ) -> T | None:
        rows = await self._query(decode, sql, parameters, workspace_id=workspace_id)
        return rows[0] if rows else None

    async def _insert(self, workspace_id: str, sql: str, parameters: Parameters) -> None:
        """One statement in the workspace's transaction, unpipelined: a unique key may refuse it."""
        async with self._tenant(workspace_id, pipelined=False) as conn:
            await conn.execute(sql, parameters)


@asynccontextmanager
async def _in_tenant(
    conn: Connection, workspace_id: str, pipelined: bool
) -> AsyncIterator[Connection]:
    """A transaction on ``conn`` that sees only ``workspace_id``'s rows (see ``_tenant``)."""
    if pipelined:
        async with pipelined_transaction(conn):
            await conn.execute(SET_TENANT, (workspace_id,))
            yield conn
    else:
        async with conn.transaction():
            await conn.execute(SET_TENANT, (workspace_id,))
            yield conn


async def _fetch_in_tenant(
    conn: Connection,
    workspace_id: str,
    sql: str,
    parameters: Parameters,
    binary: bool,
    prepare: bool | None,
    setting: str | None,
) -> list[tuple[Any, ...]]:
    """One query's rows in ``workspace_id``'s transaction on ``conn``, in one round trip:
    BEGIN, the tenant setting, ``setting``, the query and the COMMIT leave together, and the
    rows are read once the pipeline has closed."""
    async with pipelined_transaction(conn):
        await conn.execute(SET_TENANT, (workspace_id,))
        if setting is not None:
            await conn.execute(setting)
        cursor = await conn.execute(sql, parameters, binary=binary, prepare=prepare)
    return await cursor.fetchall()
