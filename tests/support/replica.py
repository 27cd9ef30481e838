"""A PostgreSQL primary and its streaming replica of its own, for the read-replica tests.

Both are servers of the machine's PostgreSQL 15 binaries, started here on free 127.0.0.1 ports
with their data in a temporary directory (``initdb`` for the primary, ``pg_basebackup -R`` for
the replica, which then streams from it) and stopped and removed at the end; the system server
on 5432 is not touched. Run as root, the servers run as the ``postgres`` user. Missing binaries
fail the test, saying what to install; they are never a skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from eventcore.adapters.postgres import migrate
from tests.support.postgres import run_coroutine
from tests.support.processes import free_port

BIN = Path(os.environ.get("EVENTCORE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"
DATABASE = "eventcore_replicated"
# Each server: small, unsynced (a test's data need not survive a crash of the machine).
_SETTINGS = (
    "listen_addresses=127.0.0.1",
    "max_connections=60",
    "shared_buffers=32MB",
    "fsync=off",
    "full_page_writes=off",
    "wal_level=replica",
    "max_wal_senders=4",
    "hot_standby=on",
    "wal_receiver_status_interval=1s",
    "log_min_messages=warning",
)
_START_SECONDS = 60


def _as_server_user() -> list[str]:
    """The prefix that runs a command as the servers' user: root may not run PostgreSQL."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def _run(*command: str) -> None:
    done = subprocess.run(
        [*_as_server_user(), *command], capture_output=True, text=True, timeout=_START_SECONDS
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)


@dataclass
class Server:
    name: str
    data: Path
    port: int
    socket_dir: Path

    def dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def start(self) -> None:
        options = " ".join(f"-c {setting}" for setting in _SETTINGS)
        _run(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.data.parent / f"{self.name}.log"),
            "-o",
            f"-p {self.port} -k {self.socket_dir} {options}",
            "-w",
            "-t",
            str(_START_SECONDS),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        _run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def log(self) -> str:
        path = self.data.parent / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Replicated:
    """A primary with one database migrated for eventcore, and a streaming hot standby of it."""

    def __init__(self, root: Path) -> None:
        sockets = root / "sockets"
        self.primary = Server("primary", root / "primary", free_port(), sockets)
        self.replica = Server("replica", root / "replica", free_port(), sockets)

    @property
    def primary_dsn(self) -> str:
        return self.primary.dsn()

    @property
    def replica_dsn(self) -> str:
        return self.replica.dsn()

    def on_replica(self, statement: str) -> None:
        """One statement on the replica, as its superuser (to pause replay or set a delay)."""
        with psycopg.connect(self.replica.dsn("postgres"), autocommit=True) as conn:
            conn.execute(statement.encode())

    def pause_replay(self) -> None:
        self.on_replica("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.on_replica("SELECT pg_wal_replay_resume()")

    def apply_delay(self, seconds: float) -> None:
        """Every commit becomes visible on the replica ``seconds`` after the primary made it:
        real replication lag (``recovery_min_apply_delay``)."""
        self.on_replica(f"ALTER SYSTEM SET recovery_min_apply_delay = '{int(seconds * 1000)}ms'")
        self.on_replica("SELECT pg_reload_conf()")

    def lag_bytes(self) -> int:
        """How far, in WAL bytes, the replica's replay is behind the primary's insert position."""
        with psycopg.connect(self.primary.dsn("postgres"), autocommit=True) as primary:
            row = primary.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        with psycopg.connect(self.replica.dsn("postgres"), autocommit=True) as replica:
            behind = replica.execute(
                "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())", (row[0],)
            ).fetchone()
        assert behind is not None
        return max(0, int(behind[0]))


def _require_binaries() -> None:
    missing = [name for name in ("initdb", "pg_ctl", "pg_basebackup") if not (BIN / name).exists()]
    if missing:
        pytest.fail(
            f"PostgreSQL server binaries {missing} are not in {BIN}: install postgresql-15"
            " (or point EVENTCORE_TEST_PG_BIN at another version's bin directory).",
            pytrace=False,
        )


@contextlib.contextmanager
def replicated() -> Iterator[Replicated]:
    """A running primary (database :data:`DATABASE`, migrated) and its streaming replica, which
    has replayed the migration; both stopped and their files removed at the end."""
    _require_binaries()
    root = Path(tempfile.mkdtemp(prefix="eventcore-replica-"))
    if os.geteuid() == 0:
        os.chown(root, pwd.getpwnam("postgres").pw_uid, -1)
    servers = Replicated(root)
    _run(str(BIN / "initdb"), "-D", str(servers.primary.data), "-U", "postgres", "-A", "trust",
         "-E", "UTF8", "--no-sync")  # fmt: skip
    (root / "sockets").mkdir()
    if os.geteuid() == 0:
        os.chown(root / "sockets", pwd.getpwnam("postgres").pw_uid, -1)
    started: list[Server] = []
    try:
        servers.primary.start()
        started.append(servers.primary)
        with psycopg.connect(servers.primary.dsn("postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}".encode())
        run_coroutine(migrate(servers.primary_dsn))
        _run(str(BIN / "pg_basebackup"), "-h", HOST, "-p", str(servers.primary.port),
             "-U", "postgres", "-D", str(servers.replica.data), "-R", "-X", "stream",
             "-c", "fast", "--no-sync")  # fmt: skip
        servers.replica.start()
        started.append(servers.replica)
        yield servers
    finally:
        for server in reversed(started):
            with contextlib.suppress(BaseException):
                if server.running():
                    server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
