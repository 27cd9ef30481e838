"""Events in SQLite: the events table, the count tables kept beside it, and the queries on both.

Each statement is written once, from parts, and is static: one cached statement (and plan) for
each combination of filters.
"""

# S608: SQL text here is assembled only from this module's constants (table and column lists);
# every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from msgspec import Raw

from eventcore.adapters.sqlite._codec import MICROSECOND, micros, moment
from eventcore.adapters.sqlite._database import Database
from eventcore.aggregation import CountPoint, EventTypeCount, StoredGrain
from eventcore.events import EventCursor, IngestBatch, StoredEvent
from eventcore.ports import AppendResult, Recount

_COUNT_TABLES = {grain: f"counts_{grain.value}" for grain in StoredGrain}


def _add_counts_sql(grain: StoredGrain, where: str, source: str = "events") -> str:
    """Add one to ``grain``'s count of (tenant, bucket, type) for each event of ``source``
    matching ``where``: the core's ``count_increments``, in SQL."""
    width = grain.granularity.step // MICROSECOND
    # The modulo is written so that buckets before 1970 round down too (SQLite's % truncates).
    return (
        f"INSERT INTO {_COUNT_TABLES[grain]} (workspace_id, project_id, bucket, event_type, count)"
        f" SELECT workspace_id, project_id, ts - (ts % {width} + {width}) % {width},"
        f" event_type, count(*) FROM {source} WHERE {where} GROUP BY 1, 2, 3, 4"
        " ON CONFLICT (workspace_id, project_id, bucket, event_type)"
        " DO UPDATE SET count = count + excluded.count"
    )


_INSERT_EVENT = (
    "INSERT INTO events (workspace_id, project_id, event_id, event_type, ts, received_at, properties)"
    " VALUES (?, ?, ?, ?, ?, ?, CAST(? AS TEXT))"
    " ON CONFLICT (workspace_id, project_id, event_id) DO NOTHING"
)
# Rows with seq above the highest seq before the insert are exactly the rows it inserted: the
# writer holds the write lock for the whole transaction and AUTOINCREMENT never reuses a seq.
# NOT INDEXED keeps the planner on the rowid range; left alone it scans a whole covering index
# to save the GROUP BY a sort, which makes every append cost as much as the table is large.
_COUNT_NEW_EVENTS = tuple(
    _add_counts_sql(grain, "seq > ?", "events NOT INDEXED") for grain in StoredGrain
)
# A rebuild covers every workspace or one: which rows it deletes, recounts and reports.
_REBUILD_SCOPE = {False: "true", True: "workspace_id = ?"}
_RECOUNT = {
    one: tuple(_add_counts_sql(grain, where) for grain in StoredGrain)
    for one, where in _REBUILD_SCOPE.items()
}
_DELETE_COUNTS = {
    one: tuple(f"DELETE FROM {table} WHERE {where}" for table in _COUNT_TABLES.values())
    for one, where in _REBUILD_SCOPE.items()
}
_COUNTED_WORKSPACES = {
    one: " UNION ".join(
        f"SELECT workspace_id FROM {table} WHERE {where}" for table in _COUNT_TABLES.values()
    )
    for one, where in _REBUILD_SCOPE.items()
}
_EVENTS_IN_SCOPE = {
    one: f"SELECT count(*) FROM events WHERE {where}" for one, where in _REBUILD_SCOPE.items()
}

_SERIES = {
    (grain, filtered): (
        f"SELECT bucket, event_type, count FROM {table}"
        " WHERE workspace_id = ? AND project_id = ? AND bucket >= ? AND bucket < ?"
        + (" AND event_type = ?" if filtered else "")
        + " AND count > 0 ORDER BY bucket, event_type"
    )
    for grain, table in _COUNT_TABLES.items()
    for filtered in (False, True)
}
_TYPE_TOTALS = (
    f"SELECT event_type, sum(count) AS total FROM {_COUNT_TABLES[StoredGrain.HOUR]}"
    " WHERE workspace_id = ? AND project_id = ? AND bucket >= ? AND bucket < ?"
    " GROUP BY event_type HAVING total > 0 ORDER BY total DESC, event_type"
)
_EVENT_COLUMNS = "event_id, event_type, ts, received_at, CAST(properties AS BLOB), seq"
# Keyed by (type filter, cursor). The cursor is a row value comparison: SQLite turns it into a
# range scan of the index.
_LIST_EVENTS = {
    (filtered, paged): (
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE workspace_id = ? AND project_id = ?"
        + (" AND event_type = ?" if filtered else "")
        + (" AND (ts, seq) < (?, ?)" if paged else "")
        + " ORDER BY ts DESC, seq DESC LIMIT ?"
    )
    for filtered in (False, True)
    for paged in (False, True)
}


def _stored_event(row: Any) -> StoredEvent:
    return StoredEvent(row[0], row[1], moment(row[2]), moment(row[3]), Raw(row[4]), row[5])


def _count_point(row: Any) -> CountPoint:
    return CountPoint(moment(row[0]), row[1], row[2])


def _event_type_count(row: Any) -> EventTypeCount:
    return EventTypeCount(row[0], row[1])


def _event_rows(batches: Sequence[IngestBatch]) -> Iterator[tuple[Any, ...]]:
    for batch in batches:
        workspace_id, project_id = batch.workspace_id, batch.project_id
        received_at = micros(batch.received_at)
        for event in batch.events:
            # Raw exposes the buffer protocol, so the JSON text is bound without a copy.
            yield (
                workspace_id,
                project_id,
                event.id,
                event.type,
                micros(event.timestamp),
                received_at,
                event.properties,
            )


# The writers run in the writer thread, each inside the transaction Database._write opened.


def _append(connection: sqlite3.Connection, batches: Sequence[IngestBatch]) -> AppendResult:
    (last_seq,) = connection.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    # executemany sums the rows each execution changed: a conflict changes none.
    inserted = connection.executemany(_INSERT_EVENT, _event_rows(batches)).rowcount
    if inserted:
        for statement in _COUNT_NEW_EVENTS:
            connection.execute(statement, (last_seq,))
    return AppendResult(inserted, sum(len(batch.events) for batch in batches) - inserted)


def _rebuild_counts(connection: sqlite3.Connection, workspace_id: str | None) -> Recount:
    one = workspace_id is not None
    scope: tuple[str, ...] = () if workspace_id is None else (workspace_id,)

    def counted_workspaces() -> set[str]:
        rows = connection.execute(_COUNTED_WORKSPACES[one], scope * len(_COUNT_TABLES))
        return {row[0] for row in rows}

    # Those whose rows are replaced, and (after) those whose events were counted.
    touched = counted_workspaces()
    for statement in _DELETE_COUNTS[one]:
        connection.execute(statement, scope)
    for statement in _RECOUNT[one]:
        connection.execute(statement, scope)
    (counted,) = connection.execute(_EVENTS_IN_SCOPE[one], scope).fetchone()
    return Recount(int(counted), frozenset(touched | counted_workspaces()))


class Events(Database):
    """The EventStore half of the SQLite store."""

    async def append(self, batches: Sequence[IngestBatch]) -> AppendResult:
        if not any(batch.events for batch in batches):
            return AppendResult(0, 0)
        return await self._write(_append, batches)

    async def count_series(
        self,
        workspace_id: str,
        project_id: str,
        grain: StoredGrain,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[CountPoint]:
        parameters: tuple[Any, ...] = (workspace_id, project_id, micros(start), micros(end))
        if event_type is not None:
            parameters += (event_type,)
        return await self._query(
            _count_point, _SERIES[(grain, event_type is not None)], *parameters
        )

    async def event_type_totals(
        self, workspace_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[EventTypeCount]:
        return await self._query(
            _event_type_count, _TYPE_TOTALS, workspace_id, project_id, micros(start), micros(end)
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
        parameters: list[Any] = [workspace_id, project_id]
        if event_type is not None:
            parameters.append(event_type)
        if before is not None:
            parameters += (micros(before.timestamp), before.seq)
        parameters.append(max(limit, 0))
        sql = _LIST_EVENTS[(event_type is not None, before is not None)]
        return await self._query(_stored_event, sql, *parameters)

    async def rebuild_counts(self, workspace_id: str | None = None) -> Recount:
        return await self._write(_rebuild_counts, workspace_id)
