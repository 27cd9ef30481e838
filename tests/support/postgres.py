"""PostgreSQL for tests: a fresh migrated database per session, stores on it, owner-side checks.

Every test run creates its own database ``eventcore_test_<hex>``, migrates it and drops it at the
end, so runs never see each other's data. A server that does not answer on 127.0.0.1:5432 fails
the test with a message saying how to start it; it is never a skip.

Using it from another suite::

    from tests.support.postgres import postgres_dsn, postgres_store  # postgres_dsn is a fixture

    @pytest.fixture
    async def store(postgres_dsn):
        async with postgres_store(postgres_dsn) as store:  # tables emptied first
            yield store

A factory that cannot ask for fixtures (the contract registry's) uses :func:`shared_database`
instead: one migrated database per process, made on first use and dropped when the process ends.
"""

from __future__ import annotations

import asyncio
import atexit
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from eventcore.adapters.postgres import DEFAULT_APP_ROLE, PostgresStore, migrate
from eventcore.aggregation import CountKey, Granularity, StoredGrain
from eventcore.persons import SketchKey, estimate

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
ADMIN_DSN = f"postgresql://{USER}@{HOST}:{PORT}/postgres"
DATABASE_PREFIX = "eventcore_test_"
TENANT_TABLES = (
    "workspaces",
    "memberships",
    "projects",
    "api_keys",
    "events",
    "counts_minute",
    "counts_hour",
    "users_hour",
    "users_day",
    "dims_day",
)
_START_HINT = (
    "start it (as root) with: "
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)


def dsn_for(database: str, *, user: str = USER, port: int = PORT) -> str:
    return f"postgresql://{user}@{HOST}:{port}/{database}"


def dsn_through(dsn: str, port: int) -> str:
    """The same database and user as ``dsn``, reached on 127.0.0.1:``port`` (a fault proxy)."""
    location = psycopg.conninfo.conninfo_to_dict(dsn)
    return dsn_for(str(location["dbname"]), user=str(location["user"]), port=port)


def require_server() -> None:
    """Fail the calling test, saying how to fix it, unless PostgreSQL answers on 127.0.0.1:5432."""
    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            pass
    except OSError as exc:
        pytest.fail(
            f"PostgreSQL is not answering on {HOST}:{PORT} ({exc}); {_START_HINT}", pytrace=False
        )
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL on {HOST}:{PORT} refused user {USER!r}: {exc}; {_START_HINT}",
            pytrace=False,
        )


def run_coroutine(coroutine: Any) -> Any:
    """Run a coroutine to completion from sync code, even when an event loop is running here."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


def create_database(*, owner: str | None = None) -> str:
    """A new empty database with a unique name; returns the name."""
    name = DATABASE_PREFIX + secrets.token_hex(6)
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner is not None:
        statement = sql.SQL("{} OWNER {}").format(statement, sql.Identifier(owner))
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(statement)
    return name


def drop_database(name: str) -> None:
    """Drop the database, first ending whatever connections are still open on it."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def fresh_database(*, migrated: bool = True, app_role: str = DEFAULT_APP_ROLE) -> Iterator[str]:
    """A new database (migrated unless told otherwise) for the duration; yields its DSN."""
    require_server()
    name = create_database()
    try:
        dsn = dsn_for(name)
        if migrated:
            run_coroutine(migrate(dsn, app_role=app_role))
        yield dsn
    finally:
        drop_database(name)


_shared: dict[str, str] = {}


def shared_database() -> str:
    """The DSN of this process's shared migrated database, created on the first call."""
    if "dsn" not in _shared:
        require_server()
        name = create_database()
        atexit.register(drop_database, name)
        dsn = dsn_for(name)
        run_coroutine(migrate(dsn))
        _shared["dsn"] = dsn
    return _shared["dsn"]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of this test session's migrated database (connects as the tables' owner)."""
    with fresh_database() as dsn:
        yield dsn


@asynccontextmanager
async def owner_connection(dsn: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[Any, ...]]]:
    """An autocommit connection as the DSN's user: the tables' owner, no SET ROLE."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        yield conn


@asynccontextmanager
async def app_connection(
    dsn: str, *, app_role: str = DEFAULT_APP_ROLE
) -> AsyncIterator[psycopg.AsyncConnection[tuple[Any, ...]]]:
    """An autocommit connection working as the application role, as the store's are."""
    async with owner_connection(dsn) as conn:
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(app_role)))
        yield conn


async def truncate_tables(dsn: str) -> None:
    """Empty every eventcore table but the migration history, and restart the identities."""
    async with owner_connection(dsn) as conn:
        cursor = await conn.execute(
            "SELECT tablename FROM pg_tables"
            " WHERE schemaname = 'eventcore' AND tablename <> 'schema_migrations'"
        )
        tables = [sql.Identifier("eventcore", row[0]) for row in await cursor.fetchall()]
        await conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY").format(sql.SQL(", ").join(tables))
        )


@asynccontextmanager
async def postgres_store(
    dsn: str, *, min_size: int = 1, max_size: int = 4, empty: bool = True
) -> AsyncIterator[PostgresStore]:
    """A PostgresStore on ``dsn``, its tables emptied first unless ``empty=False``."""
    if empty:
        await truncate_tables(dsn)
    async with await PostgresStore.open(dsn, min_size=min_size, max_size=max_size) as store:
        yield store


async def delete_counts(dsn: str) -> None:
    """Damage the count tables, the persons' sketches and the dimension tallies behind the
    store's back, as an operator's mistake would."""
    async with owner_connection(dsn) as conn:
        await conn.execute("DELETE FROM eventcore.counts_minute")
        await conn.execute("DELETE FROM eventcore.counts_hour")
        await conn.execute("DELETE FROM eventcore.users_hour")
        await conn.execute("DELETE FROM eventcore.users_day")
        await conn.execute("DELETE FROM eventcore.dims_day")


async def stored_counts(dsn: str) -> Counter[CountKey]:
    """Every non-zero row of both count tables, read as the owner (across all tenants)."""
    counts: Counter[CountKey] = Counter()
    async with owner_connection(dsn) as conn:
        for grain in StoredGrain:
            cursor = await conn.execute(
                sql.SQL(
                    "SELECT workspace_id, project_id, bucket, event_type, count FROM {}"
                    " WHERE count <> 0"
                ).format(sql.Identifier("eventcore", f"counts_{grain.value}"))
            )
            for workspace_id, project_id, bucket, event_type, count in await cursor.fetchall():
                counts[CountKey(workspace_id, project_id, grain, bucket, event_type)] = count
    return counts


async def recount_from_events(dsn: str) -> Counter[CountKey]:
    """What the count tables should hold, counted from the stored events with plain SQL."""
    counts: Counter[CountKey] = Counter()
    async with owner_connection(dsn) as conn:
        for grain in StoredGrain:
            cursor = await conn.execute(
                "SELECT workspace_id, project_id, date_trunc(%s, event_time, 'UTC'), type,"
                " count(*) FROM eventcore.events GROUP BY 1, 2, 3, 4",
                (grain.value,),
            )
            for workspace_id, project_id, bucket, event_type, count in await cursor.fetchall():
                counts[CountKey(workspace_id, project_id, grain, bucket, event_type)] = count
    return counts


async def stored_persons(dsn: str) -> dict[SketchKey, int]:
    """Every sketch row's distinct persons (its estimate), of the hours and of the days, read as
    the owner (all tenants); an hour whose kept estimate is not its sketch's adds a key that
    no recount has."""
    found: dict[SketchKey, int] = {}
    async with owner_connection(dsn) as conn:
        cursor = await conn.execute(
            "SELECT workspace_id, project_id, bucket, event_type, sketch, users, relative_error"
            " FROM eventcore.users_hour"
        )
        for *key, sketch, users, error in await cursor.fetchall():
            counted = estimate([sketch])
            found[SketchKey(*key)] = counted.users
            if (users, error) != (counted.users, counted.relative_error):
                # An estimate kept beside its sketch that is not the sketch's: reported as its
                # own key, so that no comparison with a recount can pass.
                found[SketchKey(*key)._replace(event_type=f"(kept {users}, {error})")] = -1
        cursor = await conn.execute(
            "SELECT workspace_id, project_id, day, event_type, sketch FROM eventcore.users_day"
        )
        for *key, sketch in await cursor.fetchall():
            found[SketchKey(*key, Granularity.DAY)] = estimate([sketch]).users
    return found


async def persons_from_events(dsn: str) -> dict[SketchKey, int]:
    """What the sketches should count, counted from the stored events with plain SQL: the
    distinct persons per (project, hour or UTC day, type) and per (project, hour or day) for
    every type."""
    async with owner_connection(dsn) as conn:
        cursor = await conn.execute(
            "SELECT workspace_id, project_id, date_trunc(g.grain, event_time, 'UTC'),"
            " t.event_type, g.grain, count(DISTINCT coalesce(user_id, anonymous_id))"
            " FROM eventcore.events CROSS JOIN LATERAL (VALUES (type), ('')) AS t (event_type)"
            " CROSS JOIN (VALUES ('hour'), ('day')) AS g (grain)"
            " WHERE coalesce(user_id, anonymous_id) IS NOT NULL"
            " GROUP BY 1, 2, 3, 4, 5"
        )
        rows = await cursor.fetchall()
    return {SketchKey(*key, Granularity(grain)): persons for *key, grain, persons in rows}
