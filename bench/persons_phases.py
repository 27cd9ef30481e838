"""Where an uncached unique-users answer, a funnel and a breakdown spend their time, by phase.

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
  plan) and never prepared; and EXPLAIN (ANALYZE, BUFFERS) of it with either plan;
- the breakdown by ``context.page.path`` (30 whole days, every type together, default limit),
  spread over every workspace, each workspace's window a day earlier each time (as bench.run
  asks them): the tallies' statement alone (psycopg, as owner), an empty statement in the
  store's tenant transaction (its round trips), the store's read, the core's ranking and its
  merge of the listed values' sketches, the JSON, and the whole read as the use case makes it.

    python -m bench.persons_phases postgresql://postgres@127.0.0.1/eventcore_bench_<hex>
    python -m bench.persons_phases <dsn> --only breakdown --repeat 100
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

from bench.bare import _DIMENSION_TALLIES, _DIMENSION_TOTALS, _PERSON_EVENTS
from bench.loader import Loaded, tenants_of
from bench.loadgen import percentile
from eventcore.adapters.postgres import PostgresStore
from eventcore.aggregation import Granularity
from eventcore.defaults import DEFAULT_BREAKDOWN_LIMIT
from eventcore.dimensions import Kind, breakdown_of_tallies, breakdown_of_totals
from eventcore.funnels import PersonEvent, StepRule, funnel_counts
from eventcore.persons import ALL_TYPES, estimate, window_user_series

STEPS = ["page_view", "signup", "purchase"]
# The dimension bench.run breaks down by (50 page paths, skewed).
BREAKDOWN_DIMENSION = "context.page.path"


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


async def breakdown_phases(
    store: PostgresStore, dsn: str, loaded: Loaded, windows: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], str]:
    """The phases of ``windows`` uncached breakdowns (after 10 of warm-up), read as before
    (every tally, ``breakdown_of_tallies``) and as the use case reads them (``dimension_totals``,
    ``breakdown_of_totals``) one after the other in each window, the API process's CPU milliseconds of each, and the last answer's JSON;
    the two answers of each window must be equal."""
    phases: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    clock = [time.process_time()]

    def note(name: str, began: float) -> float:
        now, used = time.perf_counter(), time.process_time()
        phases.setdefault(name, []).append((now - began) * 1000)
        cpu.setdefault(name, []).append((used - clock[0]) * 1000)
        clock[0] = used
        return now

    def begin() -> float:
        clock[0] = time.process_time()
        return time.perf_counter()

    day_end = loaded.newest.replace(hour=0, minute=0) + timedelta(days=1)
    tenants = loaded.tenants
    limit = DEFAULT_BREAKDOWN_LIMIT
    answer = b""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET TIME ZONE 'UTC'")  # as the store's sessions
        for q in range(windows + 10):
            tenant = tenants[q % len(tenants)]
            stop = day_end - timedelta(days=(q // len(tenants)) % 3)
            start = stop - timedelta(days=30)
            ws, prj = tenant.workspace_id, tenant.project_id
            parameters = {
                "workspace_id": ws,
                "project_id": prj,
                "event_type": ALL_TYPES,
                "dimension": BREAKDOWN_DIMENSION,
                "start": start,
                "end": stop,
                "listed": limit,
            }
            began = begin()
            await store._query(int, "SELECT 1", {}, workspace_id=ws)
            note("SELECT 1 in the store's tenant transaction", began)
            # Before: every tally of the window, with its sketch.
            began = begin()
            cursor = await conn.execute(_DIMENSION_TALLIES, parameters, binary=True)
            await cursor.fetchall()
            note("before: the tallies' statement alone, as owner (~1,500 rows)", began)
            began = begin()
            tallies = await store.dimension_tallies(ws, prj, BREAKDOWN_DIMENSION, start, stop)
            mark = note("before: store.dimension_tallies (every tally, its sketch)", began)
            counts: dict[tuple[Kind, str], int] = {}
            sketches: dict[tuple[Kind, str], list[bytes]] = {}
            for tally in tallies:
                key = (tally.kind, tally.value)
                counts[key] = counts.get(key, 0) + tally.count
                if tally.sketch is not None:
                    sketches.setdefault(key, []).append(tally.sketch)
            counts.pop((Kind.OTHER, ""), 0)
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
            mark = note("before: sum and rank the tallies in process", mark)
            for key, _ in ranked[:limit]:
                estimate(sketches.get(key, []))
            note("before: merge the listed values' daily sketches (estimate)", mark)
            began = begin()
            tallies = await store.dimension_tallies(ws, prj, BREAKDOWN_DIMENSION, start, stop)
            before = breakdown_of_tallies(prj, BREAKDOWN_DIMENSION, start, stop, tallies, limit)
            msgspec.json.encode(before)
            note("before: the whole read (store, breakdown_of_tallies, JSON)", began)
            # Now: the totals per value, the listed values' sketches only.
            began = begin()
            cursor = await conn.execute(_DIMENSION_TOTALS, parameters, binary=True)
            await cursor.fetchall()
            note("now: the totals' statement alone, as owner (~60 rows, 300 sketches)", began)
            began = begin()
            totals = await store.dimension_totals(
                ws, prj, BREAKDOWN_DIMENSION, start, stop, listed=limit
            )
            mark = note("now: store.dimension_totals", began)
            result = breakdown_of_totals(prj, BREAKDOWN_DIMENSION, start, stop, totals, limit)
            mark = note("now: breakdown_of_totals (rank, merge the listed values' sketches)", mark)
            answer = msgspec.json.encode(result)
            note("now: JSON", mark)
            began = begin()
            totals = await store.dimension_totals(
                ws, prj, BREAKDOWN_DIMENSION, start, stop, listed=limit
            )
            result = breakdown_of_totals(prj, BREAKDOWN_DIMENSION, start, stop, totals, limit)
            msgspec.json.encode(result)
            note("now: the whole read (store, breakdown_of_totals, JSON)", began)
            if result != before:
                raise AssertionError(f"the two reads differ: {before} != {result}")
            if q < 10:  # warm-up
                for values in (*phases.values(), *cpu.values()):
                    values.clear()
    return phases, cpu, answer.decode()


async def _print_breakdown(store: PostgresStore, dsn: str, loaded: Loaded, windows: int) -> None:
    phases, cpu, answer = await breakdown_phases(store, dsn, loaded, windows)
    print(
        f"breakdown by {BREAKDOWN_DIMENSION}: {len(loaded.tenants)} workspaces, 30 whole days,"
        f" every type, limit {DEFAULT_BREAKDOWN_LIMIT}; {windows} windows"
    )
    print()
    print("| phase | P50 ms | P99 ms | mean ms | mean CPU ms (this process) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in phases.items():
        print(f"{_summary(name, values)} {sum(cpu[name]) / len(cpu[name]):,.2f} |")
    print()
    print(f"breakdown answer: {answer}")
    print()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dsn", help="owner's URL of a kept bench database")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--window-days", type=float, default=7.0)
    parser.add_argument(
        "--breakdown-only",
        action="store_true",
        help="only the breakdown's phases (over --repeat x 5 windows)",
    )
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
    if args.breakdown_only:
        try:
            await _print_breakdown(store, args.dsn, loaded, args.repeat * 5)
        finally:
            await store.close()
        return
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
        await _print_breakdown(store, args.dsn, loaded, args.repeat * 5)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
