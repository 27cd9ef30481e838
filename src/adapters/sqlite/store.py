"""The embedded store: accounts and events in one SQLite file, off the event loop.

One writer thread owns the only writing connection, and every port method that writes runs there
as one function holding one whole transaction, so a call costs one hop between threads however
many statements it runs. Queries run on a second connection in a second thread: in WAL mode they
read the last committed state while a write is in progress.

Durability: WAL with ``synchronous=NORMAL`` (the default). A commit has then been written to the
WAL file before ``append`` returns, so it survives the process crashing or being killed at any
point after that: the operating system holds the data. What NORMAL gives up is durability of the
last commits against a power cut or kernel crash (the WAL is synced at checkpoints, not at every
commit); ``open(..., synchronous="FULL")`` syncs every commit and survives those as well, at the
cost of one fsync per transaction.
"""

# S608: SQL text here is assembled only from this module's constants (table and column lists);
# every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, Self, TypeVar

from msgspec import Raw

from eventcore.adapters.sqlite.schema import migrate
from eventcore.aggregation import CountPoint, EventTypeCount, Granularity
from eventcore.errors import Conflict, Unavailable
from eventcore.events import EventCursor, IngestBatch, StoredEvent
from eventcore.ports import AppendResult
from eventcore.tenancy import ApiKey, Membership, Project, Role, User, Workspace

P = ParamSpec("P")
T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_GRAIN_TABLES = {Granularity.MINUTE: "counts_minute", Granularity.HOUR: "counts_hour"}
_GRAIN_MICROSECONDS = {Granularity.MINUTE: 60_000_000, Granularity.HOUR: 3_600_000_000}

# SQLite error names that mean "try again later" rather than "this code is wrong".
_TRANSIENT_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR")


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _optional_moment(micros: int | None) -> datetime | None:
    return None if micros is None else _moment(micros)


def _count_events_sql(table: str, bucket_width: int, where: str, source: str = "events") -> str:
    # The modulo is written so that buckets before 1970 round down too (SQLite's % truncates).
    return (
        f"INSERT INTO {table} (workspace_id, project_id, bucket, event_type, count) "
        f"SELECT workspace_id, project_id, ts - (ts % {bucket_width} + {bucket_width}) % {bucket_width}, "
        f"event_type, count(*) FROM {source} WHERE {where} GROUP BY 1, 2, 3, 4 "
        "ON CONFLICT (workspace_id, project_id, bucket, event_type) "
        "DO UPDATE SET count = count + excluded.count"
    )


_INSERT_EVENT = (
    "INSERT INTO events (workspace_id, project_id, event_id, event_type, ts, received_at, properties)"
    " VALUES (?, ?, ?, ?, ?, ?, CAST(? AS TEXT))"
    " ON CONFLICT (workspace_id, project_id, event_id) DO NOTHING"
)
# Rows with seq above the highest seq before the insert are exactly the rows it inserted: the
# writer holds the write lock for the whole transaction and AUTOINCREMENT never reuses a seq.
# NOT INDEXED keeps the planner on the rowid range; left alone it scans a whole covering index
# to save the GROUP BY a sort, which makes every append cost as much as the table is large.
_COUNT_NEW_EVENTS = tuple(
    _count_events_sql(table, _GRAIN_MICROSECONDS[grain], "seq > ?", "events NOT INDEXED")
    for grain, table in _GRAIN_TABLES.items()
)
_COUNT_ALL_EVENTS = tuple(
    _count_events_sql(table, _GRAIN_MICROSECONDS[grain], "true")
    for grain, table in _GRAIN_TABLES.items()
)
_COUNT_WORKSPACE_EVENTS = tuple(
    _count_events_sql(table, _GRAIN_MICROSECONDS[grain], "workspace_id = ?")
    for grain, table in _GRAIN_TABLES.items()
)
_SERIES = {
    (grain, filtered): (
        f"SELECT bucket, event_type, count FROM {table}"
        " WHERE workspace_id = ? AND project_id = ? AND bucket >= ? AND bucket < ?"
        + (" AND event_type = ?" if filtered else "")
        + " AND count > 0 ORDER BY bucket, event_type"
    )
    for grain, table in _GRAIN_TABLES.items()
    for filtered in (False, True)
}
_EVENT_COLUMNS = "event_id, event_type, ts, received_at, CAST(properties AS BLOB), seq"
_API_KEY_COLUMNS = "id, workspace_id, project_id, name, prefix, key_hash, created_at, revoked_at"
_USER_COLUMNS = "id, email, password_hash, created_at"
_MEMBERSHIP_COLUMNS = "workspace_id, user_id, role, created_at"


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], _moment(row[3]))


def _membership(row: Any) -> Membership:
    return Membership(row[0], row[1], Role(row[2]), _moment(row[3]))


def _project(row: Any) -> Project:
    return Project(row[0], row[1], row[2], _moment(row[3]))


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        row[0], row[1], row[2], row[3], row[4], row[5], _moment(row[6]), _optional_moment(row[7])
    )


def _stored_event(row: Any) -> StoredEvent:
    return StoredEvent(row[0], row[1], _moment(row[2]), _moment(row[3]), Raw(row[4]), row[5])


def _event_rows(batches: Sequence[IngestBatch]) -> Iterator[tuple[Any, ...]]:
    for batch in batches:
        workspace_id, project_id = batch.workspace_id, batch.project_id
        received_at = _micros(batch.received_at)
        for event in batch.events:
            # Raw exposes the buffer protocol, so the JSON text is bound without a copy.
            yield (
                workspace_id,
                project_id,
                event.id,
                event.type,
                (event.timestamp - _EPOCH) // _MICROSECOND,
                received_at,
                event.properties,
            )


# The functions from here to SqliteStore run in the writer or reader thread, never on the loop.


def _connect(path: Path, *, pragmas: Sequence[str]) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; writes open theirs explicitly.
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in pragmas:
            connection.execute(pragma)
    except BaseException:
        connection.close()
        raise
    return connection


def _open_writer(path: Path, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    connection = _connect(path, pragmas=[f"PRAGMA busy_timeout = {busy_timeout_ms:d}"])
    try:
        (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode for {path} (journal mode is {mode}).")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        migrate(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _close_writer(connection: sqlite3.Connection) -> None:
    try:
        connection.execute("PRAGMA optimize")
    finally:
        connection.close()


def _in_transaction(
    connection: sqlite3.Connection,
    work: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    # IMMEDIATE takes the write lock up front, so a write never fails half-way on a lock upgrade.
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection, *args, **kwargs)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.rollback()
        raise
    return result


def _create_signup(
    connection: sqlite3.Connection, user: User, workspace: Workspace, owner: Membership
) -> None:
    # The unique index decides, inside the transaction: no check-then-insert race.
    inserted = connection.execute(
        "INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (email) DO NOTHING",
        (user.id, user.email, user.password_hash, _micros(user.created_at)),
    ).rowcount
    if not inserted:
        raise Conflict("An account with this email already exists.", code="email_taken")
    connection.execute(
        "INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)",
        (workspace.id, workspace.name, _micros(workspace.created_at)),
    )
    _insert_membership(connection, owner)


def _insert_membership(connection: sqlite3.Connection, membership: Membership) -> None:
    inserted = connection.execute(
        f"INSERT INTO memberships ({_MEMBERSHIP_COLUMNS}) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (workspace_id, user_id) DO NOTHING",
        (
            membership.workspace_id,
            membership.user_id,
            membership.role.value,
            _micros(membership.created_at),
        ),
    ).rowcount
    if not inserted:
        raise Conflict("That user is already a member of this workspace.", code="already_member")


def _create_project(connection: sqlite3.Connection, project: Project) -> None:
    connection.execute(
        "INSERT INTO projects (workspace_id, id, name, created_at) VALUES (?, ?, ?, ?)",
        (project.workspace_id, project.id, project.name, _micros(project.created_at)),
    )


def _create_api_key(connection: sqlite3.Connection, key: ApiKey) -> None:
    connection.execute(
        f"INSERT INTO api_keys ({_API_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key.id,
            key.workspace_id,
            key.project_id,
            key.name,
            key.prefix,
            key.key_hash,
            _micros(key.created_at),
            None if key.revoked_at is None else _micros(key.revoked_at),
        ),
    )


def _revoke_api_key(
    connection: sqlite3.Connection, workspace_id: str, key_id: str, at: datetime
) -> ApiKey | None:
    # coalesce keeps the first revocation time; RETURNING reads the row in the same statement.
    rows = connection.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?)"
        f" WHERE workspace_id = ? AND id = ? RETURNING {_API_KEY_COLUMNS}",
        (_micros(at), workspace_id, key_id),
    ).fetchall()
    return _api_key(rows[0]) if rows else None


def _append(connection: sqlite3.Connection, batches: Sequence[IngestBatch]) -> AppendResult:
    (last_seq,) = connection.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    # executemany sums the rows each execution changed: a conflict changes none.
    inserted = connection.executemany(_INSERT_EVENT, _event_rows(batches)).rowcount
    if inserted:
        for statement in _COUNT_NEW_EVENTS:
            connection.execute(statement, (last_seq,))
    return AppendResult(inserted, sum(len(batch.events) for batch in batches) - inserted)


def _rebuild_counts(connection: sqlite3.Connection, workspace_id: str | None) -> int:
    if workspace_id is None:
        for table in _GRAIN_TABLES.values():
            connection.execute(f"DELETE FROM {table}")
        for statement in _COUNT_ALL_EVENTS:
            connection.execute(statement)
        (counted,) = connection.execute("SELECT count(*) FROM events").fetchone()
    else:
        for table in _GRAIN_TABLES.values():
            connection.execute(f"DELETE FROM {table} WHERE workspace_id = ?", (workspace_id,))
        for statement in _COUNT_WORKSPACE_EVENTS:
            connection.execute(statement, (workspace_id,))
        (counted,) = connection.execute(
            "SELECT count(*) FROM events WHERE workspace_id = ?", (workspace_id,)
        ).fetchone()
    return int(counted)


def _fetch_all(connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    # fetchall ends the statement, and with it the read transaction: the next query sees new
    # commits.
    return connection.execute(sql, parameters).fetchall()


def _list_events(
    connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]
) -> list[StoredEvent]:
    # Built in the reader thread, so a large page costs the event loop nothing but the hop.
    return [_stored_event(row) for row in connection.execute(sql, parameters).fetchall()]


class SqliteStore:
    """A :class:`eventcore.ports.Store` in one SQLite file. Create it with :meth:`open`."""

    def __init__(
        self,
        path: Path,
        writer: ThreadPoolExecutor,
        write_connection: sqlite3.Connection,
        reader: ThreadPoolExecutor,
        read_connection: sqlite3.Connection,
    ) -> None:
        self.path = path
        self._writer = writer
        self._write_connection = write_connection
        self._reader = reader
        self._read_connection = read_connection
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str | PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_ms: int = 5_000,
    ) -> SqliteStore:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date.

        ``busy_timeout_ms`` is how long a statement waits for another process holding the file
        (say ``eventcore rollup rebuild`` run beside the server) before giving up.
        """
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        writer = ThreadPoolExecutor(1, thread_name_prefix="eventcore-sqlite-writer")
        reader = ThreadPoolExecutor(1, thread_name_prefix="eventcore-sqlite-reader")
        write_connection: sqlite3.Connection | None = None
        try:
            write_connection = await loop.run_in_executor(
                writer, _open_writer, file, synchronous, busy_timeout_ms
            )
            read_connection = await loop.run_in_executor(
                reader,
                functools.partial(
                    _connect,
                    file,
                    pragmas=[
                        f"PRAGMA busy_timeout = {busy_timeout_ms:d}",
                        "PRAGMA query_only = ON",
                    ],
                ),
            )
        except BaseException:
            if write_connection is not None:
                await loop.run_in_executor(writer, write_connection.close)
            writer.shutdown()
            reader.shutdown()
            raise
        return cls(file, writer, write_connection, reader, read_connection)

    async def close(self) -> None:
        """Finish the work already submitted, then close both connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._reader, self._read_connection.close)
            await loop.run_in_executor(self._writer, _close_writer, self._write_connection)
        finally:
            # Both threads are idle now, so joining them does not hold up the loop.
            self._reader.shutdown()
            self._writer.shutdown()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _write(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``work`` as one transaction in the writer thread."""
        call = functools.partial(_in_transaction, self._write_connection, work, *args, **kwargs)
        return await self._run(self._writer, call)

    async def _query(self, sql: str, *parameters: Any) -> list[Any]:
        call = functools.partial(_fetch_all, self._read_connection, sql, parameters)
        return await self._run(self._reader, call)

    async def _run(self, executor: ThreadPoolExecutor, call: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("This SqliteStore is closed.")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, call)
        except sqlite3.OperationalError as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name.startswith(_TRANSIENT_ERRORS):
                raise Unavailable(
                    f"The database is unavailable ({name}).", code="store_unavailable"
                ) from exc
            raise
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"The record already exists ({exc}).") from exc

    # accounts

    async def ping(self) -> None:
        """Readiness: the database file answers a query."""
        await self._query("SELECT 1")

    async def create_signup(self, user: User, workspace: Workspace, owner: Membership) -> None:
        await self._write(_create_signup, user, workspace, owner)

    async def get_user(self, user_id: str) -> User | None:
        rows = await self._query(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", user_id)
        return _user(rows[0]) if rows else None

    async def get_user_by_email(self, email: str) -> User | None:
        rows = await self._query(f"SELECT {_USER_COLUMNS} FROM users WHERE email = ?", email)
        return _user(rows[0]) if rows else None

    async def get_membership(self, workspace_id: str, user_id: str) -> Membership | None:
        rows = await self._query(
            f"SELECT {_MEMBERSHIP_COLUMNS} FROM memberships WHERE workspace_id = ? AND user_id = ?",
            workspace_id,
            user_id,
        )
        return _membership(rows[0]) if rows else None

    async def list_memberships(self, user_id: str) -> list[Membership]:
        # rowid breaks ties in insertion order, as the reference store's stable sort does.
        rows = await self._query(
            f"SELECT {_MEMBERSHIP_COLUMNS} FROM memberships WHERE user_id = ?"
            " ORDER BY created_at, rowid",
            user_id,
        )
        return [_membership(row) for row in rows]

    async def add_membership(self, membership: Membership) -> None:
        await self._write(_insert_membership, membership)

    async def create_project(self, project: Project) -> None:
        await self._write(_create_project, project)

    async def get_project(self, workspace_id: str, project_id: str) -> Project | None:
        rows = await self._query(
            "SELECT id, workspace_id, name, created_at FROM projects"
            " WHERE workspace_id = ? AND id = ?",
            workspace_id,
            project_id,
        )
        return _project(rows[0]) if rows else None

    async def list_projects(self, workspace_id: str) -> list[Project]:
        rows = await self._query(
            "SELECT id, workspace_id, name, created_at FROM projects WHERE workspace_id = ?"
            " ORDER BY created_at, rowid",
            workspace_id,
        )
        return [_project(row) for row in rows]

    async def create_api_key(self, key: ApiKey) -> None:
        await self._write(_create_api_key, key)

    async def list_api_keys(self, workspace_id: str, project_id: str) -> list[ApiKey]:
        rows = await self._query(
            f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = ? AND project_id = ?"
            " ORDER BY created_at, rowid",
            workspace_id,
            project_id,
        )
        return [_api_key(row) for row in rows]

    async def revoke_api_key(self, workspace_id: str, key_id: str, at: datetime) -> ApiKey | None:
        return await self._write(_revoke_api_key, workspace_id, key_id, at)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        rows = await self._query(
            f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", key_hash
        )
        return _api_key(rows[0]) if rows else None

    # events

    async def append(self, batches: Sequence[IngestBatch]) -> AppendResult:
        if not any(batch.events for batch in batches):
            return AppendResult(0, 0)
        return await self._write(_append, batches)

    async def count_series(
        self,
        workspace_id: str,
        project_id: str,
        granularity: Granularity,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[CountPoint]:
        if granularity not in _GRAIN_TABLES:
            raise ValueError(f"Counts are stored by minute and hour, not by {granularity.value}.")
        parameters: tuple[Any, ...] = (workspace_id, project_id, _micros(start), _micros(end))
        if event_type is not None:
            parameters += (event_type,)
        rows = await self._query(_SERIES[(granularity, event_type is not None)], *parameters)
        return [CountPoint(_moment(row[0]), row[1], row[2]) for row in rows]

    async def event_type_totals(
        self, workspace_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[EventTypeCount]:
        rows = await self._query(
            "SELECT event_type, sum(count) AS total FROM counts_hour"
            " WHERE workspace_id = ? AND project_id = ? AND bucket >= ? AND bucket < ?"
            " GROUP BY event_type HAVING total > 0 ORDER BY total DESC, event_type",
            workspace_id,
            project_id,
            _micros(start),
            _micros(end),
        )
        return [EventTypeCount(row[0], row[1]) for row in rows]

    async def list_events(
        self,
        workspace_id: str,
        project_id: str,
        *,
        limit: int,
        event_type: str | None = None,
        before: EventCursor | None = None,
    ) -> list[StoredEvent]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE workspace_id = ? AND project_id = ?"
        parameters: list[Any] = [workspace_id, project_id]
        if event_type is not None:
            sql += " AND event_type = ?"
            parameters.append(event_type)
        if before is not None:
            # A row value comparison: SQLite turns it into a range scan of the index.
            sql += " AND (ts, seq) < (?, ?)"
            parameters += (_micros(before.timestamp), before.seq)
        sql += " ORDER BY ts DESC, seq DESC LIMIT ?"
        parameters.append(max(limit, 0))
        call = functools.partial(_list_events, self._read_connection, sql, parameters)
        return await self._run(self._reader, call)

    async def rebuild_counts(self, workspace_id: str | None = None) -> int:
        return await self._write(_rebuild_counts, workspace_id)
