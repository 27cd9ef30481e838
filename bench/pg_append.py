"""Append throughput of PostgresStore: events/s in appends of 2,000 events over one connection.

Creates a scratch database on 127.0.0.1:5432, migrates it, appends ``--appends`` calls of
``--batches`` x ``--events`` events (like a worker flushing 100-event messages) spread over a few
workspaces, then the same appends again (all duplicates: a redelivery storm), and drops the
database. Run: ``.venv/bin/python bench/pg_append.py``.

With ``--persons``, the same appends are made twice more, in the same database, their events
naming persons as bench/wrk/ingest.lua's do (of every 20, 16 a user_id, 3 an anonymous_id only,
1 nobody; each 100-event batch from 10 persons of a pool of 50,000): the cost of persons in the
store alone (no HTTP, no queue), with the CPU seconds of this process (the store's Python: the
sketches' merges) and of the database's PostgreSQL backends for each run. With
``--dimensions``, twice more with persons and the two dimensions bench/wrk/ingest.lua's events
carry (``plan``, 3 values, and ``context.page.path``, 50), declared by every project.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

import psutil
import psycopg
from msgspec import Raw
from psycopg import sql

from eventcore.adapters.postgres import PostgresStore, migrate
from eventcore.events import Event, IngestBatch
from eventcore.tenancy import Membership, Project, Role, User, Workspace

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TYPES = ("page_view", "click", "signup", "purchase", "logout")


def _person(call: int, batch: int, n: int) -> dict[str, str]:
    """Who did event ``n`` of a batch, as bench/wrk/ingest.lua's persons."""
    kind = n % 20
    person = ((call * 31 + batch) * 10 + n % 10) % 50_000
    if kind == 0:
        return {}
    if kind <= 3:
        return {"anonymous_id": f"anon-{person:x}"}
    return {"user_id": f"user-{person}"}


DIMENSIONS = ("plan", "context.page.path")
PLANS = ("free", "pro", "enterprise")


def _properties(n: int, dimensions: bool) -> bytes:
    if dimensions:
        return b'{"path":"/pricing/%d","plan":"%s","context":{"page":{"path":"/page-%d"}}}' % (
            n,
            PLANS[n % 3].encode(),
            n % 50,
        )
    return b'{"path":"/pricing/%d","referrer":"https://example.com/","plan":"pro","n":%d}' % (
        n,
        n,
    )


def make_appends(
    appends: int,
    batches: int,
    events: int,
    workspaces: int,
    persons: bool = False,
    dimensions: bool = False,
) -> list[list[IngestBatch]]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    received = datetime.now(UTC)
    calls = []
    for call in range(appends):
        group = []
        for b in range(batches):
            workspace = f"ws-{(call * batches + b) % workspaces}"
            project = f"prj-{b % 2}"
            group.append(
                IngestBatch(
                    workspace,
                    project,
                    received,
                    [
                        Event(
                            f"{call}-{b}-{n}-{secrets.token_hex(4)}",
                            TYPES[n % len(TYPES)],
                            start + timedelta(seconds=(call * 997 + b * 31 + n) % 3600),
                            Raw(_properties(n, dimensions)),
                            **(_person(call, b, n) if persons else {}),
                        )
                        for n in range(events)
                    ],
                )
            )
        calls.append(group)
    return calls


async def run(arguments: argparse.Namespace) -> None:
    name = f"eventcore_bench_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(ADMIN_DSN, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        await migrate(dsn)
        shape = (arguments.appends, arguments.batches, arguments.events, arguments.workspaces)
        runs = [("", make_appends(*shape))]
        if arguments.persons or arguments.dimensions:
            runs.append((" with persons", make_appends(*shape, persons=True)))
        if arguments.dimensions:
            runs.append((" + dimensions", make_appends(*shape, persons=True, dimensions=True)))
        total = arguments.appends * arguments.batches * arguments.events
        async with await PostgresStore.open(dsn, min_size=1, max_size=1) as store:
            await store.append(make_appends(1, 2, 10, 1)[0])  # warm up: connection, plans
            await store.append(make_appends(1, 2, 10, 1, persons=True)[0])
            backend = await _backend(name)
            for kind, calls in runs:
                if kind == " + dimensions":
                    await _declare(store, arguments.workspaces)
                for label in ("new events", "all duplicates"):
                    cpu = time.process_time()
                    pg_cpu = _cpu(backend)
                    began = time.perf_counter()
                    inserted = 0
                    for call in calls:
                        inserted += (await store.append(call)).inserted
                    elapsed = time.perf_counter() - began
                    cpu = time.process_time() - cpu
                    pg_cpu = _cpu(backend) - pg_cpu
                    print(
                        f"{label + kind:>28}: {total} events in {elapsed:.2f} s ="
                        f" {total / elapsed:,.0f} events/s ({inserted} inserted,"
                        f" {elapsed / len(calls) * 1000:.1f} ms per append; CPU per event:"
                        f" this process {cpu / total * 1e6:.1f} us,"
                        f" PostgreSQL {pg_cpu / total * 1e6:.1f} us)"
                    )
    finally:
        async with await psycopg.AsyncConnection.connect(ADMIN_DSN, autocommit=True) as admin:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def _declare(store: PostgresStore, workspaces: int) -> None:
    """Make the workspaces and projects the appends name, every project declaring both
    dimensions (the runs before had no declared dimensions: no project rows)."""
    now = datetime.now(UTC)
    for w in range(workspaces):
        user = User(f"user-{w}", f"bench{w}@example.com", "-", now)
        workspace = Workspace(f"ws-{w}", f"ws-{w}", now)
        await store.create_signup(
            user, workspace, Membership(workspace.id, user.id, Role.OWNER, now)
        )
        for p in range(2):
            await store.create_project(Project(f"prj-{p}", workspace.id, "p", now))
            await store.set_dimensions(workspace.id, f"prj-{p}", DIMENSIONS)


async def _backend(database: str) -> psutil.Process | None:
    """The store's one PostgreSQL backend (its pool holds one connection)."""
    async with await psycopg.AsyncConnection.connect(ADMIN_DSN, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        rows = await cursor.fetchall()
    return psutil.Process(rows[0][0]) if len(rows) == 1 else None


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=50)
    parser.add_argument("--batches", type=int, default=20, help="IngestBatches per append")
    parser.add_argument("--events", type=int, default=100, help="events per IngestBatch")
    parser.add_argument("--workspaces", type=int, default=4)
    parser.add_argument("--persons", action="store_true", help="the same again, with persons")
    parser.add_argument(
        "--dimensions", action="store_true", help="and again with persons and 2 dimensions"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
