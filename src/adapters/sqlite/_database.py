"""The SQLite file behind the store: two connections, each owned by one thread, off the loop.

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

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, Self, TypeVar

from eventcore.adapters.files import private_directory, private_file, tighten
from eventcore.adapters.sqlite._errors import sqlite_errors
from eventcore.adapters.sqlite.schema import migrate

P = ParamSpec("P")
T = TypeVar("T")

# The files SQLite keeps beside the database.
_COMPANIONS = ("-wal", "-shm", "-journal")

# The functions from here to Database run in the writer or reader thread, never on the loop.


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


def _fetch_all(
    connection: sqlite3.Connection,
    decode: Callable[[Any], T],
    sql: str,
    parameters: Sequence[Any],
) -> list[T]:
    # fetchall ends the statement, and with it the read transaction: the next query sees new
    # commits. Rows are decoded here, so a large page costs the event loop nothing but the hop.
    return [decode(row) for row in connection.execute(sql, parameters).fetchall()]


class Database:
    """The two connections and their threads; the store's parts read and write through it."""

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
    ) -> Self:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date.

        ``busy_timeout_ms`` is how long a statement waits for another process holding the file
        (say ``eventcore rollup rebuild`` run beside the server) before giving up: a port method
        then raises DatabaseUnavailable.
        """
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        file = Path(path)
        # Created 0600 before SQLite opens it: SQLite gives its -wal, -shm and -journal files the
        # mode of the database file.
        private_directory(file.parent)
        private_file(file)
        for suffix in _COMPANIONS:
            tighten(file.with_name(file.name + suffix))
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

    async def _query(self, decode: Callable[[Any], T], sql: str, *parameters: Any) -> list[T]:
        """Every row of one query, each decoded in the reader thread."""
        call = functools.partial(_fetch_all, self._read_connection, decode, sql, parameters)
        return await self._run(self._reader, call)

    async def _query_one(self, decode: Callable[[Any], T], sql: str, *parameters: Any) -> T | None:
        rows = await self._query(decode, sql, *parameters)
        return rows[0] if rows else None

    async def _run(self, executor: ThreadPoolExecutor, call: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("This SqliteStore is closed.")
        with sqlite_errors():
            return await asyncio.get_running_loop().run_in_executor(executor, call)
