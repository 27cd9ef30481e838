"""Events in SQLite: the events table, the count tables, the persons' sketches and the
dimension tallies kept beside it, and the queries on them.

Each statement is written once, from parts, and is static: one cached statement (and plan) for
each combination of filters.
"""

# S608: SQL text here is assembled only from this module's constants (table and column lists);
# every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby, islice
from typing import Any

import msgspec
from msgspec import Raw

from eventcore.adapters.sqlite._codec import MICROSECOND, micros, moment, strings
from eventcore.adapters.sqlite._database import Database
from eventcore.adapters.sqlite._deletions import DELETION_COLUMNS, KEEP_DELETED, deletion_of
from eventcore.aggregation import CountPoint, EventTypeCount, Granularity, StoredGrain, bucket_start
from eventcore.deletions import EventSelector, withheld
from eventcore.dimensions import (
    DimensionGroup,
    DimensionKey,
    DimensionTally,
    FilteredEvent,
    Kind,
    Tally,
    TotalRow,
    ValueReader,
    ValueTotal,
    Where,
    add_value_persons,
    bounded,
    dimension_increments,
    encode_values,
    totals_of_rows,
    values_of,
)
from eventcore.events import EARLIEST, LATEST, Event, EventCursor, IngestBatch, StoredEvent
from eventcore.funnels import PersonEvent
from eventcore.idempotency import IdempotencyKey
from eventcore.persons import (
    ALL_TYPES,
    SketchKey,
    StoredSketch,
    add_persons,
    day_sketch_of_hours,
    person_increments,
    sketch_of,
    whole_days,
)
from eventcore.ports import AppendResult, Recount
from eventcore.retention import expired
from eventcore.suppressions import is_suppressed

_COUNT_TABLES = {grain: f"counts_{grain.value}" for grain in StoredGrain}
# Each (workspace, project)'s declared dimension paths; a project without any is left out.
Declared = dict[tuple[str, str], tuple[str, ...]]

# A reader per tuple of declared paths (making one makes a msgspec Struct type).
_reader_for = functools.lru_cache(maxsize=1024)(ValueReader)


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


# A stored id, or a deleted one (deleted_events), is a duplicate: nothing is inserted.
_INSERT_EVENT = (
    "INSERT INTO events (workspace_id, project_id, event_id, event_type, ts, received_at,"
    " properties, user_id, anonymous_id, dim_values)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6, CAST(?7 AS TEXT), ?8, ?9, ?10"
    " WHERE NOT EXISTS (SELECT 1 FROM deleted_events"
    " WHERE workspace_id = ?1 AND project_id = ?2 AND event_id = ?3)"
    " ON CONFLICT (workspace_id, project_id, event_id) DO NOTHING"
)
# The dimensions declared by the appended batches' projects, read in the append's transaction:
# every append committed after a declaration counts it. The (workspace, project) pairs are bound
# as one JSON array (one statement however many projects), each a lookup of the projects' key.
_DECLARED = (
    "SELECT p.workspace_id, p.id, p.dimensions FROM json_each(?) AS j CROSS JOIN projects AS p"
    " ON p.workspace_id = json_extract(j.value, '$[0]') AND p.id = json_extract(j.value, '$[1]')"
    " WHERE p.dimensions <> '[]'"
)
# The retention of the appended batches' projects that have one, read in the append's
# transaction as the dimensions are.
_RETAINING = (
    "SELECT p.workspace_id, p.id, p.retention_days FROM json_each(?) AS j CROSS JOIN projects"
    " AS p ON p.workspace_id = json_extract(j.value, '$[0]') AND p.id = json_extract(j.value,"
    " '$[1]') WHERE p.retention_days IS NOT NULL"
)
_HAS_PERSON = "(user_id IS NOT NULL OR anonymous_id IS NOT NULL)"
# Rows with seq above the highest seq before the insert are exactly the rows it inserted: the
# writer holds the write lock for the whole transaction and AUTOINCREMENT never reuses a seq.
# NOT INDEXED keeps the planner on the rowid range; left alone it scans a whole covering index
# to save the GROUP BY a sort, which makes every append cost as much as the table is large.
_COUNT_NEW_EVENTS = tuple(
    _add_counts_sql(grain, "seq > ?", "events NOT INDEXED") for grain in StoredGrain
)
# The inserted events that have a person, in insertion order (the same rowid range).
_NEW_PERSON_EVENTS = (
    "SELECT workspace_id, project_id, event_id FROM events NOT INDEXED"
    f" WHERE seq > ? AND {_HAS_PERSON} ORDER BY seq"
)
# The persons' sketches of hours and of days: each in its table, keyed alike.
_SKETCH_TABLES = {Granularity.HOUR: ("users_hour", "bucket"), Granularity.DAY: ("users_day", "day")}
_GET_SKETCH = {
    grain: f"SELECT sketch FROM {table} WHERE workspace_id = ? AND project_id = ?"
    f" AND event_type = ? AND {column} = ?"
    for grain, (table, column) in _SKETCH_TABLES.items()
}
_PUT_SKETCH = {
    grain: f"INSERT INTO {table} (workspace_id, project_id, event_type, {column}, sketch)"
    " VALUES (?, ?, ?, ?, ?)"
    for grain, (table, column) in _SKETCH_TABLES.items()
}
_UPSERT_SKETCH = {
    grain: _PUT_SKETCH[grain] + f" ON CONFLICT (workspace_id, project_id, event_type, {column})"
    " DO UPDATE SET sketch = excluded.sketch"
    for grain, (_, column) in _SKETCH_TABLES.items()
}
# The sketches a day's hours hold: what a new day sketch starts from (persons.day_sketch_of_hours).
_DAY_HOURS = (
    "SELECT sketch FROM users_hour WHERE workspace_id = ? AND project_id = ? AND event_type = ?"
    " AND bucket >= ? AND bucket < ?"
)
# The inserted events that have declared values, in insertion order.
_NEW_DIMENSION_EVENTS = (
    "SELECT workspace_id, project_id, event_id FROM events NOT INDEXED"
    " WHERE seq > ? AND dim_values IS NOT NULL ORDER BY seq"
)
_TALLY_COLUMNS = "workspace_id, project_id, event_type, dimension, day, kind, value"
_TALLY_KEY = " AND ".join(f"{column} = ?" for column in _TALLY_COLUMNS.split(", "))
# The values a group (DimensionGroup) keeps: one range of the key, never its sketches.
_KNOWN_VALUES = (
    "SELECT value FROM dims_day WHERE workspace_id = ? AND project_id = ? AND event_type = ?"
    f" AND dimension = ? AND day = ? AND kind = {Kind.VALUE:d}"
)
_GET_TALLY_SKETCH = f"SELECT sketch FROM dims_day WHERE {_TALLY_KEY}"
_PUT_TALLY = (
    f"INSERT INTO dims_day ({_TALLY_COLUMNS}, count, sketch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A tally without new persons keeps its sketch; one with them is given its merged sketch.
_UPSERT_TALLY = (
    _PUT_TALLY + f" ON CONFLICT ({_TALLY_COLUMNS}) DO UPDATE"
    " SET count = count + excluded.count, sketch = coalesce(excluded.sketch, sketch)"
)
# Every table a rebuild replaces the rows of.
_DERIVED_TABLES = (*_COUNT_TABLES.values(), "users_hour", "users_day", "dims_day")
# A rebuild covers every workspace or one: which rows it deletes, recounts and reports.
_REBUILD_SCOPE = {False: "true", True: "workspace_id = ?"}
_RECOUNT = {
    one: tuple(_add_counts_sql(grain, where) for grain in StoredGrain)
    for one, where in _REBUILD_SCOPE.items()
}
_DELETE_COUNTS = {
    one: tuple(f"DELETE FROM {table} WHERE {where}" for table in _DERIVED_TABLES)
    for one, where in _REBUILD_SCOPE.items()
}
_COUNTED_WORKSPACES = {
    one: " UNION ".join(
        f"SELECT workspace_id FROM {table} WHERE {where}" for table in _DERIVED_TABLES
    )
    for one, where in _REBUILD_SCOPE.items()
}
# The events with a person in scope, by tenant and time (events_by_time's order: no sort), so
# that each (project, hour) comes in one run and its sketches are made before the next is read.
_PERSONS_IN_SCOPE = {
    one: "SELECT workspace_id, project_id, ts, event_type, user_id, anonymous_id FROM events"
    f" WHERE {where} AND {_HAS_PERSON} ORDER BY workspace_id, project_id, ts"
    for one, where in _REBUILD_SCOPE.items()
}
# How many rows of a run a rebuild holds as events at once.
_REBUILD_CHUNK = 10_000
# The projects in scope that declare dimensions: their events' values are made again, and
# their tallies counted from them.
_DECLARING_IN_SCOPE = {
    one: "SELECT workspace_id, id, dimensions FROM projects"
    f" WHERE {where} AND dimensions <> '[]' ORDER BY workspace_id, id"
    for one, where in _REBUILD_SCOPE.items()
}
# One project's events of [start, end) in time order (events_by_time), a page at a time after
# (ts, seq): each page is read whole before its values are written back, so no read is open
# across a write.
_PROJECT_EVENTS = {
    paged: "SELECT seq, event_type, ts, CAST(properties AS BLOB), user_id, anonymous_id,"
    " dim_values FROM events WHERE workspace_id = ? AND project_id = ? AND ts >= ? AND ts < ?"
    + (" AND (ts, seq) > (?, ?)" if paged else "")
    + " ORDER BY ts, seq LIMIT ?"
    for paged in (False, True)
}
# A deletion's recount: one project's rows of [start, end) (whole UTC days), made again.
_IN_RANGE = "workspace_id = ? AND project_id = ? AND ts >= ? AND ts < ?"
_DELETE_COUNTS_IN_RANGE = tuple(
    f"DELETE FROM {table} WHERE workspace_id = ? AND project_id = ?"
    f" AND {column} >= ? AND {column} < ?"
    for table, column in (
        *((table, "bucket") for table in _COUNT_TABLES.values()),
        ("users_hour", "bucket"),
        ("users_day", "day"),
        ("dims_day", "day"),
    )
)
_RECOUNT_IN_RANGE = tuple(_add_counts_sql(grain, _IN_RANGE) for grain in StoredGrain)
_PERSONS_IN_RANGE = (
    "SELECT workspace_id, project_id, ts, event_type, user_id, anonymous_id FROM events"
    f" WHERE {_IN_RANGE} AND {_HAS_PERSON} ORDER BY workspace_id, project_id, ts"
)
_PROJECT_PATHS = "SELECT dimensions FROM projects WHERE workspace_id = ? AND id = ?"
# At most ? of the project's events the selector takes (its user ids and event ids as JSON
# arrays, empty for no criterion), removed and returned.
_DELETE_SELECTED = (
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
    f" WHERE {_IN_RANGE}"
    " AND (json_array_length(?5) = 0 OR user_id IN (SELECT value FROM json_each(?5))"
    " OR anonymous_id IN (SELECT value FROM json_each(?5)))"
    " AND (json_array_length(?6) = 0 OR event_id IN (SELECT value FROM json_each(?6)))"
    " LIMIT ?7) RETURNING event_id, ts"
)
_DELETIONS_SINCE = (
    f"SELECT {DELETION_COLUMNS} FROM deletions"
    " WHERE workspace_id = ? AND project_id = ? AND requested_at >= ?"
)
_ANY_SUPPRESSED = "SELECT 1 FROM suppressions WHERE workspace_id = ? AND project_id = ? LIMIT 1"
# Of the persons given, those suppressed now or when the batch was received (``?4``).
_SUPPRESSED_OF = (
    "SELECT user_id FROM suppressions WHERE workspace_id = ? AND project_id = ?"
    " AND user_id IN (SELECT value FROM json_each(?))"
    " AND (lifted_at IS NULL OR (suppressed_at <= ?4 AND ?4 < lifted_at))"
)
# Expiry (eventcore.retention): at most ? of the project's events before a moment, oldest
# first (events_by_time), removed; each answers its time.
_EXPIRE = (
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE workspace_id = ?"
    " AND project_id = ? AND ts < ? ORDER BY ts LIMIT ?) RETURNING ts"
)
# The project's count, sketch and tally rows of the days before a moment.
_DROP_DAYS = tuple(
    f"DELETE FROM {table} WHERE workspace_id = ? AND project_id = ? AND {column} < ?"
    for table, column in (
        *((table, "bucket") for table in _COUNT_TABLES.values()),
        ("users_hour", "bucket"),
        ("users_day", "day"),
        ("dims_day", "day"),
    )
)
# Whether the cutoff's day still counts an event of a minute before the cutoff: only then was
# an event of it expired and not recounted yet.
_COUNTS_EXPIRED = (
    f"SELECT 1 FROM {_COUNT_TABLES[StoredGrain.MINUTE]} WHERE workspace_id = ?"
    " AND project_id = ? AND bucket >= ? AND bucket < ? LIMIT 1"
)
_SET_VALUES = "UPDATE events SET dim_values = ? WHERE seq = ?"
# The events in scope whose project declares no dimensions now (or is gone) keep no values.
_CLEAR_UNDECLARED = {
    one: f"UPDATE events SET dim_values = NULL WHERE {where} AND dim_values IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM projects AS p WHERE p.workspace_id = events.workspace_id"
    " AND p.id = events.project_id AND p.dimensions <> '[]')"
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
_EVENT_COLUMNS = (
    "event_id, event_type, ts, received_at, CAST(properties AS BLOB), seq, user_id, anonymous_id"
)
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
# Oldest first from a position, in a window (an export's pages); keyed by (type filter, position).
_EXPORT_EVENTS = {
    (filtered, paged): (
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE workspace_id = ? AND project_id = ?"
        + (" AND event_type = ?" if filtered else "")
        + " AND ts >= ? AND ts < ?"
        + (" AND (ts, seq) > (?, ?)" if paged else "")
        + " ORDER BY ts, seq LIMIT ?"
    )
    for filtered in (False, True)
    for paged in (False, True)
}
_USER_SKETCHES = (
    "SELECT bucket, sketch FROM users_hour WHERE workspace_id = ? AND project_id = ?"
    " AND event_type = ? AND bucket >= ? AND bucket < ? ORDER BY bucket"
)
_DAY_MICROS = Granularity.DAY.step // MICROSECOND
# A unique-users window's read (EventStore.user_window): the sketches of the whole days in
# [?4, ?5) (day boundaries), and the hours' of the window [?6, ?7): every one (?8 = 1), or those
# of a day not read whole.
_USER_WINDOW = (
    "SELECT day, 1, sketch FROM users_day WHERE workspace_id = ?1 AND project_id = ?2"
    " AND event_type = ?3 AND day >= ?4 AND day < ?5"
    " UNION ALL"
    " SELECT h.bucket, 0, h.sketch FROM users_hour AS h WHERE h.workspace_id = ?1"
    " AND h.project_id = ?2 AND h.event_type = ?3 AND h.bucket >= ?6 AND h.bucket < ?7"
    " AND (?8 OR NOT EXISTS (SELECT 1 FROM users_day AS d WHERE d.workspace_id = ?1"
    " AND d.project_id = ?2 AND d.event_type = ?3 AND d.day >= ?4 AND d.day < ?5"
    f" AND d.day <= h.bucket AND h.bucket - d.day < {_DAY_MICROS}))"
    " ORDER BY 2 DESC, 1"
)
_DIMENSION_TALLIES = (
    "SELECT day, kind, value, count, sketch FROM dims_day WHERE workspace_id = ?"
    " AND project_id = ? AND event_type = ? AND dimension = ? AND day >= ? AND day < ?"
    " ORDER BY day, kind, value"
)
# A breakdown's read of them: the counts summed per kind and value, and the sketches of only the
# values the answer lists (the first ?7 by count, kind and value, other left out; BINARY
# collation orders by code point, as the core does), each with its day (see the PostgreSQL
# store's).
_DIMENSION_TOTALS = (
    "WITH totals AS (SELECT kind, value, sum(count) AS count FROM dims_day"
    " WHERE workspace_id = ?1 AND project_id = ?2 AND event_type = ?3 AND dimension = ?4"
    " AND day >= ?5 AND day < ?6 GROUP BY kind, value),"
    " listed AS (SELECT kind, value FROM totals WHERE kind <> 2"
    " ORDER BY count DESC, kind, value LIMIT ?7)"
    " SELECT t.kind, t.value, t.count, l.kind IS NOT NULL, NULL, NULL"
    " FROM totals AS t LEFT JOIN listed AS l USING (kind, value)"
    " UNION ALL"
    " SELECT d.kind, d.value, NULL, NULL, d.sketch, d.day"
    " FROM dims_day AS d JOIN listed USING (kind, value)"
    " WHERE d.workspace_id = ?1 AND d.project_id = ?2 AND d.event_type = ?3"
    " AND d.dimension = ?4 AND d.day >= ?5 AND d.day < ?6 AND d.sketch IS NOT NULL"
)
# The stored values as read back: "" for an event whose project declared none.
_VALUES = "coalesce(dim_values, '')"


@functools.lru_cache(maxsize=64)
def _filtered_events_sql(typed: bool, filters: int) -> str:
    """The events of a window (of one type, through events_by_type_time, or of any, through
    events_by_time) whose stored values match ``filters`` filters, each bound as a JSON path
    (``$."context.page.path"``: the key quoted, for the dots in it) and the value to equal."""
    return (
        f"SELECT ts, event_type, coalesce(user_id, anonymous_id), {_VALUES} FROM events"
        " WHERE workspace_id = ? AND project_id = ?"
        + (" AND event_type = ?" if typed else "")
        + " AND ts >= ? AND ts < ?"
        + " AND json_extract(dim_values, ?) = ?" * filters
        + " LIMIT ?"
    )


@functools.lru_cache(maxsize=32)
def _person_events_sql(types: int) -> str:
    """The funnel's read for ``types`` event types: a range of events_by_type_time for each,
    then a sort by person (no index of events is in that order)."""
    return (
        f"SELECT coalesce(user_id, anonymous_id), ts, seq, event_type, {_VALUES} FROM events"
        " WHERE workspace_id = ? AND project_id = ?"
        f" AND event_type IN ({', '.join('?' * types)}) AND ts >= ? AND ts < ?"
        f" AND {_HAS_PERSON} ORDER BY 1, 2, 3 LIMIT ?"
    )


def _stored_event(row: Any) -> StoredEvent:
    return StoredEvent(
        row[0], row[1], moment(row[2]), moment(row[3]), Raw(row[4]), row[5], row[6], row[7]
    )


def _person_event(row: Any) -> PersonEvent:
    return PersonEvent(row[0], moment(row[1]), row[2], row[3], row[4])


def _dimension_tally(row: Any) -> DimensionTally:
    return DimensionTally(
        moment(row[0]), Kind(row[1]), row[2], row[3], None if row[4] is None else bytes(row[4])
    )


def _total_row(row: Any) -> TotalRow:
    return row[0], row[1], row[2], row[3], row[4], row[5]


def _filtered_event(row: Any) -> FilteredEvent:
    return FilteredEvent(moment(row[0]), row[1], row[2], row[3])


def _json_path(dimension: str) -> str:
    """The JSON path of a declared path's value in the stored values: its key, quoted."""
    return f'$."{dimension}"'


def _hour_sketch(row: Any) -> tuple[datetime, bytes]:
    return moment(row[0]), bytes(row[1])


def _stored_sketch(row: Any) -> StoredSketch:
    grain = Granularity.DAY if row[1] else Granularity.HOUR
    return StoredSketch(moment(row[0]), grain, None, bytes(row[2]))


def _count_point(row: Any) -> CountPoint:
    return CountPoint(moment(row[0]), row[1], row[2])


def _event_type_count(row: Any) -> EventTypeCount:
    return EventTypeCount(row[0], row[1])


def _event_rows(batches: Sequence[IngestBatch], declared: Declared) -> Iterator[tuple[Any, ...]]:
    for batch in batches:
        workspace_id, project_id = batch.workspace_id, batch.project_id
        received_at = micros(batch.received_at)
        paths = declared.get((workspace_id, project_id))
        reader = _reader_for(tuple(paths)) if paths else None
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
                event.user_id,
                event.anonymous_id,
                (
                    encode_values(dict(zip(paths, reader(bytes(event.properties)), strict=True)))
                    if paths and reader is not None
                    else None
                ),
            )


# The writers run in the writer thread, each inside the transaction Database._write opened.


# The rows an append inserted (their seq numbers are past the last one before it), in order.
_INSERTED = "SELECT workspace_id, project_id, event_id FROM events WHERE seq > ? ORDER BY seq"


def _append(
    connection: sqlite3.Connection, given: Sequence[IngestBatch], listed: bool = False
) -> AppendResult:
    batches = _without_withheld(connection, given)
    declared = _declared(connection, batches)
    (last_seq,) = connection.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    # executemany sums the rows each execution changed: a conflict changes none.
    inserted = connection.executemany(_INSERT_EVENT, _event_rows(batches, declared)).rowcount
    if inserted:
        for statement in _COUNT_NEW_EVENTS:
            connection.execute(statement, (last_seq,))
        if any(_has_person(event) for batch in batches for event in batch.events):
            _add_new_persons(connection, batches, last_seq)
        if declared:
            _add_new_tallies(connection, batches, declared, last_seq)
    stored = (
        tuple(IdempotencyKey(*row) for row in connection.execute(_INSERTED, (last_seq,)))
        if listed and inserted
        else ()
    )
    return AppendResult(inserted, sum(len(batch.events) for batch in given) - inserted, stored)


def _without_withheld(
    connection: sqlite3.Connection, batches: Sequence[IngestBatch]
) -> Sequence[IngestBatch]:
    """The batches without the events a deletion requested after they were received takes
    (accepted before it, committed after) and those of persons suppressed in their project,
    which are kept as deleted ids instead, without the events past their project's retention
    (eventcore.retention), and without any event of a deleted workspace. One lookup of
    deletions_by_project and one of suppressions per batch (of a batch with persons), and one
    of deleted_workspaces per append, which find nothing almost always."""
    kept: list[IngestBatch] = []
    deleted: list[tuple[str, str, str, int]] = []
    gone = {
        row[0]
        for row in connection.execute(
            "SELECT workspace_id FROM deleted_workspaces WHERE workspace_id IN"
            " (SELECT value FROM json_each(?))",
            (msgspec.json.encode(sorted({b.workspace_id for b in batches})).decode(),),
        )
    }
    now = datetime.now(UTC)
    tenants = list(dict.fromkeys((batch.workspace_id, batch.project_id) for batch in batches))
    retention = {
        (row[0], row[1]): int(row[2])
        for row in connection.execute(_RETAINING, (msgspec.json.encode(tenants).decode(),))
    }
    for batch in batches:
        if batch.workspace_id in gone:
            # Its workspace was deleted while the batch was queued: nothing of it is stored.
            kept.append(msgspec.structs.replace(batch, events=[]))
            continue
        days = retention.get((batch.workspace_id, batch.project_id))
        if days is not None:
            # Past the project's retention now: not stored, no id kept.
            batch = msgspec.structs.replace(
                batch, events=[e for e in batch.events if not expired(e.timestamp, now, days)]
            )
        rules = [
            deletion_of(row)
            for row in connection.execute(
                _DELETIONS_SINCE,
                (batch.workspace_id, batch.project_id, micros(batch.received_at)),
            )
        ]
        suppressed = _suppressed_of(connection, batch)
        if not rules and not suppressed:
            kept.append(batch)
            continue
        events = []
        for event in batch.events:
            if withheld(rules, batch.received_at, event) or (
                suppressed and is_suppressed(suppressed, event)
            ):
                deleted.append(
                    (batch.workspace_id, batch.project_id, event.id, micros(datetime.now(UTC)))
                )
            else:
                events.append(event)
        kept.append(msgspec.structs.replace(batch, events=events))
    if deleted:
        connection.executemany(KEEP_DELETED, deleted)
    return kept


def _suppressed_of(connection: sqlite3.Connection, batch: IngestBatch) -> frozenset[str]:
    """Which of the batch's persons an append withholds: suppressed in its project now, or
    when the batch was received. One probe of an index, and a lookup of the batch's persons
    only when the project has suppressed anybody."""
    if not connection.execute(_ANY_SUPPRESSED, (batch.workspace_id, batch.project_id)).fetchone():
        return frozenset()
    persons = {p for e in batch.events for p in (e.user_id, e.anonymous_id) if p is not None}
    if not persons:
        return frozenset()
    rows = connection.execute(
        _SUPPRESSED_OF,
        (
            batch.workspace_id,
            batch.project_id,
            msgspec.json.encode(sorted(persons)).decode(),
            micros(batch.received_at),
        ),
    )
    return frozenset(row[0] for row in rows)


def _declared(connection: sqlite3.Connection, batches: Sequence[IngestBatch]) -> Declared:
    tenants = list(dict.fromkeys((batch.workspace_id, batch.project_id) for batch in batches))
    rows = connection.execute(_DECLARED, (msgspec.json.encode(tenants).decode(),))
    return {(row[0], row[1]): strings(row[2]) for row in rows}


def _sketch_key(key: SketchKey) -> tuple[str, str, str, int]:
    """A sketch's key as its table's key columns (and _GET_SKETCH's parameters) hold it."""
    return key.workspace_id, key.project_id, key.event_type, micros(key.bucket)


def _has_person(event: Event) -> bool:
    return event.user_id is not None or event.anonymous_id is not None


def _add_new_persons(
    connection: sqlite3.Connection, batches: Sequence[IngestBatch], last_seq: int
) -> None:
    """Add the persons of the events this transaction inserted (and of no other) to their
    sketches: read, merged, written back, all under the transaction's write lock."""
    new = connection.execute(_NEW_PERSON_EVENTS, (last_seq,))
    inserted = _inserted(batches, new, lambda _, event: _has_person(event))
    rows: dict[Granularity, list[tuple[str, str, str, int, bytes]]] = {
        grain: [] for grain in _SKETCH_TABLES
    }
    # Every sketch is read before any is written: a new day sketch starts from what its hours
    # held before this append (persons.day_sketch_of_hours).
    for key, persons in person_increments(inserted).items():
        sketch_key = _sketch_key(key)
        found = connection.execute(_GET_SKETCH[key.granularity], sketch_key).fetchone()
        stored = None if found is None else found[0]
        if found is None and key.granularity is Granularity.DAY:
            end = micros(key.bucket + Granularity.DAY.step)
            hours = connection.execute(_DAY_HOURS, (*sketch_key, end))
            stored = day_sketch_of_hours(bytes(row[0]) for row in hours)
        rows[key.granularity].append((*sketch_key, add_persons(stored, persons)))
    for grain, made in rows.items():
        connection.executemany(_UPSERT_SKETCH[grain], made)


def _tally_key(key: DimensionKey) -> tuple[str, str, str, str, int, int, str]:
    """A tally's key as dims_day's key columns (and _TALLY_KEY's parameters) hold it."""
    return (
        key.workspace_id,
        key.project_id,
        key.event_type,
        key.dimension,
        micros(key.day),
        int(key.kind),
        key.value,
    )


def _add_new_tallies(
    connection: sqlite3.Connection,
    batches: Sequence[IngestBatch],
    declared: Declared,
    last_seq: int,
) -> None:
    """Add the events this transaction inserted (and no other) to their projects' dimension
    tallies: each touched group's kept values read, the new values bounded by them, the counts
    added and the sketches merged, all under the transaction's write lock."""
    new = connection.execute(_NEW_DIMENSION_EVENTS, (last_seq,))
    inserted = _inserted(
        batches, new, lambda batch, _: (batch.workspace_id, batch.project_id) in declared
    )
    increments = dimension_increments(inserted, declared)
    known: dict[DimensionGroup, set[str]] = {}
    for group in {key.group for key in increments if key.kind is Kind.VALUE}:
        found = connection.execute(
            _KNOWN_VALUES,
            (
                group.workspace_id,
                group.project_id,
                group.event_type,
                group.dimension,
                micros(group.day),
            ),
        )
        known[group] = {row[0] for row in found}
    rows = []
    for key, tally in bounded(increments, known).items():
        tally_key = _tally_key(key)
        sketch = None
        if tally.persons:
            stored = connection.execute(_GET_TALLY_SKETCH, tally_key).fetchone()
            sketch = add_value_persons(None if stored is None else stored[0], tally.persons)
        rows.append((*tally_key, tally.count, sketch))
    connection.executemany(_UPSERT_TALLY, rows)


def _inserted(
    batches: Sequence[IngestBatch],
    new: Iterable[tuple[str, str, str]],
    kept: Callable[[IngestBatch, Event], bool],
) -> list[IngestBatch]:
    """The events of ``batches`` that are the rows ``new`` (the inserted events that are
    ``kept``, in insertion order), as batches.

    The rows were inserted in the order of the batches' events, so they are matched in one walk:
    an event is the next row when its key is. A later event with an inserted event's id is a
    duplicate, and never matches: that key's row has been passed by then.
    """
    rows = iter(new)
    wanted = next(rows, None)
    found: list[IngestBatch] = []
    for batch in batches:
        if wanted is None:
            break
        matched: list[Event] = []
        for event in batch.events:
            if wanted == (batch.workspace_id, batch.project_id, event.id) and kept(batch, event):
                matched.append(event)
                wanted = next(rows, None)
        if matched:
            found.append(msgspec.structs.replace(batch, events=matched))
    if wanted is not None:
        raise RuntimeError(f"An inserted event is not in the batches appended: {wanted!r}.")
    return found


def _rebuild_counts(connection: sqlite3.Connection, workspace_id: str | None) -> Recount:
    one = workspace_id is not None
    scope: tuple[str, ...] = () if workspace_id is None else (workspace_id,)

    def counted_workspaces() -> set[str]:
        rows = connection.execute(_COUNTED_WORKSPACES[one], scope * len(_DERIVED_TABLES))
        return {row[0] for row in rows}

    # Those whose rows are replaced, and (after) those whose events were counted.
    touched = counted_workspaces()
    for statement in _DELETE_COUNTS[one]:
        connection.execute(statement, scope)
    for statement in _RECOUNT[one]:
        connection.execute(statement, scope)
    _resketch(connection, connection.execute(_PERSONS_IN_SCOPE[one], scope))
    for row in connection.execute(_DECLARING_IN_SCOPE[one], scope).fetchall():
        _retally(connection, row[0], row[1], strings(row[2]))
    connection.execute(_CLEAR_UNDECLARED[one], scope)
    (counted,) = connection.execute(_EVENTS_IN_SCOPE[one], scope).fetchone()
    return Recount(int(counted), frozenset(touched | counted_workspaces()))


_NO_PROPERTIES = Raw(b"{}")


def _day_of_row(row: Any) -> tuple[str, str, datetime]:
    return row[0], row[1], bucket_start(moment(row[2]), Granularity.DAY)


def _resketch(connection: sqlite3.Connection, rows: Iterator[Any]) -> None:
    """Make every sketch again from ``rows`` (events with a person, ordered by tenant and time),
    one (project, UTC day) at a time: memory holds one day's persons, and ``_REBUILD_CHUNK``
    rows.

    The rows stream from one cursor while the sketches are written on the same connection, in
    the same transaction: a read of events is not disturbed by writes to another table.
    """
    for (workspace_id, project_id, day), run in groupby(rows, key=_day_of_row):
        persons: dict[SketchKey, set[str]] = {}
        while chunk := list(islice(run, _REBUILD_CHUNK)):
            events = [
                Event("", row[3], moment(row[2]), _NO_PROPERTIES, row[4], row[5]) for row in chunk
            ]
            batch = IngestBatch(workspace_id, project_id, day, events)
            for key, added in person_increments([batch]).items():
                persons.setdefault(key, set()).update(added)
        # A plain insert: a key made twice (a run not a whole day) fails the rebuild loudly.
        for grain in _SKETCH_TABLES:
            connection.executemany(
                _PUT_SKETCH[grain],
                [
                    (*_sketch_key(key), sketch_of(added))
                    for key, added in persons.items()
                    if key.granularity is grain
                ],
            )


def _day_of(event: Event) -> datetime:
    return bucket_start(event.timestamp, Granularity.DAY)


def _retally(
    connection: sqlite3.Connection,
    workspace_id: str,
    project_id: str,
    paths: tuple[str, ...],
    start: int = micros(EARLIEST),
    end: int = micros(LATEST),
) -> None:
    """Make one project's events' values again for ``paths`` (writing those that changed), and
    its tallies from them, one day at a time: a day's values are all counted before the bound
    keeps its most frequent. Memory holds one day's tallies (their persons) and a page of
    ``_REBUILD_CHUNK`` rows."""
    declared = {(workspace_id, project_id): paths}
    day: datetime | None = None
    tallies: dict[DimensionKey, Tally] = {}
    for page in _project_pages(connection, workspace_id, project_id, start, end):
        events: list[Event] = []
        changed: list[tuple[str, int]] = []
        for seq, event_type, ts, properties, user_id, anonymous_id, stored in page:
            values = encode_values(values_of(properties, paths))
            if values != stored:
                changed.append((values, seq))
            events.append(Event("", event_type, moment(ts), Raw(properties), user_id, anonymous_id))
        connection.executemany(_SET_VALUES, changed)
        for event_day, run in groupby(events, key=_day_of):
            if event_day != day:
                _put_tallies(connection, tallies)
                day, tallies = event_day, {}
            batch = IngestBatch(workspace_id, project_id, event_day, list(run))
            for key, tally in dimension_increments([batch], declared).items():
                current = tallies.get(key)
                if current is None:
                    tallies[key] = tally
                else:
                    current.count += tally.count
                    current.persons |= tally.persons
    _put_tallies(connection, tallies)


def _put_tallies(connection: sqlite3.Connection, tallies: dict[DimensionKey, Tally]) -> None:
    """Store one (project, day)'s tallies, counted whole, bounded as new values would be."""
    # A plain insert: a key made twice (a day not counted whole) fails the rebuild loudly.
    connection.executemany(
        _PUT_TALLY,
        [
            (
                *_tally_key(key),
                tally.count,
                add_value_persons(None, tally.persons) if tally.persons else None,
            )
            for key, tally in bounded(tallies, {}).items()
        ],
    )


def _project_pages(
    connection: sqlite3.Connection,
    workspace_id: str,
    project_id: str,
    start: int = micros(EARLIEST),
    end: int = micros(LATEST),
) -> Iterator[list[Any]]:
    """A project's events of [start, end) (microseconds), oldest first, as whole pages of at
    most ``_REBUILD_CHUNK`` rows."""
    scope = (workspace_id, project_id, start, end)
    page = connection.execute(_PROJECT_EVENTS[False], (*scope, _REBUILD_CHUNK)).fetchall()
    while page:
        yield page
        if len(page) < _REBUILD_CHUNK:
            return
        last = page[-1]
        page = connection.execute(
            _PROJECT_EVENTS[True], (*scope, last[2], last[0], _REBUILD_CHUNK)
        ).fetchall()


def _delete_events(
    connection: sqlite3.Connection,
    workspace_id: str,
    project_id: str,
    selector: EventSelector,
    limit: int,
    at: datetime,
) -> int:
    start, end = micros(selector.start or EARLIEST), micros(selector.end or LATEST)
    deleted = connection.execute(
        _DELETE_SELECTED,
        (
            workspace_id,
            project_id,
            start,
            end,
            msgspec.json.encode(selector.user_ids).decode(),
            msgspec.json.encode(selector.event_ids).decode(),
            max(limit, 0),
        ),
    ).fetchall()
    if not deleted:
        return 0
    connection.executemany(
        KEEP_DELETED, [(workspace_id, project_id, row[0], micros(at)) for row in deleted]
    )
    first = bucket_start(moment(min(row[1] for row in deleted)), Granularity.DAY)
    last = bucket_start(moment(max(row[1] for row in deleted)), Granularity.DAY)
    _recount_days(connection, workspace_id, project_id, first, last + timedelta(days=1))
    return len(deleted)


def _expire_events(
    connection: sqlite3.Connection,
    workspace_id: str,
    project_id: str,
    before: datetime,
    limit: int,
) -> int:
    limit = max(limit, 0)
    deleted = connection.execute(
        _EXPIRE, (workspace_id, project_id, micros(before), limit)
    ).fetchall()
    cutoff_day = bucket_start(before, Granularity.DAY)
    if deleted and len(deleted) == limit:
        # Oldest first: every day before the last deleted event's has none left.
        last = bucket_start(moment(max(row[0] for row in deleted)), Granularity.DAY)
        for statement in _DROP_DAYS:
            connection.execute(statement, (workspace_id, project_id, micros(min(last, cutoff_day))))
        return len(deleted)
    for statement in _DROP_DAYS:
        connection.execute(statement, (workspace_id, project_id, micros(cutoff_day)))
    stale = connection.execute(
        _COUNTS_EXPIRED, (workspace_id, project_id, micros(cutoff_day), micros(before))
    ).fetchone()
    if stale is not None:
        _recount_days(
            connection, workspace_id, project_id, cutoff_day, cutoff_day + timedelta(days=1)
        )
    return len(deleted)


def _recount_days(
    connection: sqlite3.Connection,
    workspace_id: str,
    project_id: str,
    start: datetime,
    end: datetime,
) -> None:
    """The project's counts, sketches and tallies of [start, end) (whole UTC days) made again
    from the events there, as a rebuild makes them."""
    scope = (workspace_id, project_id, micros(start), micros(end))
    for statement in _DELETE_COUNTS_IN_RANGE:
        connection.execute(statement, scope)
    for statement in _RECOUNT_IN_RANGE:
        connection.execute(statement, scope)
    _resketch(connection, connection.execute(_PERSONS_IN_RANGE, scope))
    row = connection.execute(_PROJECT_PATHS, (workspace_id, project_id)).fetchone()
    paths = strings(row[0]) if row is not None else ()
    if paths:
        _retally(connection, workspace_id, project_id, paths, scope[2], scope[3])


class Events(Database):
    """The EventStore half of the SQLite store."""

    async def append(self, batches: Sequence[IngestBatch], *, listed: bool = False) -> AppendResult:
        if not any(batch.events for batch in batches):
            return AppendResult(0, 0)
        return await self._write(_append, batches, listed)

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

    async def export_events(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        *,
        limit: int,
        event_type: str | None = None,
        after: EventCursor | None = None,
    ) -> list[StoredEvent]:
        parameters: list[Any] = [workspace_id, project_id]
        if event_type is not None:
            parameters.append(event_type)
        parameters += (micros(start), micros(end))
        if after is not None:
            parameters += (micros(after.timestamp), after.seq)
        parameters.append(max(limit, 0))
        sql = _EXPORT_EVENTS[(event_type is not None, after is not None)]
        return await self._query(_stored_event, sql, *parameters)

    async def user_window(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        granularity: Granularity,
        event_type: str | None = None,
    ) -> list[StoredSketch]:
        wanted = ALL_TYPES if event_type is None else event_type
        first_day, last_day = whole_days(start, end)
        return await self._query(
            _stored_sketch,
            _USER_WINDOW,
            workspace_id,
            project_id,
            wanted,
            micros(first_day),
            micros(last_day),
            micros(start),
            micros(end),
            granularity is Granularity.HOUR,
        )

    async def user_sketches(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[tuple[datetime, bytes]]:
        wanted = ALL_TYPES if event_type is None else event_type
        return await self._query(
            _hour_sketch,
            _USER_SKETCHES,
            workspace_id,
            project_id,
            wanted,
            micros(start),
            micros(end),
        )

    async def person_events(
        self,
        workspace_id: str,
        project_id: str,
        event_types: Sequence[str],
        start: datetime,
        end: datetime,
        limit: int | None = None,
    ) -> list[PersonEvent]:
        types = sorted(set(event_types))
        if not types:
            return []
        return await self._query(
            _person_event,
            _person_events_sql(len(types)),
            workspace_id,
            project_id,
            *types,
            micros(start),
            micros(end),
            -1 if limit is None else limit,  # SQLite's LIMIT -1: no limit
        )

    async def dimension_tallies(
        self,
        workspace_id: str,
        project_id: str,
        dimension: str,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[DimensionTally]:
        wanted = ALL_TYPES if event_type is None else event_type
        return await self._query(
            _dimension_tally,
            _DIMENSION_TALLIES,
            workspace_id,
            project_id,
            wanted,
            dimension,
            micros(start),
            micros(end),
        )

    async def dimension_totals(
        self,
        workspace_id: str,
        project_id: str,
        dimension: str,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
        *,
        listed: int,
    ) -> list[ValueTotal]:
        wanted = ALL_TYPES if event_type is None else event_type
        rows = await self._query(
            _total_row,
            _DIMENSION_TOTALS,
            workspace_id,
            project_id,
            wanted,
            dimension,
            micros(start),
            micros(end),
            listed,
        )
        return totals_of_rows(rows)

    async def filtered_events(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        event_type: str | None,
        where: Sequence[Where],
        limit: int | None = None,
    ) -> list[FilteredEvent]:
        if any('"' in w.dimension for w in where):
            # No declared path holds a quote (eventcore.dimensions.check_paths): no event has a
            # value for it, and its key could not be quoted in a JSON path.
            return []
        parameters: list[Any] = [workspace_id, project_id]
        if event_type is not None:
            parameters.append(event_type)
        parameters += (micros(start), micros(end))
        for w in where:
            parameters += (_json_path(w.dimension), w.value)
        parameters.append(-1 if limit is None else limit)
        sql = _filtered_events_sql(event_type is not None, len(where))
        return await self._query(_filtered_event, sql, *parameters)

    async def delete_events(
        self, workspace_id: str, project_id: str, selector: EventSelector, *, limit: int
    ) -> int:
        return await self._write(
            _delete_events, workspace_id, project_id, selector, limit, datetime.now(UTC)
        )

    async def expire_events(
        self, workspace_id: str, project_id: str, before: datetime, *, limit: int
    ) -> int:
        return await self._write(_expire_events, workspace_id, project_id, before, limit)

    async def rebuild_counts(self, workspace_id: str | None = None) -> Recount:
        return await self._write(_rebuild_counts, workspace_id)
