"""Where an uncached unique-users answer and a funnel spend their time, phase by phase.

Against a data set an earlier ``python -m bench.run --keep-database`` left, with the real
PostgreSQL store (its pool, its tenant transaction with row-level security, its statements) and
the core's functions, timed with ``time.perf_counter`` around each phase, in this one process
(no HTTP, no cache: what the API does under them):

- unique users, 30 days hourly, every type together: the store's read of the window (the hours'
  kept estimates, the whole days' sketches and the edges' hour sketches), ``window_user_series``
  (split into the per-bucket estimates and the window's total), the JSON;
- the funnel (page_view -> signup -> purchase, 30 days, a week's window) over the largest
  workspace: the store's query alone (psycopg, rows as tuples), the same through the store (rows
  made into PersonEvents), ``funnel_counts``, the JSON; the query prepared (psycopg prepares
  a statement once a connection has run it 5 times, and PostgreSQL may then keep a generic
  plan) and never prepared; and EXPLAIN (ANALYZE, BUFFERS) of it with either plan.

    python -m bench.persons_phases postgresql://postgres@127.0.0.1/eventcore_bench_<hex>
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from datetime import timedelta
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from bench.bare import _PERSON_EVENTS
from bench.loader import tenants_of
from bench.loadgen import percentile
from eventcore.adapters.postgres import PostgresStore
from eventcore.aggregation import Granularity
from eventcore.funnels import PersonEvent, StepRule, funnel_counts
from eventcore.persons import estimate, window_user_series

STEPS = ["page_view", "signup", "purchase"]


def _summary(name: str, values: list[float]) -> str:
    return (
        f"| {name} | {percentile(values, 0.5):,.2f} | {percentile(values, 0.99):,.2f} |"
        f" {sum(values) / len(values):,.2f} |"
    )


# The types of the funnel statement's parameters, for a PREPARE of it.
_TYPES = {
    "workspace_id": "text",
    "project_id": "text",
    "event_types": "text[]",
    "start": "timestamptz",
    "end": "timestamptz",
    "limit": "bigint",
}


async def _explain(
    conn: psycopg.AsyncConnection[Any], parameters: dict[str, Any], *, generic: bool
) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the funnel statement: planned for these values (custom),
    or the generic plan a prepared statement may keep (PREPARE, plan_cache_mode)."""
    if not generic:
        cursor = await conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + _PERSON_EVENTS, parameters, prepare=False
        )
        return [line for (line,) in await cursor.fetchall()]
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", _PERSON_EVENTS)))
    text = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", _PERSON_EVENTS)
    kinds = ", ".join(_TYPES[name] for name in names)
    await conn.execute(f"PREPARE bench_funnel ({kinds}) AS {text}")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        cursor = await conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_funnel ({})").format(
                sql.SQL(", ").join(sql.Literal(parameters[name]) for name in names)
            )
        )
        return [line for (line,) in await cursor.fetchall()]
    finally:
        await conn.execute("RESET plan_cache_mode")
        await conn.execute("DEALLOCATE bench_funnel")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dsn", help="owner's URL of a kept bench database")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--window-days", type=float, default=7.0)
    args = parser.parse_args()
    loaded = await tenants_of(args.dsn)
    end = loaded.newest.replace(minute=0) + timedelta(hours=1)
    window = timedelta(days=args.window_days)
    async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT workspace_id FROM eventcore.counts_hour WHERE workspace_id = ANY(%s)"
            " GROUP BY workspace_id ORDER BY sum(count) DESC, workspace_id LIMIT 1",
            ([t.workspace_id for t in loaded.tenants],),
        )
        row = await cursor.fetchone()
    assert row is not None
    largest = next(t for t in loaded.tenants if t.workspace_id == row[0])
    store = await PostgresStore.open(args.dsn, min_size=1, max_size=2)
    phases: dict[str, list[float]] = {}

    def note(name: str, began: float) -> float:
        now = time.perf_counter()
        phases.setdefault(name, []).append((now - began) * 1000)
        return now

    try:
        # unique users, over every workspace in turn
        for q in range(args.repeat * 5 + 5):
            tenant = loaded.tenants[q % len(loaded.tenants)]
            stop = end - timedelta(hours=q % 24)
            start = stop - timedelta(days=30)
            began = time.perf_counter()
            rows = await store.user_window(
                tenant.workspace_id, tenant.project_id, start, stop, Granularity.HOUR
            )
            mark = note("users: store.user_window (720 hours' estimates, 29-30 days)", began)
            for row in rows:
                if row.granularity is Granularity.HOUR:
                    row.counted()
            mark = note("users: 720 per-bucket estimates", mark)
            estimate(
                row.sketch
                for row in rows
                if row.sketch is not None
                and (row.granularity is Granularity.DAY or row.estimate is None)
            )
            mark = note("users: the window's total (union of days and edge hours)", mark)
            series = window_user_series(tenant.project_id, Granularity.HOUR, start, stop, rows)
            mark = note("users: window_user_series (both, as the use case calls it)", mark)
            msgspec.json.encode(series)
            note("users: JSON", mark)
            if q < 5:  # warm-up
                for values in phases.values():
                    values.clear()
        users = {k: v for k, v in phases.items() if k.startswith("users")}
        phases = {}
        steps = sorted(set(STEPS))
        rules = [StepRule(step) for step in STEPS]
        sizes: list[int] = []
        async with (
            await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as conn,
            await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as prepared,
        ):
            await conn.execute("SET TIME ZONE 'UTC'")  # as the store's sessions
            await prepared.execute("SET TIME ZONE 'UTC'")
            for q in range(args.repeat + 2):
                stop = end - timedelta(hours=q)
                start = stop - timedelta(days=30)
                parameters: dict[str, Any] = {
                    "workspace_id": largest.workspace_id,
                    "project_id": largest.project_id,
                    "event_types": steps,
                    "start": start,
                    "end": stop + window + timedelta(microseconds=1),
                    "limit": None,
                }
                began = time.perf_counter()
                cursor = await conn.execute(_PERSON_EVENTS, parameters, binary=True, prepare=False)
                rows = await cursor.fetchall()
                mark = note("funnel: the query alone, never prepared (as owner)", began)
                [PersonEvent(*r) for r in rows]
                mark = note("funnel: PersonEvent per row", mark)
                began = time.perf_counter()
                cursor = await prepared.execute(_PERSON_EVENTS, parameters, binary=True)
                await cursor.fetchall()
                note("funnel: the query alone, prepared (psycopg's default, as owner)", began)
                began = time.perf_counter()
                events = await store.person_events(
                    largest.workspace_id,
                    largest.project_id,
                    steps,
                    parameters["start"],
                    parameters["end"],
                )
                mark = note("funnel: store.person_events (query + PersonEvents)", began)
                result = funnel_counts(events, rules, window, start, stop)
                mark = note("funnel: funnel_counts walk", mark)
                msgspec.json.encode(result)
                note("funnel: JSON", mark)
                sizes.append(len(events))
                if q < 2:
                    for values in phases.values():
                        values.clear()
            plans = {"custom": await _explain(conn, parameters, generic=False)}
            plans["generic"] = await _explain(conn, parameters, generic=True)
        print(
            f"unique users: {len(loaded.tenants)} workspaces, 30 days, hourly; funnel: "
            f"{largest.workspace_id}, {sizes[-1]:,} events read a request"
        )
        print()
        print("| phase | P50 ms | P99 ms | mean ms |")
        print("| --- | ---: | ---: | ---: |")
        for name, values in (users | phases).items():
            print(_summary(name, values))
        print()
        print(f"funnel answer: {msgspec.json.encode(result).decode()}")
        print()
        for mode, plan in plans.items():
            print(f"EXPLAIN (ANALYZE, BUFFERS) of the funnel's query, {mode} plan:")
            print("\n".join(plan))
            print()
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
