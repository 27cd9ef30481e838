"""The bare limits: what PostgreSQL and RabbitMQ do with the same rows and messages, directly.

Each figure here is what eventcore's own figure is divided by: the platform can at best approach
them, since it does their work plus its own.

- ``bare_insert``: psycopg, one connection, the events of ``batch`` 100-event requests per
  statement through ``INSERT .. SELECT FROM unnest(..) ON CONFLICT DO NOTHING RETURNING`` into
  ``eventcore.events`` itself (as its owner, so without row-level security), one transaction each;
  the count tables are not touched.
- ``bare_publish``: aiormq, one connection and one confirm-mode channel, the encoded 100-event
  batches published persistent and mandatory to a quorum queue of their own, ``window``
  publishes in flight, each awaited until the broker's confirm.
- ``bare_query``: the analytics SQL the store runs, sent by psycopg as the owner (and the
  persons' and the breakdown's reads, below).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiormq
import psycopg
from msgspec import Raw
from pamqp import commands as spec

from eventcore.adapters.postgres import _events as _pg_events
from eventcore.events import Event, IngestBatch, encode_batch

# What the bare insert sends: the store's own statement minus the count tables and the tenant.
_BARE_INSERT = """
INSERT INTO eventcore.events AS e
    (workspace_id, project_id, event_id, event_time, received_at, type, properties)
SELECT %(workspace_id)s::text, i.project_id, i.event_id, i.event_time, i.received_at, i.type,
       i.properties::json
FROM unnest(%(project_ids)b::text[], %(event_ids)b::text[], %(timestamps)b::timestamptz[],
            %(received)b::timestamptz[], %(types)b::text[], %(properties)b::text[])
     AS i (project_id, event_id, event_time, received_at, type, properties)
ON CONFLICT DO NOTHING
RETURNING e.project_id, e.event_time, e.type
"""


def request_events(run_id: str, request: int, per_request: int, now: datetime) -> list[Event]:
    """The events of one benchmark request, as bench/wrk/ingest.lua sends them."""
    return [
        Event(
            f"{run_id}-{request}-{n}",
            "signup" if n % 5 == 0 else "page_view",
            now,
            Raw(b'{"path":"/pricing/%d","plan":"pro"}' % n),
        )
        for n in range(1, per_request + 1)
    ]


async def bare_insert(
    dsn: str, *, rows: int, batch_requests: int = 20, per_request: int = 100
) -> dict[str, Any]:
    """Rows per second through one connection, ``batch_requests`` x ``per_request`` a statement."""
    workspace_id = f"bare-{secrets.token_hex(4)}"
    project_id = "bare-project"
    now = datetime.now(UTC)
    per_statement = batch_requests * per_request
    statements = max(1, rows // per_statement)
    parameters = []
    for s in range(statements):
        events = [
            event
            for r in range(batch_requests)
            for event in request_events(f"bare{s}", r, per_request, now)
        ]
        parameters.append(
            {
                "workspace_id": workspace_id,
                "project_ids": [project_id] * len(events),
                "event_ids": [e.id for e in events],
                "timestamps": [e.timestamp for e in events],
                "received": [now] * len(events),
                "types": [e.type for e in events],
                "properties": [str(e.properties, "utf-8") for e in events],
            }
        )
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        # Warm up: the plan and the connection's caches, as a long-running worker has them.
        warm = dict(parameters[0], event_ids=[f"warm-{i}" for i in range(per_statement)])
        await (await conn.execute(_BARE_INSERT, warm)).fetchall()
        inserted = 0
        began = time.perf_counter()
        for p in parameters:
            async with conn.transaction():
                cursor = await conn.execute(_BARE_INSERT, p)
                inserted += len(await cursor.fetchall())
        elapsed = time.perf_counter() - began
    return {
        "rows": inserted,
        "seconds": elapsed,
        "rows_per_second": inserted / elapsed,
        "rows_per_statement": per_statement,
        "ms_per_statement": elapsed / statements * 1000,
    }


async def bare_publish(
    amqp_url: str, *, messages: int, per_message: int = 100, window: int = 64
) -> dict[str, Any]:
    """Confirmed publishes per second of encoded ``per_message``-event batches."""
    queue = f"eventcore.bench.bare.{secrets.token_hex(4)}"
    now = datetime.now(UTC)
    bodies = [
        encode_batch(
            IngestBatch(
                "bare-ws", "bare-project", now, request_events("barepub", m, per_message, now)
            )
        )
        for m in range(min(messages, 500))
    ]
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.queue_declare(
            queue, durable=True, arguments={"x-queue-type": "quorum", "x-max-length": 10_000_000}
        )
        properties = spec.Basic.Properties(delivery_mode=2, content_type="application/json")
        gate = asyncio.Semaphore(window)

        async def publish(body: bytes) -> None:
            async with gate:
                await channel.basic_publish(
                    body, routing_key=queue, properties=properties, mandatory=True
                )

        await asyncio.gather(*(publish(b) for b in bodies[:50]))  # warm up
        began = time.perf_counter()
        await asyncio.gather(*(publish(bodies[m % len(bodies)]) for m in range(messages)))
        elapsed = time.perf_counter() - began
        await channel.queue_delete(queue)
    finally:
        await connection.close()
    return {
        "messages": messages,
        "seconds": elapsed,
        "messages_per_second": messages / elapsed,
        "events_per_second": messages * per_message / elapsed,
        "bytes_per_message": len(bodies[0]),
        "in_flight": window,
    }


_SERIES_HOUR = """
SELECT bucket, event_type, count FROM eventcore.counts_hour
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND bucket >= %(start)s AND bucket < %(end)s AND count <> 0
ORDER BY bucket, event_type
"""
_TYPE_TOTALS = """
SELECT event_type, sum(count)::bigint AS total FROM eventcore.counts_hour
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND bucket >= %(start)s AND bucket < %(end)s AND count <> 0
GROUP BY event_type
ORDER BY total DESC, event_type
"""


async def bare_query(
    dsn: str, tenants: list[tuple[str, str]], *, newest: datetime, queries: int
) -> dict[str, Any]:
    """Milliseconds per analytics query (30 days of hours; type totals), one connection."""
    end = newest.replace(minute=0) + timedelta(hours=1)
    results: dict[str, Any] = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for name, sql in (("counts", _SERIES_HOUR), ("event_types", _TYPE_TOTALS)):
            timings = []
            rows = 0
            for q in range(queries + 20):
                workspace_id, project_id = tenants[q % len(tenants)]
                shift = timedelta(hours=q % 24)
                parameters = {
                    "workspace_id": workspace_id,
                    "project_id": project_id,
                    "start": end - timedelta(days=30) - shift,
                    "end": end - shift,
                }
                began = time.perf_counter()
                cursor = await conn.execute(sql, parameters, binary=True)
                rows = len(await cursor.fetchall())
                if q >= 20:  # the first ones warm the plans and the caches
                    timings.append((time.perf_counter() - began) * 1000)
            results[name] = {"timings_ms": timings, "rows": rows}
    return results


# The persons' reads are the PostgreSQL store's own statements, imported rather than copied (the
# store is being extended; a copy would drift): a unique-users window's sketches of every type
# together (event_type ''), and a funnel's events.
_USER_WINDOW: str = _pg_events._USER_WINDOW
_PERSON_EVENTS: str = _pg_events._PERSON_EVENTS
# A breakdown's read: one dimension's daily tallies over the window (every type together),
# summed per value, with the listed values' sketches; and every tally, as it read them before
# (bench/persons_phases.py compares the two).
_DIMENSION_TOTALS: str = _pg_events._DIMENSION_TOTALS
_DIMENSION_TALLIES: str = _pg_events._DIMENSION_TALLIES
# The store's sessions are in UTC (psycopg then loads timestamptz without a zone conversion).
_AS_THE_STORE = "SET TIME ZONE 'UTC'"
# The exact answer a unique-users total estimates.
EXACT_USERS = """
SELECT count(DISTINCT coalesce(user_id, anonymous_id)) FROM eventcore.events
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND event_time >= %(start)s AND event_time < %(end)s
  AND (user_id IS NOT NULL OR anonymous_id IS NOT NULL)
"""


async def bare_users(
    dsn: str, tenants: list[tuple[str, str]], *, newest: datetime, queries: int
) -> dict[str, Any]:
    """Milliseconds per read of a 30-day hourly window's sketches (every type together: the
    whole days' sketches, the hours' kept estimates, the edges' hour sketches), one connection,
    as the store sends it; and the same read followed by the core's merge in this process
    (``eventcore.persons.window_user_series``, what the API does with the rows): the floor of
    an uncached unique-users answer before HTTP, the cache and JSON."""
    from eventcore.aggregation import Granularity
    from eventcore.persons import ALL_TYPES, whole_days, window_user_series

    end = newest.replace(minute=0) + timedelta(hours=1)
    sql_ms: list[float] = []
    merged_ms: list[float] = []
    rows = 0
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(_AS_THE_STORE)
        for q in range(queries + 20):
            workspace_id, project_id = tenants[q % len(tenants)]
            shift = timedelta(hours=q % 24)
            start, stop = end - timedelta(days=30) - shift, end - shift
            first_day, last_day = whole_days(start, stop)
            parameters = {
                "workspace_id": workspace_id,
                "project_id": project_id,
                "start": start,
                "end": stop,
                "first_day": first_day,
                "last_day": last_day,
                "hourly": True,
                "event_type": ALL_TYPES,
            }
            began = time.perf_counter()
            cursor = await conn.execute(_USER_WINDOW, parameters, binary=True)
            found = await cursor.fetchall()
            fetched = time.perf_counter()
            window_user_series(
                project_id,
                Granularity.HOUR,
                start,
                stop,
                [_pg_events._stored_sketch(*row) for row in found],
            )
            done = time.perf_counter()
            rows = len(found)
            if q >= 20:
                sql_ms.append((fetched - began) * 1000)
                merged_ms.append((done - began) * 1000)
    return {"sql_ms": sql_ms, "sql_and_merge_ms": merged_ms, "rows": rows}


async def bare_funnel(
    dsn: str,
    workspace_id: str,
    project_id: str,
    *,
    steps: list[str],
    newest: datetime,
    window: timedelta,
    queries: int,
) -> dict[str, Any]:
    """Milliseconds per read of a 30-day funnel's events (the steps' types, with a person,
    ordered by person and time), one connection, rows fetched as tuples: the store's query
    alone, without making PersonEvents or walking them.

    The statement is never prepared (psycopg prepares one once a connection has run it 5
    times): each execution gets the plan made for its own values, the index-only scan of
    ``events_persons_by_type``. Prepared, PostgreSQL soon keeps a generic plan, which it
    estimates at a few rows and makes a scan of ``events_newest`` visiting the heap, two to three
    times slower here; ``bench.persons_phases`` times both and explains both."""
    end = newest.replace(minute=0) + timedelta(hours=1)
    timings: list[float] = []
    rows = 0
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(_AS_THE_STORE)
        for q in range(queries + 3):
            shift = timedelta(hours=q)
            parameters = {
                "workspace_id": workspace_id,
                "project_id": project_id,
                "event_types": sorted(set(steps)),
                "start": end - timedelta(days=30) - shift,
                "end": end - shift + window + timedelta(microseconds=1),
                "limit": None,
            }
            began = time.perf_counter()
            # Never prepared: PostgreSQL plans it for these values each time (see the function).
            cursor = await conn.execute(_PERSON_EVENTS, parameters, binary=True, prepare=False)
            rows = len(await cursor.fetchall())
            if q >= 3:
                timings.append((time.perf_counter() - began) * 1000)
    return {"timings_ms": timings, "rows": rows}


async def bare_breakdown(
    dsn: str, tenants: list[tuple[str, str]], *, dimension: str, newest: datetime, queries: int
) -> dict[str, Any]:
    """Milliseconds per read of 30 whole days of ``dimension``'s tallies (every type together)
    as a breakdown reads them (the totals per value, the sketches of the default limit's listed
    values), one connection, as the store sends it (prepared after 5 executions, as psycopg
    does), the window a day earlier each time for a workspace, spread over ``tenants``."""
    from eventcore.defaults import DEFAULT_BREAKDOWN_LIMIT
    from eventcore.persons import ALL_TYPES

    end = newest.replace(minute=0, hour=0) + timedelta(days=1)
    timings: list[float] = []
    rows = 0
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(_AS_THE_STORE)
        for q in range(queries + 20):
            workspace_id, project_id = tenants[q % len(tenants)]
            stop = end - timedelta(days=1 + (q // len(tenants)) % 3)
            parameters = {
                "workspace_id": workspace_id,
                "project_id": project_id,
                "event_type": ALL_TYPES,
                "dimension": dimension,
                "start": stop - timedelta(days=30),
                "end": stop,
                "listed": DEFAULT_BREAKDOWN_LIMIT,
            }
            began = time.perf_counter()
            cursor = await conn.execute(_DIMENSION_TOTALS, parameters, binary=True)
            rows = len(await cursor.fetchall())
            if q >= 20:
                timings.append((time.perf_counter() - began) * 1000)
    return {"timings_ms": timings, "rows": rows}


async def exact_users(
    dsn: str, tenants: list[tuple[str, str]], start: datetime, end: datetime
) -> dict[str, int]:
    """count(DISTINCT coalesce(user_id, anonymous_id)) of each project's events in [start, end),
    from the raw events; by workspace id."""
    out: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET work_mem = '64MB'")
        for workspace_id, project_id in tenants:
            cursor = await conn.execute(
                EXACT_USERS,
                {
                    "workspace_id": workspace_id,
                    "project_id": project_id,
                    "start": start,
                    "end": end,
                },
            )
            row = await cursor.fetchone()
            out[workspace_id] = int(row[0]) if row else 0
    return out
