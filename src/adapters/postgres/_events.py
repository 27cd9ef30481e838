"""Events in PostgreSQL: the events table, the count tables kept beside it, and the queries.

Each statement is written once, from parts, and each result is static: one prepared plan per
combination of filters.
"""

# S608: SQL text here is assembled only from this module's constants; every value is a bound
# parameter.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from eventcore.adapters.postgres._database import Database
from eventcore.aggregation import CountPoint, EventTypeCount, StoredGrain
from eventcore.events import EventCursor, IngestBatch, StoredEvent
from eventcore.ports import AppendResult, Recount

_tracer = trace.get_tracer("eventcore.adapters.postgres")

# Writers to the count tables also take the workspace's counts lock: shared for appends (they
# never wait for each other), exclusive for a rebuild, which must not interleave with them.
_SET_TENANT_FOR_COUNTS = (
    "SELECT set_config('app.workspace_id', %s, true), pg_advisory_xact_lock_shared(%s, %s)"
)
_SET_TENANT_FOR_REBUILD = (
    "SELECT set_config('app.workspace_id', %s, true), pg_advisory_xact_lock(%s, %s)"
)
_COUNTS_LOCK_CLASS = 0x65630001


def _add_counts(source: str) -> str:
    """CTEs adding each row (project_id, event_time, type) of ``source`` to both count tables:
    the core's ``count_increments``, in SQL; the statement answers how many rows it counted.

    Buckets are cut in UTC whatever the session time zone; hours are summed from the minutes.
    Count rows are locked in primary-key order (see _APPEND on lock order).
    """
    return f"""
per_minute AS (
    SELECT project_id, date_trunc('minute', event_time, 'UTC') AS bucket, type, count(*) AS n
    FROM {source}
    GROUP BY 1, 2, 3
),
into_minutes AS (
    INSERT INTO eventcore.counts_minute AS c (workspace_id, project_id, bucket, event_type, count)
    SELECT %(workspace_id)s::text, project_id, bucket, type, n
    FROM per_minute
    ORDER BY project_id, bucket, type
    ON CONFLICT (workspace_id, project_id, bucket, event_type)
    DO UPDATE SET count = c.count + excluded.count
),
into_hours AS (
    INSERT INTO eventcore.counts_hour AS c (workspace_id, project_id, bucket, event_type, count)
    SELECT %(workspace_id)s::text, project_id, date_trunc('hour', bucket, 'UTC'), type, sum(n)
    FROM per_minute
    GROUP BY 2, 3, 4
    ORDER BY 2, 3, 4
    ON CONFLICT (workspace_id, project_id, bucket, event_type)
    DO UPDATE SET count = c.count + excluded.count
)
SELECT coalesce(sum(n), 0)::bigint FROM per_minute
"""


# One round trip stores a workspace's events and adds exactly the inserted ones to both count
# tables. Every row lock is taken in one global order, so concurrent writers cannot deadlock:
# events in primary-key order (after seq numbers are drawn in arrival order, which paging
# needs; the first of two equal ids is the one kept), then count rows in primary-key order;
# workspaces themselves go in sorted order. The arrays travel in binary: psycopg dumps them in
# C, the text form costs milliseconds.
_APPEND = f"""
WITH incoming AS MATERIALIZED (
    SELECT i.*, nextval('eventcore.event_seq') AS seq
    FROM unnest(%(project_ids)b::text[], %(event_ids)b::text[], %(timestamps)b::timestamptz[],
                %(received)b::timestamptz[], %(types)b::text[], %(properties)b::text[])
         WITH ORDINALITY
         AS i (project_id, event_id, event_time, received_at, type, properties, position)
    ORDER BY i.position
),
stored AS (
    INSERT INTO eventcore.events AS e
        (workspace_id, project_id, event_id, seq, event_time, received_at, type, properties)
    SELECT %(workspace_id)s::text, project_id, event_id, seq, event_time, received_at, type,
           properties::json
    FROM incoming
    ORDER BY project_id COLLATE "C", event_id COLLATE "C", position
    ON CONFLICT DO NOTHING
    RETURNING e.project_id, e.event_time, e.type
),
{_add_counts("stored")}"""

# A rebuild empties the workspace's count rows, then counts every stored event of the workspace
# again, as appends count the new ones.
_DELETE_COUNTS = tuple(
    f"DELETE FROM eventcore.counts_{grain.value} WHERE workspace_id = %s" for grain in StoredGrain
)
_RECOUNT = "WITH" + _add_counts("eventcore.events WHERE workspace_id = %(workspace_id)s")

_SERIES = {
    (grain, filtered): f"""
        SELECT bucket, event_type, count FROM eventcore.counts_{grain.value}
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND bucket >= %(start)s AND bucket < %(end)s AND count <> 0
          {"AND event_type = %(event_type)s" if filtered else ""}
        ORDER BY bucket, event_type
    """
    for grain in StoredGrain
    for filtered in (False, True)
}

_TYPE_TOTALS = """
SELECT event_type, sum(count)::bigint AS total FROM eventcore.counts_hour
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND bucket >= %(start)s AND bucket < %(end)s AND count <> 0
GROUP BY event_type
ORDER BY total DESC, event_type
"""

# Keyed by (type filter, cursor).
_LIST_EVENTS = {
    (filtered, paged): f"""
        SELECT event_id, type, event_time, received_at, properties, seq FROM eventcore.events
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          {"AND type = %(event_type)s" if filtered else ""}
          {"AND (event_time, seq) < (%(before_time)s, %(before_seq)s)" if paged else ""}
        ORDER BY event_time DESC, seq DESC LIMIT %(limit)s
    """
    for filtered in (False, True)
    for paged in (False, True)
}


def _counts_lock(workspace_id: str) -> int:
    """A stable 32-bit key for the workspace's counts lock (collisions only serialise more)."""
    digest = hashlib.blake2b(workspace_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _append_parameters(workspace_id: str, batches: list[IngestBatch]) -> dict[str, Any]:
    """One workspace's events as parallel arrays, in input order."""
    project_ids: list[str] = []
    event_ids: list[str] = []
    timestamps: list[datetime] = []
    received: list[datetime] = []
    types: list[str] = []
    properties: list[str] = []
    for batch in batches:
        events = batch.events
        project_ids += [batch.project_id] * len(events)
        received += [batch.received_at] * len(events)
        event_ids += [event.id for event in events]
        timestamps += [event.timestamp for event in events]
        types += [event.type for event in events]
        properties += [str(event.properties, "utf-8") for event in events]
    return {
        "workspace_id": workspace_id,
        "project_ids": project_ids,
        "event_ids": event_ids,
        "timestamps": timestamps,
        "received": received,
        "types": types,
        "properties": properties,
    }


class Events(Database):
    """The EventStore half of the PostgreSQL store."""

    _before_commit: Callable[[], None] | None

    async def append(self, batches: Sequence[IngestBatch]) -> AppendResult:
        # One CLIENT span per transaction: the worker's trace shows what the commit cost.
        with _tracer.start_as_current_span(
            "postgresql append",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "postgresql", "db.operation.name": "append"},
        ) as span:
            result = await self._append(batches)
            span.set_attribute("eventcore.inserted", result.inserted)
            span.set_attribute("eventcore.duplicates", result.duplicates)
            return result

    async def _append(self, batches: Sequence[IngestBatch]) -> AppendResult:
        by_workspace: dict[str, list[IngestBatch]] = {}
        total = 0
        for batch in batches:
            if batch.events:
                by_workspace.setdefault(batch.workspace_id, []).append(batch)
                total += len(batch.events)
        if not total:
            return AppendResult(0, 0)
        inserted = 0
        async with self._connection() as conn, conn.transaction():
            # Workspaces in one order for every writer: see _APPEND on lock order.
            for workspace_id in sorted(by_workspace):
                await conn.execute(
                    _SET_TENANT_FOR_COUNTS,
                    (workspace_id, _COUNTS_LOCK_CLASS, _counts_lock(workspace_id)),
                )
                cursor = await conn.execute(
                    _APPEND, _append_parameters(workspace_id, by_workspace[workspace_id])
                )
                row = await cursor.fetchone()
                assert row is not None
                inserted += row[0]
            if self._before_commit is not None:
                self._before_commit()
        return AppendResult(inserted, total - inserted)

    async def count_series(
        self,
        workspace_id: str,
        project_id: str,
        grain: StoredGrain,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[CountPoint]:
        parameters = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "start": start,
            "end": end,
            "event_type": event_type,
        }
        query = _SERIES[(grain, event_type is not None)]
        return await self._query(
            CountPoint, query, parameters, workspace_id=workspace_id, binary=True
        )

    async def event_type_totals(
        self, workspace_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[EventTypeCount]:
        parameters = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "start": start,
            "end": end,
        }
        return await self._query(
            EventTypeCount, _TYPE_TOTALS, parameters, workspace_id=workspace_id, binary=True
        )

    async def list_events(
        self,
        workspace_id: str,
        project_id: str,
        *,
        limit: int,
        event_type: str | None = None,
        before: EventCursor | None = None,
    ) -> list[StoredEvent]:
        parameters: dict[str, Any] = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "limit": max(limit, 0),
            "event_type": event_type,
        }
        if before is not None:
            parameters["before_time"] = before.timestamp
            parameters["before_seq"] = before.seq
        query = _LIST_EVENTS[(event_type is not None, before is not None)]
        return await self._query(
            StoredEvent, query, parameters, workspace_id=workspace_id, binary=True
        )

    async def rebuild_counts(self, workspace_id: str | None = None) -> Recount:
        if workspace_id is not None:
            workspace_ids = [workspace_id]
        else:
            found = await self._query(
                str, "SELECT eventcore.workspaces_with_events()", (), workspace_id=None
            )
            workspace_ids = sorted(found)
        counted = 0
        touched: set[str] = set()
        for each in workspace_ids:
            events, replaced = await self._rebuild_workspace(each)
            counted += events
            if events or replaced:
                touched.add(each)
        return Recount(counted, frozenset(touched))

    async def _rebuild_workspace(self, workspace_id: str) -> tuple[int, int]:
        """Recount one workspace in one transaction: (events counted, count rows replaced)."""
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                _SET_TENANT_FOR_REBUILD,
                (workspace_id, _COUNTS_LOCK_CLASS, _counts_lock(workspace_id)),
            )
            replaced = 0
            for statement in _DELETE_COUNTS:
                replaced += (await conn.execute(statement, (workspace_id,))).rowcount
            cursor = await conn.execute(_RECOUNT, {"workspace_id": workspace_id})
            row = await cursor.fetchone()
        assert row is not None
        counted: int = row[0]
        return counted, replaced
