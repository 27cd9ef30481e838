"""Events in PostgreSQL: the events table, the count tables, the persons' sketches and the
dimension tallies kept beside it, and the queries.

Each statement is written once, from parts, and each result is static: one prepared plan per
combination of filters. Counts are added in SQL; a sketch (``eventcore.persons``) and a tally
(``eventcore.dimensions``) are merged here, between locking them and writing them back, in the
append's transaction.
"""

# S608: SQL text here is assembled only from this module's constants; every value is a bound
# parameter.
# ruff: noqa: S608

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, NamedTuple

import msgspec
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from psycopg import AsyncCursor

from eventcore.adapters.postgres._database import Connection, Database, pipelined_transaction
from eventcore.adapters.postgres._deletions import KEEP_DELETED
from eventcore.aggregation import CountPoint, EventTypeCount, Granularity, StoredGrain, bucket_start
from eventcore.defaults import FUNNEL_SORT_MEMORY_MB
from eventcore.deletions import EventSelector
from eventcore.dimensions import (
    DimensionGroup,
    DimensionKey,
    DimensionTally,
    FilteredEvent,
    Kind,
    Tally,
    TotalRow,
    ValueGroup,
    ValueReader,
    Values,
    ValueTotal,
    Where,
    add_group,
    add_value_persons,
    bounded,
    dimension_increments,
    encode_values,
    totals_of_rows,
)
from eventcore.events import EARLIEST, LATEST, Event, EventCursor, IngestBatch, StoredEvent
from eventcore.funnels import PersonEvent
from eventcore.idempotency import IdempotencyKey
from eventcore.persons import (
    ALL_TYPES,
    Estimate,
    SketchKey,
    StoredSketch,
    add_persons,
    add_persons_estimated,
    day_sketch_of_hours,
    sketch_estimated,
    whole_days,
)
from eventcore.ports import AppendResult, Recount
from eventcore.tenancy import ProjectRef

_tracer = trace.get_tracer("eventcore.adapters.postgres")

# Writers to the count tables also take the workspace's counts lock: shared for appends (they
# never wait for each other), exclusive for a rebuild, which must not interleave with them.
_SET_TENANT_FOR_COUNTS = (
    "SELECT set_config('app.workspace_id', %s, true), pg_advisory_xact_lock_shared(%s, %s)"
)
_SET_TENANT_FOR_REBUILD = (
    "SELECT set_config('app.workspace_id', %s, true), pg_advisory_xact_lock(%s, %s)"
)
# An expiry chunk takes the counts lock shared, as appends do, and writes as gently as it can
# (bench/README.md, "Retention"):
# - synchronous_commit off: its commit does not wait for its WAL to reach the disk (the WAL
#   writer flushes it within a fraction of a second). An expiry is idempotent and runs again
#   every hour: a crash that loses the last chunks' commits only leaves those events to the next
#   run, never a count that disagrees with the events (a chunk's deletes and its rows' drop are
#   one transaction, lost or kept together).
# - backend_flush_after 256kB: the pages it evicts from shared buffers (it dirties every page
#   holding an expired event) are handed to the kernel to write as they go, instead of piling up
#   as dirty page cache that the kernel then writes in one burst, stalling every other fsync on
#   the disk (the queue's publisher confirms among them).
_SET_TENANT_FOR_EXPIRY = (
    "SELECT set_config('app.workspace_id', %s, true), pg_advisory_xact_lock_shared(%s, %s),"
    " set_config('synchronous_commit', 'off', true),"
    " set_config('backend_flush_after', '256kB', true)"
)
_COUNTS_LOCK_CLASS = 0x65630001


# How many sketch rows a rebuild writes per statement, and how many grouped rows it fetches per
# round trip of its server-side cursor: what it holds in memory besides one hour's persons.
_REBUILD_CHUNK = 1000


def _add_counts(source: str) -> str:
    """CTEs adding each row (project_id, event_time, type) of ``source`` to both count tables:
    the core's ``count_increments``, in SQL; the statement goes on with its own final SELECT
    (from ``per_minute``: ``_COUNTED`` is how many rows it counted).

    Buckets are cut in UTC whatever the session time zone; hours are summed from the minutes.
    Count rows are locked in primary-key order (see _append_statement on lock order).
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
"""


_COUNTED = "coalesce(sum(n), 0)::bigint"


def _withheld(persons: bool) -> str:
    """Whether an incoming event is one a deletion requested after it was received takes
    (accepted before the request, committed after it): then it is not stored, and its id is
    kept as deleted. One probe of deletions_by_project per event, of the deletions requested
    since the event was received (none, almost always)."""
    person = (
        " OR incoming.user_id = ANY(r.user_ids) OR incoming.anonymous_id = ANY(r.user_ids)"
        if persons
        else ""
    )
    return f"""EXISTS (
          SELECT FROM eventcore.deletions AS r
          WHERE r.workspace_id = %(workspace_id)s AND r.project_id = incoming.project_id
            AND r.requested_at >= incoming.received_at
            AND (cardinality(r.user_ids) = 0{person})
            AND (cardinality(r.event_ids) = 0 OR incoming.event_id = ANY(r.event_ids))
            AND (r.start_time IS NULL OR incoming.event_time >= r.start_time)
            AND (r.end_time IS NULL OR incoming.event_time < r.end_time))"""


# An incoming event (with a person) whose user_id or anonymous_id is suppressed in its project
# now, or was when the event was received (a suppression lifted since). The first EXISTS is
# uncorrelated, an InitPlan run once per statement: a workspace that never suppressed anybody
# (nearly all) costs no probe per event; one that did costs one probe of the suppressions'
# primary key per event that has a person.
_SUPPRESSED = """(EXISTS (
          SELECT FROM eventcore.suppressions AS any_s
          WHERE any_s.workspace_id = %(workspace_id)s)
        AND EXISTS (
          SELECT FROM eventcore.suppressions AS s
          WHERE s.workspace_id = %(workspace_id)s AND s.project_id = incoming.project_id
            AND s.user_id = ANY(ARRAY[incoming.user_id, incoming.anonymous_id])
            AND (s.lifted_at IS NULL
                 OR (s.suppressed_at <= incoming.received_at
                     AND incoming.received_at < s.lifted_at))))"""
# Whether an incoming event is past its project's retention at the time of the append (the
# transaction's start: eventcore.retention.expired): then it is not stored, and no id of it is
# kept. ``retaining`` holds the workspace's projects that have a retention (none, almost always)
# with their cutoffs, read once per statement.
_EXPIRED = """EXISTS (
          SELECT FROM retaining AS x
          WHERE x.project_id = incoming.project_id AND incoming.event_time < x.cutoff)"""


def _append_statement(*, persons: bool, valued: bool, listed: bool = False) -> str:
    """One round trip stores a workspace's events and adds exactly the inserted ones to both
    count tables, if the projects' declared dimensions are the ones the values were made for.

    Without ``persons`` (no event of the workspace's batches has one) and ``valued`` (none of its
    projects declares a dimension) it is the statement of before persons and dimensions, column
    for column, and the check of the dimensions: such a batch costs one lookup of each project's
    row more (0.0 to 0.8 ms of a 2,000-event append's 42 ms, within the noise). With
    ``persons`` it stores the events' user and anonymous ids too, and answers also, per (project,
    hour, type) of the inserted events that have a person, their distinct persons: the core's
    ``person_increments`` of exactly the inserted events, in SQL but for the every-type sketches
    (their union, see _increments). With ``valued`` it stores each event's
    declared values (NULL for a project declaring none) and answers the inserted events that
    have them grouped by (project, UTC day, type, values), with each group's count and distinct
    persons: the groups the core's ``dimension_increments`` makes, which the append expands into
    tallies (``add_group``) without a loop over the events.

    The check (``settled``): the values were made for the dimensions the append guessed each
    project declares (``guess_projects``, ``guess_dimensions``, each a JSON array), which this
    statement compares with the projects' rows in its own snapshot, taken after the transaction
    began: a declaration committed before that is seen. A wrong guess inserts nothing and answers
    every project's dimensions (``actual``, a JSON object); the append then makes the values again
    and sends the statement once more, unchecked (no guess: empty arrays). The first answer row
    holds the count, whether the guess held and ``actual``; each other row, NULL there, one
    (project, hour, type)'s persons or (with values) one group of values.

    Every row lock is taken in one global order, so concurrent writers cannot deadlock: events
    in primary-key order (after seq numbers are drawn in arrival order, which paging needs; the
    first of two equal ids is the one kept), then count rows in primary-key order, then, in the
    transaction's next statements, sketch rows in primary-key order and then the tallies' group
    locks in key order; workspaces themselves go in sorted order, all of one's rows before the
    next one's. The arrays travel in binary: psycopg dumps them in C, the text form costs
    milliseconds.

    With ``listed`` (a project of the append has live subscribers) one more row names the
    inserted events, in seq order: NULL count, ``ok`` true, and in ``actual`` the JSON array
    of their (project, id) pairs. Without it nothing more is sent or built.
    """
    # Each on a line of its own in the statement: the lines stay short.
    arrays = ""
    columns = ""
    returned = ""
    if persons:
        arrays += ",\n                %(user_ids)b::text[], %(anonymous_ids)b::text[]"
        columns += ",\n         user_id, anonymous_id"
        returned += ", coalesce(e.user_id, e.anonymous_id) AS person"
    if listed:
        returned += ", e.event_id, e.seq"
    if valued:
        arrays += ",\n                %(dim_values)b::text[]"
        columns += ",\n         dim_values"
        returned += ", e.dim_values"
    # Every answer row has the same columns: the head's three, then (project, bucket, type,
    # persons), then with ``valued`` (values, count); a persons row has no values, a group row
    # has them.
    tail = ""
    if persons or valued:
        tail += ",\n       NULL::text, NULL::timestamptz, NULL::text, NULL::text[]"
    if valued:
        tail += ", NULL::text, NULL::bigint"
    head = f"""
SELECT counted.n, settled.ok,
       CASE WHEN settled.ok THEN NULL ELSE settled.actual END{tail}
FROM (SELECT {_COUNTED} AS n FROM per_minute) AS counted, settled
"""
    answer = head
    if listed:
        answer += f"""
UNION ALL
SELECT NULL, true,
       (SELECT coalesce(json_agg(json_build_array(project_id, event_id) ORDER BY seq), '[]')::text
        FROM stored){tail}
"""
    if persons:
        answer += f"""
UNION ALL
SELECT NULL, NULL, NULL, project_id, date_trunc('hour', event_time, 'UTC'), type,
       array_agg(DISTINCT person){", NULL, NULL" if valued else ""}
FROM stored
WHERE person IS NOT NULL
GROUP BY 4, 5, 6
"""
    if valued:
        distinct = (
            "array_agg(DISTINCT person) FILTER (WHERE person IS NOT NULL)"
            if persons
            else "NULL::text[]"
        )
        answer += f"""
UNION ALL
SELECT NULL, NULL, NULL, project_id, date_trunc('day', event_time, 'UTC'), type,
       {distinct}, dim_values, count(*)
FROM stored
WHERE dim_values IS NOT NULL
GROUP BY 4, 5, 6, 8
"""
    # Not stored, its id kept as deleted: taken by a deletion since it was received, or (an
    # event with a person) suppressed in its project.
    withheld = _withheld(persons)
    if persons:
        withheld = f"({withheld}\n       OR {_SUPPRESSED})"
    return f"""
WITH declared AS (
    SELECT g.project_id, coalesce(p.dimensions, '{{}}') AS dimensions,
           g.expected::jsonb = to_jsonb(coalesce(p.dimensions, '{{}}')) AS same
    FROM unnest(%(guess_projects)b::text[], %(guess_dimensions)b::text[])
         AS g (project_id, expected)
    LEFT JOIN eventcore.projects AS p
      ON p.workspace_id = %(workspace_id)s AND p.project_id = g.project_id
),
settled AS MATERIALIZED (
    SELECT coalesce(bool_and(same), true) AS ok,
           json_object_agg(project_id, dimensions)::text AS actual
    FROM declared
),
retaining AS MATERIALIZED (
    SELECT project_id,
           date_trunc('minute', now(), 'UTC') - retention_days * interval '24 hours' AS cutoff
    FROM eventcore.projects
    WHERE workspace_id = %(workspace_id)s AND retention_days IS NOT NULL
),
incoming AS MATERIALIZED (
    SELECT i.*, nextval('eventcore.event_seq') AS seq
    FROM unnest(%(project_ids)b::text[], %(event_ids)b::text[], %(timestamps)b::timestamptz[],
                %(received)b::timestamptz[], %(types)b::text[], %(properties)b::text[]{arrays})
         WITH ORDINALITY
         AS i (project_id, event_id, event_time, received_at, type, properties{columns},
               position)
    ORDER BY i.position
),
stored AS (
    INSERT INTO eventcore.events AS e
        (workspace_id, project_id, event_id, seq, event_time, received_at, type,
         properties{columns})
    SELECT %(workspace_id)s::text, project_id, event_id, seq, event_time, received_at, type,
           properties::json{columns}
    FROM incoming
    WHERE (SELECT ok FROM settled)
      AND NOT EXISTS (
          SELECT FROM eventcore.deleted_workspaces AS w
          WHERE w.workspace_id = %(workspace_id)s)
      AND NOT EXISTS (
          SELECT FROM eventcore.deleted_events AS d
          WHERE d.workspace_id = %(workspace_id)s AND d.project_id = incoming.project_id
            AND d.event_id = incoming.event_id)
      AND NOT {withheld}
      AND NOT {_EXPIRED}
    ORDER BY project_id COLLATE "C", event_id COLLATE "C", position
    ON CONFLICT DO NOTHING
    RETURNING e.project_id, e.event_time, e.type{returned}
),
kept_deleted AS (
    INSERT INTO eventcore.deleted_events (workspace_id, project_id, event_id, deleted_at)
    SELECT %(workspace_id)s::text, project_id, event_id, now()
    FROM incoming
    WHERE (SELECT ok FROM settled) AND {withheld}
      AND NOT {_EXPIRED}
      AND NOT EXISTS (
          SELECT FROM eventcore.deleted_workspaces AS w
          WHERE w.workspace_id = %(workspace_id)s)
    ORDER BY project_id COLLATE "C", event_id COLLATE "C"
    ON CONFLICT DO NOTHING
),
{_add_counts("stored")}
{answer}
"""


# Keyed by (persons, valued, listed).
_APPEND = {
    (persons, valued, listed): _append_statement(persons=persons, valued=valued, listed=listed)
    for persons in (False, True)
    for valued in (False, True)
    for listed in (False, True)
}

# The sketches an append adds persons to, as parallel arrays (one row a SketchKey), in the
# hours' table or the days' (keyed alike).
_SKETCH_TABLES = {Granularity.HOUR: ("users_hour", "bucket"), Granularity.DAY: ("users_day", "day")}
_SKETCH_KEYS = (
    "unnest(%(project_ids)b::text[], %(buckets)b::timestamptz[], %(event_types)b::text[])"
)
# Locks every sketch row the append touches, in primary-key order, in one pass: a missing row is
# made (with the empty placeholder, replaced below before the commit), an existing one is only
# locked (an ON CONFLICT DO UPDATE locks every conflicting row, even when its WHERE updates
# none: no new row version is written). An append's own keys are distinct. Every append locks
# its hours' rows before its days'.
_LOCK_SKETCHES = {
    grain: f"""
INSERT INTO eventcore.{table} AS u (workspace_id, project_id, {column}, event_type, sketch)
SELECT %(workspace_id)s::text, k.project_id, k.bucket, k.event_type, ''::bytea
FROM {_SKETCH_KEYS} AS k (project_id, bucket, event_type)
ORDER BY k.project_id COLLATE "C", k.bucket, k.event_type COLLATE "C"
ON CONFLICT (workspace_id, project_id, {column}, event_type)
DO UPDATE SET sketch = u.sketch WHERE false
"""
    for grain, (table, column) in _SKETCH_TABLES.items()
}
# The locked rows' sketches, in the keys' order. A statement of its own, after the lock: its
# snapshot is taken once every row is locked, so it reads the last committed sketch of each
# (a writer that held a row before has committed), and nobody changes one until this commit.
_READ_SKETCHES = {
    grain: f"""
SELECT u.sketch
FROM {_SKETCH_KEYS} WITH ORDINALITY AS k (project_id, bucket, event_type, n)
JOIN eventcore.{table} AS u
  ON u.workspace_id = %(workspace_id)s AND u.project_id = k.project_id
 AND u.{column} = k.bucket AND u.event_type = k.event_type
ORDER BY k.n
"""
    for grain, (table, column) in _SKETCH_TABLES.items()
}
# The sketches the hours of each new day (its row just made, the placeholder still in it)
# already hold: what its day sketch starts from (persons.day_sketch_of_hours), by the days'
# ordinals. Sent with the reads, in the same round trip: a day whose row exists costs one probe
# of its (locked) row, and a new day's hours hold nothing but for a day stored before there
# were day sketches.
_DAY_HOURS = f"""
SELECT k.n, u.sketch
FROM {_SKETCH_KEYS} WITH ORDINALITY AS k (project_id, bucket, event_type, n)
JOIN eventcore.users_day AS d
  ON d.workspace_id = %(workspace_id)s AND d.project_id = k.project_id
 AND d.event_type = k.event_type AND d.day = k.bucket AND d.sketch = ''::bytea
JOIN eventcore.users_hour AS u
  ON u.workspace_id = %(workspace_id)s AND u.project_id = k.project_id
 AND u.event_type = k.event_type
 AND u.bucket >= k.bucket AND u.bucket < k.bucket + interval '1 day'
WHERE u.sketch <> ''::bytea
"""
# What a write gives each sketch row: an hour's its estimate too (users, relative_error).
_SKETCH_VALUES = {
    Granularity.HOUR: (
        "%(sketches)b::bytea[], %(users)b::int8[], %(errors)b::float8[]",
        ("sketch", "users", "relative_error"),
    ),
    Granularity.DAY: ("%(sketches)b::bytea[]", ("sketch",)),
}
_WRITE_SKETCHES = {
    grain: f"""
UPDATE eventcore.{table} AS u SET {", ".join(f"{c} = k.{c}" for c in _SKETCH_VALUES[grain][1])}
FROM unnest(%(project_ids)b::text[], %(buckets)b::timestamptz[], %(event_types)b::text[],
            {_SKETCH_VALUES[grain][0]})
     AS k (project_id, bucket, event_type, {", ".join(_SKETCH_VALUES[grain][1])})
WHERE u.workspace_id = %(workspace_id)s AND u.project_id = k.project_id
  AND u.{column} = k.bucket AND u.event_type = k.event_type
"""
    for grain, (table, column) in _SKETCH_TABLES.items()
}
_INSERT_SKETCHES = {
    grain: f"""
INSERT INTO eventcore.{table}
    (workspace_id, project_id, {column}, event_type, {", ".join(_SKETCH_VALUES[grain][1])})
SELECT %(workspace_id)s::text, k.*
FROM unnest(%(project_ids)b::text[], %(buckets)b::timestamptz[], %(event_types)b::text[],
            {_SKETCH_VALUES[grain][0]})
     AS k (project_id, bucket, event_type, {", ".join(_SKETCH_VALUES[grain][1])})
"""
    for grain, (table, column) in _SKETCH_TABLES.items()
}

# The dimension tallies. An append locks each group (DimensionGroup) it adds to, in key order,
# after its sketch rows: one transaction-level advisory lock per group, held to the commit, so
# that the values a group keeps are read, bounded and written, and its sketches merged, by one
# writer at a time (a row lock could not cover the values not stored yet). The key is the
# group's 64-bit hash (the single-key space: apart from the counts locks' pairs); two groups of
# one workspace sharing one only wait for each other, two of different workspaces could make
# two appends deadlock (the server detects it and fails one: a retried append), once in about
# 2^64 / (groups locked together)^2. Keys go in sorted and the locks are taken in that order
# (a volatile call is evaluated after the sort below it).
_LOCK_GROUPS = "SELECT pg_advisory_xact_lock(k) FROM unnest(%(keys)b::bigint[]) AS k ORDER BY k"
# The groups an append adds new values to, as parallel arrays (one row a DimensionGroup), and
# the tallies it reads or writes (one row a DimensionKey, in the table's key order).
_GROUP_ARRAYS = (
    "%(project_ids)b::text[], %(event_types)b::text[], %(dimensions)b::text[],"
    " %(days)b::timestamptz[]"
)
_TALLY_ARRAYS = f"{_GROUP_ARRAYS}, %(kinds)b::smallint[], %(values)b::text[]"
# Statements of their own after the locks: their snapshots see every value and sketch a writer
# that held a group before committed. The values a group keeps: one range of the key each.
_KNOWN_VALUES = f"""
SELECT g.n, d.value
FROM unnest({_GROUP_ARRAYS}) WITH ORDINALITY AS g (project_id, event_type, dimension, day, n)
JOIN eventcore.dims_day AS d
  ON d.workspace_id = %(workspace_id)s AND d.project_id = g.project_id
 AND d.event_type = g.event_type AND d.dimension = g.dimension AND d.day = g.day
 AND d.kind = {Kind.VALUE:d}
"""
_TALLY_SKETCHES = f"""
SELECT k.n, d.sketch
FROM unnest({_TALLY_ARRAYS}) WITH ORDINALITY
     AS k (project_id, event_type, dimension, day, kind, value, n)
JOIN eventcore.dims_day AS d
  ON d.workspace_id = %(workspace_id)s AND d.project_id = k.project_id
 AND d.event_type = k.event_type AND d.dimension = k.dimension AND d.day = k.day
 AND d.kind = k.kind AND d.value = k.value
WHERE d.sketch IS NOT NULL
"""
_TALLY_ROWS = f"""
SELECT %(workspace_id)s::text, k.*
FROM unnest({_TALLY_ARRAYS}, %(counts)b::bigint[], %(sketches)b::bytea[])
     AS k (project_id, event_type, dimension, day, kind, value, count, sketch)
ORDER BY k.project_id COLLATE "C", k.event_type COLLATE "C", k.dimension COLLATE "C", k.day,
         k.kind, k.value COLLATE "C"
"""
_TALLY_COLUMNS = "workspace_id, project_id, event_type, dimension, day, kind, value, count, sketch"
# A tally without new persons keeps its sketch; one with them is given its merged sketch.
_UPSERT_TALLIES = f"""
INSERT INTO eventcore.dims_day AS d ({_TALLY_COLUMNS})
{_TALLY_ROWS}
ON CONFLICT (workspace_id, project_id, event_type, dimension, day, kind, value)
DO UPDATE SET count = d.count + excluded.count, sketch = coalesce(excluded.sketch, d.sketch)
"""
# A rebuild's: a plain insert, so that a tally made twice (a day not counted whole) fails loudly.
_INSERT_TALLIES = f"INSERT INTO eventcore.dims_day ({_TALLY_COLUMNS}){_TALLY_ROWS}"

# A rebuild empties the workspace's count, sketch and tally rows, then counts every stored event
# of the workspace again, as appends count the new ones, makes each sketch again from the
# distinct persons of its hour's events (read grouped and in order, through a server-side
# cursor), and each declaring project's events' values and tallies from its events (see
# _retally).
_DELETE_COUNTS = (
    *(
        f"DELETE FROM eventcore.counts_{grain.value} WHERE workspace_id = %s"
        for grain in StoredGrain
    ),
    "DELETE FROM eventcore.users_hour WHERE workspace_id = %s",
    "DELETE FROM eventcore.users_day WHERE workspace_id = %s",
    "DELETE FROM eventcore.dims_day WHERE workspace_id = %s",
)
_RECOUNT = (
    "WITH"
    + _add_counts("eventcore.events WHERE workspace_id = %(workspace_id)s")
    + f"SELECT {_COUNTED} FROM per_minute"
)
_PERSONS_BY_HOUR = """
SELECT project_id, date_trunc('hour', event_time, 'UTC') AS bucket, type,
       array_agg(DISTINCT coalesce(user_id, anonymous_id))
FROM eventcore.events
WHERE workspace_id = %(workspace_id)s AND (user_id IS NOT NULL OR anonymous_id IS NOT NULL)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""
# The same, of one project's events in [start, end) (a deletion's recount: whole UTC days).
_IN_RANGE = (
    "workspace_id = %(workspace_id)s AND project_id = %(project_id)s"
    " AND event_time >= %(start)s AND event_time < %(end)s"
)
_PERSONS_BY_HOUR_IN_RANGE = f"""
SELECT project_id, date_trunc('hour', event_time, 'UTC') AS bucket, type,
       array_agg(DISTINCT coalesce(user_id, anonymous_id))
FROM eventcore.events
WHERE {_IN_RANGE} AND (user_id IS NOT NULL OR anonymous_id IS NOT NULL)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""
_DELETE_COUNTS_IN_RANGE = tuple(
    f"DELETE FROM eventcore.{table} WHERE workspace_id = %(workspace_id)s"
    f" AND project_id = %(project_id)s AND {column} >= %(start)s AND {column} < %(end)s"
    for table, column in (
        *((f"counts_{grain.value}", "bucket") for grain in StoredGrain),
        ("users_hour", "bucket"),
        ("users_day", "day"),
        ("dims_day", "day"),
    )
)
_RECOUNT_IN_RANGE = (
    "WITH"
    + _add_counts(f"eventcore.events WHERE {_IN_RANGE}")
    + f"SELECT {_COUNTED} FROM per_minute"
)
# A deletion: at most %(limit)s of the project's events that the selector takes, removed and
# returned; their ids are then kept in deleted_events.
_DELETE_SELECTED = f"""
DELETE FROM eventcore.events AS e
USING (
    SELECT event_id FROM eventcore.events
    WHERE {_IN_RANGE}
      AND (cardinality(%(user_ids)s::text[]) = 0 OR user_id = ANY(%(user_ids)s::text[])
           OR anonymous_id = ANY(%(user_ids)s::text[]))
      AND (cardinality(%(event_ids)s::text[]) = 0 OR event_id = ANY(%(event_ids)s::text[]))
    LIMIT %(limit)s
) AS taken
WHERE e.workspace_id = %(workspace_id)s AND e.project_id = %(project_id)s
  AND e.event_id = taken.event_id
RETURNING e.event_id, e.event_time
"""
# Expiry (eventcore.retention): at most %(limit)s of the project's events from %(start)s (the
# previous chunk's last event's time) and before %(before)s, oldest first (events_newest),
# removed; how many, and the first and last one's time. Starting where the previous chunk ended,
# the scan does not read again the index entries of every event the run deleted so far (dead
# until a vacuum): from the start, the chunks of a million events read the index pages of half
# a million deleted ones each on average (bench/README.md, "Retention").
_EXPIRE = """
WITH gone AS (
    DELETE FROM eventcore.events
    WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM eventcore.events
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND event_time >= %(start)s AND event_time < %(before)s
        ORDER BY event_time
        LIMIT %(limit)s))
      AND workspace_id = %(workspace_id)s AND project_id = %(project_id)s
      AND event_time < %(before)s
    RETURNING event_time
)
SELECT count(*), min(event_time), max(event_time) FROM gone
"""
# The project's count, sketch and tally rows of the days before %(until)s: whole days that
# expiry emptied, removed rather than recounted.
_DROP_DAYS = tuple(
    f"DELETE FROM eventcore.{table} WHERE workspace_id = %(workspace_id)s"
    f" AND project_id = %(project_id)s AND {column} < %(until)s"
    for table, column in (
        *((f"counts_{grain.value}", "bucket") for grain in StoredGrain),
        ("users_hour", "bucket"),
        ("users_day", "day"),
        ("dims_day", "day"),
    )
)
# Whether the cutoff's day still counts an event of a minute before the cutoff: only then was an
# event of it expired and its day not made again yet.
_COUNTS_EXPIRED = """
SELECT EXISTS (
    SELECT FROM eventcore.counts_minute
    WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
      AND bucket >= %(until)s AND bucket < %(before)s
)
"""
_DECLARED_PATHS = """
SELECT dimensions FROM eventcore.projects
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
"""
# The workspace's projects that declare dimensions now.
_DECLARING = """
SELECT project_id, dimensions FROM eventcore.projects
WHERE workspace_id = %s AND dimensions <> '{}'
ORDER BY project_id
"""
# One project's events in time order (events_newest), of [start, end) (every one for a whole
# rebuild), read through a server-side cursor.
_PROJECT_EVENTS = """
SELECT event_id, type, event_time, properties, user_id, anonymous_id, dim_values
FROM eventcore.events
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND event_time >= %(start)s AND event_time < %(end)s
ORDER BY event_time
"""
# The values that changed, written back by primary key.
_SET_VALUES = """
UPDATE eventcore.events AS e SET dim_values = v.dim_values
FROM unnest(%(event_ids)b::text[], %(dim_values)b::text[]) AS v (event_id, dim_values)
WHERE e.workspace_id = %(workspace_id)s AND e.project_id = %(project_id)s
  AND e.event_id = v.event_id
"""
# The events of the workspace whose project declares no dimensions now (or is gone) keep none.
_CLEAR_UNDECLARED = """
UPDATE eventcore.events SET dim_values = NULL
WHERE workspace_id = %(workspace_id)s AND dim_values IS NOT NULL
  AND project_id <> ALL(%(declaring)s::text[])
"""

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
        SELECT event_id, type, event_time, received_at, properties, seq, user_id, anonymous_id
        FROM eventcore.events
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          {"AND type = %(event_type)s" if filtered else ""}
          {"AND (event_time, seq) < (%(before_time)s, %(before_seq)s)" if paged else ""}
        ORDER BY event_time DESC, seq DESC LIMIT %(limit)s
    """
    for filtered in (False, True)
    for paged in (False, True)
}

# Oldest first from a position, in a window (an export's pages); keyed by (type filter, position).
_EXPORT_EVENTS = {
    (filtered, paged): f"""
        SELECT event_id, type, event_time, received_at, properties, seq, user_id, anonymous_id
        FROM eventcore.events
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          {"AND type = %(event_type)s" if filtered else ""}
          AND event_time >= %(start)s AND event_time < %(end)s
          {"AND (event_time, seq) > (%(after_time)s, %(after_seq)s)" if paged else ""}
        ORDER BY event_time, seq LIMIT %(limit)s
    """
    for filtered in (False, True)
    for paged in (False, True)
}

_USER_SKETCHES = """
SELECT bucket, sketch FROM eventcore.users_hour
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND bucket >= %(start)s AND bucket < %(end)s AND event_type = %(event_type)s
ORDER BY bucket
"""

# A unique-users window's read (EventStore.user_window), in one statement: the sketches of
# the whole UTC days in [first_day, last_day), then the window's hours: every one (hourly) or
# those outside the whole days (daily), with the estimate its append kept, and with its sketch
# only outside the whole days or where no estimate was kept; daily, also the hours' sketches
# of a whole day without a day sketch (stored before there were any: one probe a day). Hourly,
# such a day shows as hours without a day: the store reads their sketches afterwards
# (_DAY_HOUR_SKETCHES), which only data stored before day sketches needs (a join of every hour
# to its day's row cost 10 ms a 30-day window, in date_trunc alone). In no order (the core
# sorts the buckets): a sort would carry every day sketch through it.
_USER_WINDOW = """
SELECT day, true, NULL::int8, NULL::float8, sketch FROM eventcore.users_day
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND event_type = %(event_type)s AND day >= %(first_day)s AND day < %(last_day)s
UNION ALL
SELECT bucket, false, users, relative_error,
       CASE WHEN users IS NULL OR bucket < %(first_day)s OR bucket >= %(last_day)s
            THEN sketch END
FROM eventcore.users_hour
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND event_type = %(event_type)s AND bucket >= %(start)s AND bucket < %(end)s
  AND (%(hourly)s OR bucket < %(first_day)s OR bucket >= %(last_day)s)
UNION ALL
SELECT h.bucket, false, h.users, h.relative_error, h.sketch
FROM generate_series(%(first_day)s, %(last_day)s - interval '1 day', interval '1 day') AS g (day)
JOIN eventcore.users_hour AS h
  ON h.workspace_id = %(workspace_id)s AND h.project_id = %(project_id)s
 AND h.event_type = %(event_type)s AND h.bucket >= g.day AND h.bucket < g.day + interval '1 day'
WHERE NOT %(hourly)s AND NOT EXISTS (
    SELECT FROM eventcore.users_day AS d
    WHERE d.workspace_id = %(workspace_id)s AND d.project_id = %(project_id)s
      AND d.event_type = %(event_type)s AND d.day = g.day)
"""
# The hours' sketches of whole days that have no day sketch (stored before there were any).
_DAY_HOUR_SKETCHES = """
SELECT bucket, users, relative_error, sketch FROM eventcore.users_hour
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND event_type = %(event_type)s AND bucket >= %(first_day)s AND bucket < %(last_day)s
  AND date_trunc('day', bucket, 'UTC') = ANY(%(days)s::timestamptz[])
ORDER BY bucket
"""

_DIMENSION_TALLIES = """
SELECT day, kind, value, count, sketch FROM eventcore.dims_day
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND event_type = %(event_type)s AND dimension = %(dimension)s
  AND day >= %(start)s AND day < %(end)s
ORDER BY day, kind, value
"""
# A breakdown's read of the same tallies: the counts summed per kind and value in the database,
# and the sketches of only the values the answer lists (the first %(listed)s by count, kind and
# value, other left out; the value's collation "C" orders by code point, as the core does), each
# with its day (the core puts them in day order). Reading every tally with its sketch made the
# API decode about 1,500 rows and sum them in Python for 10 values' 300 sketches
# (bench/persons_phases.py). The listed tallies are fetched again by the ctid the sum saw: the
# same statement's snapshot, so the same row versions, read directly (a second scan of the
# window's 1,500 tallies to join them cost PostgreSQL 0.5 ms more).
_DIMENSION_TOTALS = """
WITH totals AS (
    SELECT kind, value, sum(count)::bigint AS count, array_agg(ctid) AS tallies
    FROM eventcore.dims_day
    WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
      AND event_type = %(event_type)s AND dimension = %(dimension)s
      AND day >= %(start)s AND day < %(end)s
    GROUP BY kind, value
), listed AS (
    SELECT kind, value, tallies FROM totals WHERE kind <> 2
    ORDER BY count DESC, kind, value LIMIT %(listed)s
)
SELECT t.kind, t.value, t.count, l.kind IS NOT NULL, NULL::bytea, NULL::timestamptz
FROM totals AS t LEFT JOIN listed AS l USING (kind, value)
UNION ALL
SELECT d.kind, d.value, NULL, NULL, d.sketch, d.day FROM eventcore.dims_day AS d
WHERE d.ctid = ANY(ARRAY(SELECT unnest(tallies) FROM listed))
  AND d.workspace_id = %(workspace_id)s AND d.project_id = %(project_id)s
  AND d.sketch IS NOT NULL
"""


@functools.lru_cache(maxsize=64)
def _filtered_events_sql(typed: bool, filters: int) -> str:
    """The events of a window (of one type, through events_newest_by_type, or of any, through
    events_newest) whose stored values match ``filters`` filters, each bound as the key of the
    values' JSON object (``->>`` takes it as it is: dots and all) and the text it must equal.
    The values are read as "" for an event stored without any."""
    return (
        "SELECT event_time, type, coalesce(user_id, anonymous_id), coalesce(dim_values, '')"
        " FROM eventcore.events"
        " WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s"
        + (" AND type = %(event_type)s" if typed else "")
        + " AND event_time >= %(start)s AND event_time < %(end)s"
        + "".join(f" AND dim_values::json ->> %(d{n})s = %(v{n})s" for n in range(filters))
        + " LIMIT %(limit)s"
    )


# The funnels' read. For a project declaring no dimensions, an index-only scan of
# events_persons_by_type (0006): its predicate is repeated word for word so that the planner can
# use the partial index. For one declaring some, an index scan (of that index or of
# events_newest_by_type, as the planner prefers) visits each event's heap row for its values (no
# index holds them: ten paths and values of 200 characters each would not fit an index row).
# The branch is chosen once, at run time, by the project's row (each branch's one-time filter):
# the other is never run. A project declaring none has no use for
# values (a funnel's `where` names declared dimensions only), so its events' are read as "",
# as a rebuild would make them. The person is a "C" text: code point order.
_PERSONS_PREDICATE = """workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND type = ANY(%(event_types)s) AND event_time >= %(start)s AND event_time < %(end)s
  AND (user_id IS NOT NULL OR anonymous_id IS NOT NULL)"""
_PERSON_EVENTS = f"""
WITH declaring AS MATERIALIZED (
    SELECT EXISTS (
        SELECT FROM eventcore.projects
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND dimensions <> '{{}}'
    ) AS yes
)
SELECT coalesce(user_id, anonymous_id) AS person, event_time, seq, type,
       coalesce(dim_values, '') AS dim_values
FROM eventcore.events
WHERE {_PERSONS_PREDICATE}
  AND (SELECT yes FROM declaring)
UNION ALL
SELECT coalesce(user_id, anonymous_id), event_time, seq, type, ''
FROM eventcore.events
WHERE {_PERSONS_PREDICATE}
  AND NOT (SELECT yes FROM declaring)
ORDER BY 1, 2, 3
LIMIT %(limit)s
"""


_FUNNEL_WORK_MEM = f"SET LOCAL work_mem = '{FUNNEL_SORT_MEMORY_MB}MB'"


# A reader per tuple of declared paths (making one makes a msgspec Struct type).
_reader_for = functools.lru_cache(maxsize=1024)(ValueReader)


def _counts_lock(workspace_id: str) -> int:
    """A stable 32-bit key for the workspace's counts lock (collisions only serialise more)."""
    digest = hashlib.blake2b(workspace_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _group_lock(group: DimensionGroup) -> int:
    """A stable 64-bit key for a tally group's lock (see _LOCK_GROUPS)."""
    text = "\x00".join(
        (
            group.workspace_id,
            group.project_id,
            group.event_type,
            group.dimension,
            str(int(group.day.timestamp())),
        )
    )
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# Each project's declared paths, as an append uses them (a project declaring none is left out).
Declared = dict[str, tuple[str, ...]]
_declared_of = msgspec.json.Decoder(dict[str, tuple[str, ...]])
_listed = msgspec.json.Decoder(list[tuple[str, str]])
# A group's values as the append statement answers them (the stored column: encode_values).
_decode_values = msgspec.json.Decoder(dict[str, str | None]).decode


def _append_parameters(
    workspace_id: str, batches: list[IngestBatch], declared: Declared, *, guessed: bool
) -> dict[str, Any]:
    """One workspace's events as parallel arrays, in input order; the persons' arrays only when
    an event has a person (then the statement is a ``persons`` one), the values' only when a
    project declares dimensions (a ``valued`` one). ``guessed``: ``declared`` is a guess the
    statement checks (see _append_statement), else what the projects' rows said."""
    project_ids: list[str] = []
    event_ids: list[str] = []
    timestamps: list[datetime] = []
    received: list[datetime] = []
    types: list[str] = []
    properties: list[str] = []
    user_ids: list[str | None] = []
    anonymous_ids: list[str | None] = []
    dim_values: list[str | None] = []
    for batch in batches:
        events = batch.events
        project_ids += [batch.project_id] * len(events)
        received += [batch.received_at] * len(events)
        event_ids += [event.id for event in events]
        timestamps += [event.timestamp for event in events]
        types += [event.type for event in events]
        properties += [str(event.properties, "utf-8") for event in events]
        user_ids += [event.user_id for event in events]
        anonymous_ids += [event.anonymous_id for event in events]
        paths = declared.get(batch.project_id)
        if paths:
            reader = _reader_for(paths)
            dim_values += [
                encode_values(dict(zip(paths, reader(bytes(event.properties)), strict=True)))
                for event in events
            ]
        else:
            dim_values += [None] * len(events)
    guess = list(dict.fromkeys(batch.project_id for batch in batches)) if guessed else []
    parameters: dict[str, Any] = {
        "workspace_id": workspace_id,
        "guess_projects": guess,
        "guess_dimensions": [
            msgspec.json.encode(declared.get(project_id, ())).decode() for project_id in guess
        ],
        "project_ids": project_ids,
        "event_ids": event_ids,
        "timestamps": timestamps,
        "received": received,
        "types": types,
        "properties": properties,
    }
    if user_ids.count(None) < len(user_ids) or anonymous_ids.count(None) < len(anonymous_ids):
        parameters["user_ids"] = user_ids
        parameters["anonymous_ids"] = anonymous_ids
    if any(declared.get(batch.project_id) for batch in batches):
        parameters["dim_values"] = dim_values
    return parameters


class _Appended(NamedTuple):
    """What one append statement answered (see _append_statement)."""

    inserted: int
    # Every project's declared dimensions, when the guess was wrong (then nothing was inserted).
    actual: Declared | None
    # (project, hour, type, persons) of the inserted events that have a person.
    persons: list[tuple[str, datetime, str, list[str]]]
    # (project, day, type, persons or None, values' JSON, count) of those that have values.
    groups: list[tuple[str, datetime, str, list[str] | None, str, int]]
    # (project, event id) of each inserted event in seq order, when the statement listed them.
    listed: list[tuple[str, str]]


def _appended(rows: Sequence[tuple[Any, ...]], *, valued: bool) -> _Appended:
    head = next(row for row in rows if row[0] is not None)
    actual = (
        None if head[2] is None else {p: d for p, d in _declared_of.decode(head[2]).items() if d}
    )
    persons = []
    groups = []
    listed: list[tuple[str, str]] = []
    for row in rows:
        if row[0] is not None:
            continue
        if row[1] is not None:
            listed = [(project_id, event_id) for project_id, event_id in _listed.decode(row[2])]
        elif valued and row[7] is not None:
            groups.append(row[3:])
        else:
            persons.append(row[3:7])
    return _Appended(head[0], actual, persons, groups, listed)


def _increments(
    workspace_id: str, rows: Iterable[tuple[str, datetime, str, list[str]]]
) -> dict[SketchKey, list[str]]:
    """The persons each sketch gains, from the append statement's rows: per (project, hour,
    type) as the statement grouped them, and per (project, hour) for every type, their union
    (the same as ``person_increments`` of the inserted events)."""
    increments: dict[SketchKey, list[str]] = {}
    every: dict[SketchKey, set[str]] = {}
    for project_id, bucket, event_type, persons in rows:
        increments[SketchKey(workspace_id, project_id, bucket, event_type)] = persons
        every.setdefault(SketchKey(workspace_id, project_id, bucket, ALL_TYPES), set()).update(
            persons
        )
    for key, union in every.items():
        increments[key] = list(union)
    days: dict[SketchKey, set[str]] = {}
    for key, persons in increments.items():
        days.setdefault(key.day, set()).update(persons)
    for key, union in days.items():
        increments[key] = list(union)
    return increments


def _sketch_arrays(
    workspace_id: str,
    keys: Sequence[SketchKey],
    sketches: Sequence[tuple[bytes, Estimate | None]] | None = None,
) -> dict[str, Any]:
    """The sketches' keys as parallel arrays; with ``sketches``, each one's bytes, and for an
    hour's its estimate."""
    parameters: dict[str, Any] = {
        "workspace_id": workspace_id,
        "project_ids": [key.project_id for key in keys],
        "buckets": [key.bucket for key in keys],
        "event_types": [key.event_type for key in keys],
    }
    if sketches is not None:
        parameters["sketches"] = [sketch for sketch, _ in sketches]
        if keys and keys[0].granularity is Granularity.HOUR:
            counted = [estimate for _, estimate in sketches]
            assert all(estimate is not None for estimate in counted)
            parameters["users"] = [estimate.users for estimate in counted if estimate]
            parameters["errors"] = [estimate.relative_error for estimate in counted if estimate]
    return parameters


def _tally_order(key: DimensionKey) -> tuple[str, str, str, str, datetime, int, str]:
    """dims_day's key order (code point order for text, as the "C" columns)."""
    return (
        key.workspace_id,
        key.project_id,
        key.event_type,
        key.dimension,
        key.day,
        key.kind,
        key.value,
    )


def _group_order(group: DimensionGroup) -> tuple[str, str, str, str, datetime]:
    """A group's place in dims_day's key order."""
    return group.workspace_id, group.project_id, group.event_type, group.dimension, group.day


def _group_arrays(workspace_id: str, groups: Sequence[DimensionGroup]) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "project_ids": [group.project_id for group in groups],
        "event_types": [group.event_type for group in groups],
        "dimensions": [group.dimension for group in groups],
        "days": [group.day for group in groups],
    }


def _tally_arrays(
    workspace_id: str,
    keys: Sequence[DimensionKey],
    rows: Sequence[tuple[int, bytes | None]] | None = None,
) -> dict[str, Any]:
    """The tallies' keys as parallel arrays; with ``rows``, each one's count and sketch."""
    parameters = _group_arrays(workspace_id, [key.group for key in keys])
    parameters["kinds"] = [int(key.kind) for key in keys]
    parameters["values"] = [key.value for key in keys]
    if rows is not None:
        parameters["counts"] = [count for count, _ in rows]
        parameters["sketches"] = [sketch for _, sketch in rows]
    return parameters


async def _append_rows(
    conn: Connection,
    workspace_id: str,
    batches: list[IngestBatch],
    declared: Declared,
    guessed: bool,
    listed: bool,
) -> _Appended:
    """One append statement, waited for."""
    parameters = _append_parameters(workspace_id, batches, declared, guessed=guessed)
    persons = "user_ids" in parameters
    valued = "dim_values" in parameters
    cursor = await conn.execute(_APPEND[(persons, valued, listed)], parameters, binary=True)
    return _appended(await cursor.fetchall(), valued=valued)


async def _add_persons_and_tallies(
    conn: Connection,
    workspace_id: str,
    persons: dict[SketchKey, list[str]],
    tallies: dict[DimensionKey, Tally],
) -> None:
    """Add the persons of the inserted events to the workspace's sketches and their values to
    its tallies, in the append's transaction, in one round trip: lock (making the missing) and
    read the sketch rows, lock the tally groups and read their kept values and the sketches of
    the tallies the events may add to; then merge here, and queue the writes, which leave with
    the transaction's next statement.

    The sketches read are every tally with persons, and the ``other`` of each group with a
    value with persons (a new value past the bound goes there): a superset of what the bound
    will leave, since the bound needs the kept values, read in the same round trip.
    """
    # Hours' rows locked before days' (the same order for every append), each in key order.
    keys = {
        grain: sorted(key for key in persons if key.granularity is grain)
        for grain in _SKETCH_TABLES
    }
    # The hours' sketches, the days', and what the new days' hours hold.
    sketch_reads: list[AsyncCursor[Any]] = []
    if persons:
        lookups = {grain: _sketch_arrays(workspace_id, some) for grain, some in keys.items()}
        for grain, lookup in lookups.items():
            await conn.execute(_LOCK_SKETCHES[grain], lookup)
        for statement, grain in (
            (_READ_SKETCHES[Granularity.HOUR], Granularity.HOUR),
            (_READ_SKETCHES[Granularity.DAY], Granularity.DAY),
            (_DAY_HOURS, Granularity.DAY),
        ):
            sketch_reads.append(await conn.execute(statement, lookups[grain], binary=True))
    known_rows = tally_rows = None
    groups: list[DimensionGroup] = []
    candidates: list[DimensionKey] = []
    if tallies:
        locks = sorted({_group_lock(key.group) for key in tallies})
        await conn.execute(_LOCK_GROUPS, {"keys": locks})
        # Only a group given a value may gain one: the others need no bound.
        groups = sorted({key.group for key in tallies if key.kind is Kind.VALUE}, key=_group_order)
        if groups:
            known_rows = await conn.execute(
                _KNOWN_VALUES, _group_arrays(workspace_id, groups), binary=True
            )
        wanted: set[DimensionKey] = set()
        for key, tally in tallies.items():
            if tally.persons:
                wanted.add(key)
                if key.kind is Kind.VALUE:
                    wanted.add(key._replace(kind=Kind.OTHER, value=""))
        candidates = sorted(wanted, key=_tally_order)
        if candidates:
            tally_rows = await conn.execute(
                _TALLY_SKETCHES, _tally_arrays(workspace_id, candidates), binary=True
            )
    if sketch_reads:
        hours, days = keys[Granularity.HOUR], keys[Granularity.DAY]
        hour_rows, day_rows, day_hour_rows = sketch_reads
        stored_hours = [row[0] for row in await hour_rows.fetchall()]
        stored_days = [row[0] for row in await day_rows.fetchall()]
        held: dict[int, list[bytes]] = {}
        for n, sketch in await day_hour_rows.fetchall():
            held.setdefault(n, []).append(sketch)
        starts = {days[n - 1]: day_sketch_of_hours(found) for n, found in held.items()}
        made_hours = [
            add_persons_estimated(sketch or None, persons[key])
            for key, sketch in zip(hours, stored_hours, strict=True)
        ]
        made_days: list[tuple[bytes, Estimate | None]] = [
            (add_persons(sketch or starts.get(key), persons[key]), None)
            for key, sketch in zip(days, stored_days, strict=True)
        ]
        for grain, some, made in (
            (Granularity.HOUR, hours, made_hours),
            (Granularity.DAY, days, made_days),
        ):
            await conn.execute(_WRITE_SKETCHES[grain], _sketch_arrays(workspace_id, some, made))
    if tallies:
        known: dict[DimensionGroup, set[str]] = {}
        if known_rows is not None:
            for n, value in await known_rows.fetchall():
                known.setdefault(groups[n - 1], set()).add(value)
        sketches: dict[DimensionKey, bytes] = {}
        if tally_rows is not None:
            sketches = {candidates[n - 1]: sketch for n, sketch in await tally_rows.fetchall()}
        added = bounded(tallies, known)
        order = sorted(added, key=_tally_order)
        rows = [
            (
                added[key].count,
                (
                    add_value_persons(sketches.get(key), added[key].persons)
                    if added[key].persons
                    else None
                ),
            )
            for key in order
        ]
        await conn.execute(_UPSERT_TALLIES, _tally_arrays(workspace_id, order, rows))


class Events(Database):
    """The EventStore half of the PostgreSQL store."""

    _before_commit: Callable[[], None] | None
    # Per project, the cutoff of the expiry run under way in this process and the time of the
    # last event its latest full chunk deleted: where its next chunk's scan starts.
    _expiry_resume: dict[tuple[str, str], tuple[datetime, datetime]]

    async def append(self, batches: Sequence[IngestBatch], *, listed: bool = False) -> AppendResult:
        # One CLIENT span per transaction: the worker's trace shows what the commit cost.
        with _tracer.start_as_current_span(
            "postgresql append",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "postgresql", "db.operation.name": "append"},
        ) as span:
            result = await self._append(batches, listed)
            span.set_attribute("eventcore.inserted", result.inserted)
            span.set_attribute("eventcore.duplicates", result.duplicates)
            return result

    async def _append(self, batches: Sequence[IngestBatch], listed: bool) -> AppendResult:
        by_workspace: dict[str, list[IngestBatch]] = {}
        total = 0
        for batch in batches:
            if batch.events:
                by_workspace.setdefault(batch.workspace_id, []).append(batch)
                total += len(batch.events)
        if not total:
            return AppendResult(0, 0)
        inserted = 0
        stored: list[IdempotencyKey] = []
        # Pipelined: BEGIN and each workspace's tenant setting leave with its append, a
        # workspace's sketch and tally writes with the next one's append (or with the COMMIT).
        # Round trips: one per workspace, one more for a workspace whose inserted events have
        # persons or values (to lock and read its sketches and tallies), one more for a
        # workspace whose projects' dimensions this process guessed wrong, and the COMMIT's.
        async with self._connection() as conn, pipelined_transaction(conn) as pipeline:
            # Workspaces in one order for every writer: see _append_statement on lock order.
            for workspace_id in sorted(by_workspace):
                await conn.execute(
                    _SET_TENANT_FOR_COUNTS,
                    (workspace_id, _COUNTS_LOCK_CLASS, _counts_lock(workspace_id)),
                )
                answer = await self._append_workspace(
                    conn, workspace_id, by_workspace[workspace_id], listed
                )
                inserted += answer.inserted
                stored += (IdempotencyKey(workspace_id, *pair) for pair in answer.listed)
            if self._before_commit is not None:
                # Every statement executed, none committed: what the hook promises.
                await pipeline.sync()
                self._before_commit()
        return AppendResult(inserted, total - inserted, tuple(stored))

    async def _append_workspace(
        self, conn: Connection, workspace_id: str, batches: list[IngestBatch], listed: bool
    ) -> _Appended:
        """Store one workspace's events and add the inserted ones to its counts, sketches and
        tallies; what its append statement answered."""
        declared: Declared = {}
        for batch in batches:
            paths = self._dimensions.get((workspace_id, batch.project_id))
            if paths:
                declared[batch.project_id] = paths
        answer = await _append_rows(conn, workspace_id, batches, declared, True, listed)
        if answer.actual is not None:
            # The guess was wrong, nothing was inserted: again with the projects' own.
            declared = answer.actual
            for project_id in dict.fromkeys(batch.project_id for batch in batches):
                self._remember_dimensions(workspace_id, project_id, declared.get(project_id, ()))
            answer = await _append_rows(conn, workspace_id, batches, declared, False, listed)
            assert answer.actual is None
        persons = _increments(workspace_id, answer.persons)
        tallies: dict[DimensionKey, Tally] = {}
        for project_id, day, event_type, group_persons, values, count in answer.groups:
            paths = declared[project_id]
            found = _decode_values(values)
            add_group(
                tallies,
                ProjectRef(workspace_id, project_id),
                paths,
                ValueGroup(
                    day,
                    event_type,
                    tuple(found[path] for path in paths),
                    count,
                    group_persons or (),
                ),
            )
        if persons or tallies:
            await _add_persons_and_tallies(conn, workspace_id, persons, tallies)
        return answer

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
            CountPoint, query, parameters, workspace_id=workspace_id, binary=True, read=True
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
            EventTypeCount,
            _TYPE_TOTALS,
            parameters,
            workspace_id=workspace_id,
            binary=True,
            read=True,
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
            StoredEvent, query, parameters, workspace_id=workspace_id, binary=True, read=True
        )

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
        parameters: dict[str, Any] = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "start": start,
            "end": end,
            "limit": max(limit, 0),
            "event_type": event_type,
        }
        if after is not None:
            parameters["after_time"] = after.timestamp
            parameters["after_seq"] = after.seq
        query = _EXPORT_EVENTS[(event_type is not None, after is not None)]
        return await self._query(
            StoredEvent, query, parameters, workspace_id=workspace_id, binary=True, read=True
        )

    async def user_sketches(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[tuple[datetime, bytes]]:
        parameters = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "start": start,
            "end": end,
            "event_type": ALL_TYPES if event_type is None else event_type,
        }
        return await self._query(
            _hour_sketch,
            _USER_SKETCHES,
            parameters,
            workspace_id=workspace_id,
            binary=True,
            read=True,
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
        if not event_types:
            return []
        parameters = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "event_types": list(event_types),
            "start": start,
            "end": end,
            "limit": limit,
        }
        # Planned for its own window and types each time: the generic plan PostgreSQL keeps
        # for a prepared statement guesses a handful of rows and reads the heap through the
        # wrong index (128 ms instead of 53 for 56,000 events, bench/persons_phases.py). The
        # sort by person is given the memory to stay off disk (at the default 4 MB, 56,000
        # events spilled about 3 MB to disk); the setting leaves with the query.
        return await self._query(
            PersonEvent,
            _PERSON_EVENTS,
            parameters,
            workspace_id=workspace_id,
            binary=True,
            prepare=False,
            setting=_FUNNEL_WORK_MEM,
            read=True,
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
        parameters = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "event_type": ALL_TYPES if event_type is None else event_type,
            "dimension": dimension,
            "start": start,
            "end": end,
        }
        return await self._query(
            _dimension_tally,
            _DIMENSION_TALLIES,
            parameters,
            workspace_id=workspace_id,
            binary=True,
            read=True,
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
        parameters = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "event_type": ALL_TYPES if event_type is None else event_type,
            "dimension": dimension,
            "start": start,
            "end": end,
            "listed": listed,
        }
        rows = await self._query(
            _total_row,
            _DIMENSION_TOTALS,
            parameters,
            workspace_id=workspace_id,
            binary=True,
            read=True,
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
        parameters: dict[str, Any] = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "event_type": event_type,
            "start": start,
            "end": end,
            "limit": limit,
        }
        for n, w in enumerate(where):
            parameters[f"d{n}"] = w.dimension
            parameters[f"v{n}"] = w.value
        query = _filtered_events_sql(event_type is not None, len(where))
        return await self._query(
            FilteredEvent, query, parameters, workspace_id=workspace_id, binary=True, read=True
        )

    async def user_window(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        granularity: Granularity,
        event_type: str | None = None,
    ) -> list[StoredSketch]:
        first_day, last_day = whole_days(start, end)
        parameters = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "start": start,
            "end": end,
            "first_day": first_day,
            "last_day": last_day,
            "hourly": granularity is Granularity.HOUR,
            "event_type": ALL_TYPES if event_type is None else event_type,
        }
        rows = await self._query(
            _stored_sketch,
            _USER_WINDOW,
            parameters,
            workspace_id=workspace_id,
            binary=True,
            read=True,
        )
        if granularity is Granularity.DAY:
            return rows
        days = {row.bucket for row in rows if row.granularity is Granularity.DAY}
        # The session is in UTC: an hour's day is the hour at midnight.
        uncovered = {
            row.bucket.replace(hour=0)
            for row in rows
            if row.sketch is None and row.bucket.replace(hour=0) not in days
        }
        if not uncovered:
            return rows
        # Whole days without a day sketch (stored before there were any): their hours'
        # sketches stand for them. A read of its own: those hours were stored before their day
        # had a sketch, and an append since then that made one leaves them as they were.
        hours = await self._query(
            lambda bucket, *rest: _stored_sketch(bucket, False, *rest),
            _DAY_HOUR_SKETCHES,
            {**parameters, "days": sorted(uncovered)},
            workspace_id=workspace_id,
            binary=True,
            read=True,
        )
        inside = {row.bucket for row in hours}
        kept = [
            row for row in rows if row.granularity is Granularity.DAY or row.bucket not in inside
        ]
        return kept + hours

    async def delete_events(
        self, workspace_id: str, project_id: str, selector: EventSelector, *, limit: int
    ) -> int:
        start, end = selector.start or EARLIEST, selector.end or LATEST
        async with self._connection() as conn, conn.transaction():
            # The workspace's counts lock, exclusive: no append adds to a bucket while its rows
            # are made again (appends take it shared).
            await conn.execute(
                _SET_TENANT_FOR_REBUILD,
                (workspace_id, _COUNTS_LOCK_CLASS, _counts_lock(workspace_id)),
            )
            cursor = await conn.execute(
                _DELETE_SELECTED,
                {
                    **_range(workspace_id, project_id, start, end),
                    "user_ids": list(selector.user_ids),
                    "event_ids": list(selector.event_ids),
                    "limit": max(limit, 0),
                },
            )
            deleted = await cursor.fetchall()
            if not deleted:
                return 0
            await conn.execute(
                KEEP_DELETED,
                {
                    "workspace_id": workspace_id,
                    "project_id": project_id,
                    "event_ids": [event_id for event_id, _ in deleted],
                    "at": datetime.now(UTC),
                },
            )
            first = min(moment for _, moment in deleted)
            last = max(moment for _, moment in deleted)
            await _recount_days(conn, workspace_id, project_id, first, last)
        return len(deleted)

    async def expire_events(
        self, workspace_id: str, project_id: str, before: datetime, *, limit: int
    ) -> int:
        limit = max(limit, 0)
        cutoff_day = bucket_start(before, Granularity.DAY)
        scope = {"workspace_id": workspace_id, "project_id": project_id, "before": before}
        lock = (workspace_id, _COUNTS_LOCK_CLASS, _counts_lock(workspace_id))
        # Where this process's previous full chunk of the same run ended: only where the scan
        # starts. Whatever is left before it (an event an append committed meanwhile) is taken
        # by the same chunk once the rest is exhausted, so that a run never ends without a
        # chunk that scanned from the start and came back short.
        resume = self._expiry_resume.pop((workspace_id, project_id), None)
        start = resume[1] if resume is not None and resume[0] == before else EARLIEST
        async with self._connection() as conn, conn.transaction():
            # The counts lock shared, as appends take it: a chunk neither waits for the
            # workspace's appends nor holds them up; only a rebuild or a recount excludes it.
            await conn.execute(_SET_TENANT_FOR_EXPIRY, lock)
            cursor = await conn.execute(_EXPIRE, {**scope, "start": start, "limit": limit})
            row = await cursor.fetchone()
            assert row is not None
            deleted, first, last = int(row[0]), row[1], row[2]
            if deleted < limit and start != EARLIEST:
                cursor = await conn.execute(
                    _EXPIRE, {**scope, "start": EARLIEST, "limit": limit - deleted}
                )
                row = await cursor.fetchone()
                assert row is not None
                if row[0]:
                    first = row[1] if first is None else min(first, row[1])
                    last = row[2] if last is None else max(last, row[2])
                    deleted += int(row[0])
            if deleted and deleted == limit:
                self._expiry_resume[workspace_id, project_id] = (before, last)
                # Oldest first: every day before the last deleted event's has none left. A chunk
                # within one day empties none (the chunk that reached the day dropped the rows
                # before it): it leaves the rows alone, rather than read past them again.
                until = min(cutoff_day, bucket_start(last, Granularity.DAY))
                if bucket_start(first, Granularity.DAY) < until:
                    for statement in _DROP_DAYS:
                        await conn.execute(statement, {**scope, "until": until})
                return deleted
        # None left: every whole day's rows go, and the cutoff's day is made again if it still
        # counts expired events, in a transaction of its own holding the counts lock exclusive
        # (no append adds to the day while it is recounted), as a deletion's recount does.
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_SET_TENANT_FOR_REBUILD, lock)
            for statement in _DROP_DAYS:
                await conn.execute(statement, {**scope, "until": cutoff_day})
            cursor = await conn.execute(_COUNTS_EXPIRED, {**scope, "until": cutoff_day})
            stale = await cursor.fetchone()
            if stale is not None and stale[0]:
                await _recount_days(conn, workspace_id, project_id, cutoff_day, cutoff_day)
        return deleted

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
        """Recount one workspace in one transaction: (events counted, count, sketch and tally
        rows replaced)."""
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
            await _resketch(conn, workspace_id)
            cursor = await conn.execute(_DECLARING, (workspace_id,))
            declaring = [
                (project_id, tuple(paths)) for project_id, paths in await cursor.fetchall()
            ]
            for project_id, paths in declaring:
                await _retally(conn, workspace_id, project_id, paths)
            await conn.execute(
                _CLEAR_UNDECLARED,
                {"workspace_id": workspace_id, "declaring": [p for p, _ in declaring]},
            )
        assert row is not None
        counted: int = row[0]
        return counted, replaced


def _range(workspace_id: str, project_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {"workspace_id": workspace_id, "project_id": project_id, "start": start, "end": end}


async def _recount_days(
    conn: Connection, workspace_id: str, project_id: str, first: datetime, last: datetime
) -> None:
    """Make the project's counts, sketches and tallies of the UTC days from ``first``'s to
    ``last``'s again from the events they hold now, as a rebuild makes them: whole days, so
    that every bucket and every day's bounded values are recounted whole."""
    start = bucket_start(first, Granularity.DAY)
    end = bucket_start(last, Granularity.DAY) + timedelta(days=1)
    scope = _range(workspace_id, project_id, start, end)
    for statement in _DELETE_COUNTS_IN_RANGE:
        await conn.execute(statement, scope)
    await conn.execute(_RECOUNT_IN_RANGE, scope)
    await _resketch(conn, workspace_id, (workspace_id, project_id, start, end))
    cursor = await conn.execute(_DECLARED_PATHS, scope)
    row = await cursor.fetchone()
    if row is not None and row[0]:
        await _retally(conn, workspace_id, project_id, tuple(row[0]), start, end)


def _hour_sketch(bucket: datetime, sketch: bytes) -> tuple[datetime, bytes]:
    return bucket, sketch


def _stored_sketch(
    bucket: datetime, whole_day: bool, users: int | None, error: float | None, sketch: bytes | None
) -> StoredSketch:
    if whole_day:
        return StoredSketch(bucket, Granularity.DAY, None, sketch)
    counted = None if users is None or error is None else Estimate(users, error)
    return StoredSketch(bucket, Granularity.HOUR, counted, sketch)


async def _rebuilt_sketches(
    conn: Connection, workspace_id: str, scope: tuple[str, str, datetime, datetime] | None = None
) -> AsyncIterator[tuple[SketchKey, tuple[bytes, Estimate]]]:
    """Every sketch of the workspace made again from its events (``sketch_of``, as the core's
    rebuild): per (project, hour) and per (project, UTC day), one per type and one of every type
    together. The rows come grouped by (project, hour, type) with their distinct persons, in
    that order, through a server-side cursor: only one day's persons are held at a time."""
    async with conn.cursor("eventcore_rebuild_persons", binary=True) as cursor:
        cursor.itersize = _REBUILD_CHUNK
        if scope is None:
            await cursor.execute(_PERSONS_BY_HOUR, {"workspace_id": workspace_id})
        else:
            await cursor.execute(_PERSONS_BY_HOUR_IN_RANGE, _range(*scope))
        hour: SketchKey | None = None
        everyone: set[str] = set()
        day: dict[SketchKey, set[str]] = {}
        async for project_id, bucket, event_type, persons in cursor:
            key = SketchKey(workspace_id, project_id, bucket, event_type)
            if hour is None or hour[:3] != key[:3]:
                if hour is not None:
                    yield hour, sketch_estimated(everyone)
                    if hour.day.bucket != key.day.bucket or hour.project_id != project_id:
                        for made in day.items():
                            yield made[0], sketch_estimated(made[1])
                        day = {}
                hour = key._replace(event_type=ALL_TYPES)
                everyone = set()
            everyone.update(persons)
            day.setdefault(key.day, set()).update(persons)
            day.setdefault(hour.day, set()).update(persons)
            yield key, sketch_estimated(persons)
        if hour is not None:
            yield hour, sketch_estimated(everyone)
            for made in day.items():
                yield made[0], sketch_estimated(made[1])


async def _resketch(
    conn: Connection, workspace_id: str, scope: tuple[str, str, datetime, datetime] | None = None
) -> None:
    """Write every sketch of the workspace (or of one project's [start, end): ``scope``) made
    again from its events, ``_REBUILD_CHUNK`` rows a statement."""
    pending: dict[Granularity, list[tuple[SketchKey, tuple[bytes, Estimate]]]] = {
        grain: [] for grain in _SKETCH_TABLES
    }
    async for made in _rebuilt_sketches(conn, workspace_id, scope):
        some = pending[made[0].granularity]
        some.append(made)
        if len(some) >= _REBUILD_CHUNK:
            await _insert_sketches(conn, workspace_id, some)
            some.clear()
    for some in pending.values():
        if some:
            await _insert_sketches(conn, workspace_id, some)


async def _insert_sketches(
    conn: Connection,
    workspace_id: str,
    made: Sequence[tuple[SketchKey, tuple[bytes, Estimate]]],
) -> None:
    """Rows of one table (hours' or days'), new: a plain insert, so that a sketch made twice
    (a rebuild's run not a whole day) fails loudly."""
    keys = [key for key, _ in made]
    sketches = [sketch for _, sketch in made]
    grain = keys[0].granularity
    await conn.execute(_INSERT_SKETCHES[grain], _sketch_arrays(workspace_id, keys, sketches))


def _total_row(
    kind: int,
    value: str,
    count: int | None,
    listed: bool | None,
    sketch: bytes | None,
    day: datetime | None,
) -> TotalRow:
    return kind, value, count, listed, sketch, day


def _dimension_tally(
    day: datetime, kind: int, value: str, count: int, sketch: bytes | None
) -> DimensionTally:
    return DimensionTally(day, Kind(kind), value, count, sketch)


def _day_of(event: Event) -> datetime:
    return bucket_start(event.timestamp, Granularity.DAY)


async def _retally(
    conn: Connection,
    workspace_id: str,
    project_id: str,
    paths: tuple[str, ...],
    start: datetime = EARLIEST,
    end: datetime = LATEST,
) -> None:
    """Make one project's events' values again for ``paths`` (writing back those that changed,
    ``_REBUILD_CHUNK`` at a time) and its tallies from them. The events come in time order
    through a server-side cursor: memory holds one day's tallies (see _DayTallies) and a chunk
    of rows."""
    days = _DayTallies(conn, workspace_id, project_id, paths)
    changed: list[tuple[str, str]] = []
    events: list[Event] = []
    read: list[Values] = []
    reader = _reader_for(paths)
    async with conn.cursor("eventcore_rebuild_values", binary=True) as cursor:
        cursor.itersize = _REBUILD_CHUNK
        await cursor.execute(_PROJECT_EVENTS, _range(workspace_id, project_id, start, end))
        async for (
            event_id,
            event_type,
            event_time,
            properties,
            user_id,
            anonymous,
            stored,
        ) in cursor:
            found = reader(bytes(properties))
            values = encode_values(dict(zip(paths, found, strict=True)))
            if values != stored:
                changed.append((event_id, values))
                if len(changed) >= _REBUILD_CHUNK:
                    await _set_values(conn, workspace_id, project_id, changed)
                    changed = []
            events.append(Event(event_id, event_type, event_time, properties, user_id, anonymous))
            read.append(found)
            if len(events) >= _REBUILD_CHUNK:
                await days.add(events, read)
                events = []
                read = []
    await days.add(events, read)
    await days.flush()
    if changed:
        await _set_values(conn, workspace_id, project_id, changed)


class _DayTallies:
    """A rebuild's tallies of one project, one day at a time: a day's values are all counted
    before the bound keeps its most frequent (``bounded`` with nothing known, as for a new
    day's first values), and stored when the events (in time order) reach the next day."""

    def __init__(
        self, conn: Connection, workspace_id: str, project_id: str, paths: tuple[str, ...]
    ) -> None:
        self._conn = conn
        self._workspace_id = workspace_id
        self._project_id = project_id
        self._declared = {(workspace_id, project_id): paths}
        self._day: datetime | None = None
        self._tallies: dict[DimensionKey, Tally] = {}

    async def add(self, events: Sequence[Event], values: Sequence[Values]) -> None:
        """Count ``events`` (in time order), whose values are ``values``."""
        pairs = zip(events, values, strict=True)
        for day, run in groupby(pairs, key=lambda pair: _day_of(pair[0])):
            if day != self._day:
                await self.flush()
                self._day = day
            ran = list(run)
            batch = IngestBatch(
                self._workspace_id, self._project_id, day, [event for event, _ in ran]
            )
            known = [[found for _, found in ran]]
            for key, tally in dimension_increments([batch], self._declared, known).items():
                current = self._tallies.get(key)
                if current is None:
                    self._tallies[key] = tally
                else:
                    current.count += tally.count
                    current.persons |= tally.persons

    async def flush(self) -> None:
        await _put_tallies(self._conn, self._workspace_id, self._tallies)
        self._tallies = {}


async def _set_values(
    conn: Connection, workspace_id: str, project_id: str, changed: Sequence[tuple[str, str]]
) -> None:
    await conn.execute(
        _SET_VALUES,
        {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "event_ids": [event_id for event_id, _ in changed],
            "dim_values": [values for _, values in changed],
        },
        binary=True,
    )


async def _put_tallies(
    conn: Connection, workspace_id: str, tallies: dict[DimensionKey, Tally]
) -> None:
    """Store one (project, day)'s tallies, counted whole, bounded as new values would be, at
    most ``_REBUILD_CHUNK`` rows a statement."""
    made = bounded(tallies, {})
    order = sorted(made, key=_tally_order)
    for start in range(0, len(order), _REBUILD_CHUNK):
        keys = order[start : start + _REBUILD_CHUNK]
        rows = [
            (
                made[key].count,
                add_value_persons(None, made[key].persons) if made[key].persons else None,
            )
            for key in keys
        ]
        await conn.execute(_INSERT_TALLIES, _tally_arrays(workspace_id, keys, rows), binary=True)
