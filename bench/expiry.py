"""Expiry of events past their project's retention on PostgreSQL, at volume, beside ingest.

Creates a scratch database on 127.0.0.1:5432, migrates it, stores ``--events`` events of one
project spread over the last 30 days (straight into the table, then ``rollup rebuild`` of its
workspace makes the counts and sketches), and gives the project a retention of ``--days`` days,
so that the events older than that (about ``(30 - days) / 30`` of them) are past it. Then, while
appends of 100-event batches (with persons) go on into another workspace at ``--rate`` appends a
second through ``PostgresStore.append`` (what a worker commits), it runs ``eventcore retention
run`` in a process of its own: the run's seconds, and each append's latency before and while it
runs (p50, p99, max; the ratio of the p99s is the figure the README's "Limits" states). Last it
checks that the project's counts equal its events left, and drops the database.

Run: ``.venv/bin/python -m bench.expiry --events 1000000 --days 6``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from msgspec import Raw
from psycopg import sql

from eventcore.adapters.postgres import PostgresStore, migrate
from eventcore.events import Event, IngestBatch
from eventcore.tenancy import Membership, Project, Role, User, Workspace

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parent.parent
OLD, LIVE = "ws-retained", "ws-live"


async def _tenant(store: PostgresStore, workspace_id: str) -> str:
    now = datetime.now(UTC)
    user = User(f"user-{workspace_id}", f"{workspace_id}@example.com", "x", now)
    await store.create_signup(
        user,
        Workspace(workspace_id, workspace_id, now),
        Membership(workspace_id, user.id, Role.OWNER, now),
    )
    project = Project(f"prj-{workspace_id}", workspace_id, "web", now)
    await store.create_project(project)
    return project.id


async def _fill(dsn: str, project_id: str, events: int) -> float:
    """``events`` events of OLD's project, one a minute-ish over the last 30 days."""
    began = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO eventcore.events (workspace_id, project_id, event_id, event_time,"
            " received_at, type, properties, user_id)"
            " SELECT %s, %s, 'old-' || g,"
            " now() - (g * 2592000::bigint / %s) * interval '1 second', now(),"
            " (ARRAY['page_view','click','signup','purchase'])[1 + g %% 4],"
            ' \'{"path":"/pricing","plan":"pro"}\'::json, \'user-\' || (g %% 50000)'
            " FROM generate_series(1, %s) AS g",
            (OLD, project_id, events, events),
        )
        await conn.execute("ANALYZE eventcore.events")
    return time.perf_counter() - began


def _batch(project_id: str, call: int) -> IngestBatch:
    now = datetime.now(UTC)
    return IngestBatch(
        LIVE,
        project_id,
        now,
        [
            Event(
                f"live-{call}-{n}",
                "page_view",
                now,
                Raw(b'{"path":"/pricing"}'),
                user_id=f"user-{(call * 10 + n % 10) % 50_000}",
            )
            for n in range(100)
        ],
    )


class Appender:
    """Appends at a fixed rate (open loop: a late append does not delay the next one's start
    time), recording each one's latency by phase."""

    def __init__(self, store: PostgresStore, project_id: str, rate: float) -> None:
        self.store = store
        self.project_id = project_id
        self.rate = rate
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.calls = 0
        self.stopped = asyncio.Event()
        self.pending: set[asyncio.Task[None]] = set()

    async def _one(self, phase: str) -> None:
        self.calls += 1
        began = time.perf_counter()
        await self.store.append([_batch(self.project_id, self.calls)])
        self.latencies[phase].append(time.perf_counter() - began)

    async def run(self) -> None:
        started = time.perf_counter()
        sent = 0
        while not self.stopped.is_set():
            due = started + sent / self.rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(self._one(self.phase))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            sent += 1
        await asyncio.gather(*self.pending)


def _figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def run(arguments: argparse.Namespace) -> None:
    name = f"eventcore_bench_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(ADMIN_DSN, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        await migrate(dsn)
        async with await PostgresStore.open(dsn, min_size=2, max_size=4) as store:
            old_project = await _tenant(store, OLD)
            live_project = await _tenant(store, LIVE)
            filled = await _fill(dsn, old_project, arguments.events)
            began = time.perf_counter()
            await store.rebuild_counts(OLD)
            rebuilt = time.perf_counter() - began
            print(
                f"stored {arguments.events:,} events in {filled:.1f} s, rebuilt in {rebuilt:.1f} s"
            )
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                cursor = await conn.execute(
                    "SELECT count(*) FROM eventcore.events WHERE workspace_id = %s"
                    " AND event_time < date_trunc('minute', now(), 'UTC') - %s * interval '1 day'",
                    (OLD, arguments.days),
                )
                row = await cursor.fetchone()
            expiring = int(row[0]) if row else 0
            await store.set_retention(OLD, old_project, arguments.days)

            appender = Appender(store, live_project, arguments.rate)
            for call in range(5):  # warm up: connections, plans
                await store.append([_batch(live_project, -call - 1)])
            appending = asyncio.create_task(appender.run())
            await asyncio.sleep(arguments.seconds)
            appender.phase = "during"
            env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTCORE_")}
            env |= {
                "EVENTCORE_DATABASE_URL": dsn,
                "EVENTCORE_JWT_SECRET": secrets.token_urlsafe(40),
                "EVENTCORE_LOG_LEVEL": "warning",
                "PYTHONPATH": str(ROOT / "src"),
            }
            began = time.perf_counter()
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "eventcore.entrypoints.cli", "retention", "run"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - began
            appender.phase = "after"
            await asyncio.sleep(1.0)
            appender.stopped.set()
            await appending
            if done.returncode != 0:
                raise RuntimeError(f"retention run failed: {done.stdout}{done.stderr}")
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                cursor = await conn.execute(
                    "SELECT (SELECT count(*) FROM eventcore.events WHERE workspace_id = %s),"
                    " (SELECT sum(count) FROM eventcore.counts_hour WHERE workspace_id = %s)",
                    (OLD, OLD),
                )
                left, counted = await cursor.fetchone() or (0, 0)
        before, during = (
            _figures(appender.latencies["before"]),
            _figures(appender.latencies["during"]),
        )
        print(done.stdout.strip())
        print(
            f"expired {expiring:,} events in {seconds:.1f} s ({expiring / seconds:,.0f} events/s);"
            f" {left:,} left, counted {counted:,}: equal {left == counted}"
        )
        print(f"append of 100 events at {arguments.rate:g}/s, before: {before}")
        print(f"append of 100 events at {arguments.rate:g}/s, during: {during}")
        if before.get("p99_ms") and during.get("p99_ms"):
            print(f"p99 during / before: {during['p99_ms'] / before['p99_ms']:.2f}")
    finally:
        async with await psycopg.AsyncConnection.connect(ADMIN_DSN, autocommit=True) as admin:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=6, help="the project's retention")
    parser.add_argument("--rate", type=float, default=20.0, help="appends a second")
    parser.add_argument("--seconds", type=float, default=5.0, help="the 'before' phase")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
