"""Append throughput of PostgresStore: events/s in appends of 2,000 events over one connection.

Creates a scratch database on 127.0.0.1:5432, migrates it, appends ``--appends`` calls of
``--batches`` x ``--events`` events (like a worker flushing 100-event messages) spread over a few
workspaces, then the same appends again (all duplicates: a redelivery storm), and drops the
database. Run: ``.venv/bin/python bench/pg_append.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

import psycopg
from msgspec import Raw
from psycopg import sql

from eventcore.adapters.postgres import PostgresStore, migrate
from eventcore.events import Event, IngestBatch

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TYPES = ("page_view", "click", "signup", "purchase", "logout")


def make_appends(
    appends: int, batches: int, events: int, workspaces: int
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
                            Raw(
                                b'{"path":"/pricing/%d","referrer":"https://example.com/",'
                                b'"plan":"pro","n":%d}' % (n, n)
                            ),
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
        calls = make_appends(
            arguments.appends, arguments.batches, arguments.events, arguments.workspaces
        )
        total = arguments.appends * arguments.batches * arguments.events
        async with await PostgresStore.open(dsn, min_size=1, max_size=1) as store:
            await store.append(make_appends(1, 2, 10, 1)[0])  # warm up: connection, plans
            for label in ("new events", "all duplicates"):
                began = time.perf_counter()
                inserted = 0
                for call in calls:
                    inserted += (await store.append(call)).inserted
                elapsed = time.perf_counter() - began
                print(
                    f"{label:>15}: {total} events in {elapsed:.2f} s = {total / elapsed:,.0f} events/s"
                    f" ({inserted} inserted, {elapsed / len(calls) * 1000:.1f} ms per append)"
                )
    finally:
        async with await psycopg.AsyncConnection.connect(ADMIN_DSN, autocommit=True) as admin:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=50)
    parser.add_argument("--batches", type=int, default=20, help="IngestBatches per append")
    parser.add_argument("--events", type=int, default=100, help="events per IngestBatch")
    parser.add_argument("--workspaces", type=int, default=4)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
