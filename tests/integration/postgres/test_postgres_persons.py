"""Persons on a real server: exact sketches under concurrency, the funnels' index, the upgrade."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import Raw
from psycopg.pq import TransactionStatus
from tests.integration.postgres.conftest import T0
from tests.support.postgres import (
    app_connection,
    delete_counts,
    fresh_database,
    owner_connection,
    persons_from_events,
    recount_from_events,
    stored_counts,
    stored_persons,
    truncate_tables,
)

import eventcore.adapters.postgres.schema as schema
from eventcore.adapters.memory import MemoryStore
from eventcore.adapters.postgres import PostgresStore, migrate
from eventcore.adapters.postgres._database import SET_TENANT
from eventcore.adapters.postgres._events import _PERSON_EVENTS, _REBUILD_CHUNK
from eventcore.aggregation import Granularity
from eventcore.events import Event, IngestBatch
from eventcore.persons import estimate, window_user_series
from eventcore.ports import AppendResult, Recount

pytestmark = pytest.mark.integration

EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def event(
    event_id: str,
    event_type: str = "page_view",
    minutes: float = 0,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
) -> Event:
    return Event(
        event_id,
        event_type,
        T0 + timedelta(minutes=minutes),
        Raw(b"{}"),
        user_id=user_id,
        anonymous_id=anonymous_id,
    )


def batch(workspace_id: str, project_id: str, *events: Event) -> IngestBatch:
    return IngestBatch(workspace_id, project_id, T0 + timedelta(hours=1), list(events))


async def memory_sketches(memory: MemoryStore) -> dict[Any, int]:
    return {key: estimate([sketch]).users for key, sketch in memory.sketches.items()}


PERSONS = st.sampled_from([None, "u-1", "u-2", "ü-3", "U-1", "a" * 128])
EVENTS = st.builds(
    event,
    st.sampled_from([f"e{n}" for n in range(8)]),
    st.sampled_from(["page_view", "click", "ärger"]),
    st.integers(-90, 150).map(lambda m: m / 2),  # half-minutes around two hour boundaries
    user_id=PERSONS,
    anonymous_id=PERSONS,
)
BATCHES = st.builds(
    lambda workspace_id, project_id, events: batch(workspace_id, project_id, *events),
    st.sampled_from(["ws-a", "ws-b"]),
    st.sampled_from(["web", "app"]),
    st.lists(EVENTS, max_size=6),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(calls=st.lists(st.lists(BATCHES, min_size=1, max_size=4), min_size=1, max_size=3))
async def test_sketches_count_exactly_the_distinct_persons_of_the_stored_events(
    postgres_dsn: str, store: PostgresStore, calls: list[list[IngestBatch]]
) -> None:
    """After any appends (resends, equal ids, mixed workspaces, events with and without persons),
    every sketch holds the distinct persons a SQL count of the events finds, like memory's, and
    no placeholder is left behind."""
    await truncate_tables(postgres_dsn)
    memory = MemoryStore()

    for call in calls:
        assert await store.append(call) == await memory.append(call)

    sketched = await stored_persons(postgres_dsn)
    assert sketched == await persons_from_events(postgres_dsn)
    assert sketched == await memory_sketches(memory)
    async with owner_connection(postgres_dsn) as owner:
        cursor = await owner.execute("SELECT count(*) FROM eventcore.users_hour WHERE sketch = ''")
        assert await cursor.fetchone() == (0,)


async def test_concurrent_appends_with_persons_neither_deadlock_nor_lose_a_person(
    postgres_dsn: str,
) -> None:
    """Writers appending overlapping events with persons in opposite orders, over several
    workspaces, with rebuilds among them, leave every sketch and count exact: no lost update of
    a sketch, no deadlock between the count and sketch locks."""
    await truncate_tables(postgres_dsn)
    each = 300
    workspaces = ("ws-a", "ws-b", "ws-c")

    def events(writer: int) -> list[Event]:
        # Shared ids (the overlap) and ids of this writer alone (each adds persons of its own).
        return [
            event(
                f"e{n}" if n % 2 else f"w{writer}-e{n}",
                ("a", "b")[n % 2],
                minutes=n % 130,
                user_id=f"user-{writer}-{n % 40}" if n % 3 else None,
                anonymous_id=f"anon-{n % 25}",
            )
            for n in range(each)
        ]

    def call(writer: int) -> list[IngestBatch]:
        batches = [batch(ws, project, *events(writer)) for ws in workspaces for project in "xy"]
        return (
            batches
            if writer % 2
            else [
                batch(b.workspace_id, b.project_id, *reversed(b.events)) for b in reversed(batches)
            ]
        )

    async with await PostgresStore.open(postgres_dsn, max_size=6) as store:
        for round_ in range(3):
            results = await asyncio.gather(
                *(store.append(call(writer)) for writer in range(4)),
                store.rebuild_counts("ws-b" if round_ % 2 else None),
            )
            appended = [r for r in results if isinstance(r, AppendResult)]
            assert all(r.inserted + r.duplicates == 6 * each for r in appended)

    assert await stored_persons(postgres_dsn) == await persons_from_events(postgres_dsn)
    assert await stored_counts(postgres_dsn) == await recount_from_events(postgres_dsn)


async def test_sketches_past_the_inline_size_are_stored_lz4_compressed(
    postgres_dsn: str, store: PostgresStore
) -> None:
    """Migration 0008: an hour's sketch in HLL mode (16 KiB) and a declared value's (4 KiB) are
    stored compressed with lz4 (the appends rewrite them; pglz cost 4 times the CPU), and read
    back to the same answers."""
    await truncate_tables(postgres_dsn)
    async with owner_connection(postgres_dsn) as owner:
        await owner.execute(
            "INSERT INTO eventcore.projects (workspace_id, project_id, name, created_at,"
            " dimensions) VALUES ('ws-a', 'web', 'Web', %s, '{plan}')",
            (T0,),
        )
    events = [
        Event(
            f"e{n}",
            "page_view",
            T0 + timedelta(seconds=n),
            Raw(b'{"plan":"pro"}'),
            user_id=f"person-{n}",
        )
        for n in range(3000)
    ]
    assert await store.append([batch("ws-a", "web", *events)]) == AppendResult(3000, 0)
    async with owner_connection(postgres_dsn) as owner:
        cursor = await owner.execute(
            "SELECT 'users_hour', pg_column_compression(sketch), length(sketch)"
            " FROM eventcore.users_hour"
            " UNION ALL SELECT 'dims_day', pg_column_compression(sketch), length(sketch)"
            " FROM eventcore.dims_day WHERE sketch IS NOT NULL AND kind = 0"
        )
        rows = await cursor.fetchall()
    assert {(table, method) for table, method, _ in rows} == {
        ("users_hour", "lz4"),
        ("dims_day", "lz4"),
    }
    assert max(size for _, _, size in rows) > 16_000
    hours = await store.user_sketches("ws-a", "web", *EVERYTHING, "page_view")
    found = estimate(sketch for _, sketch in hours)
    assert abs(found.users - 3000) <= 3 * found.relative_error * 3000


async def test_a_resend_writes_no_sketch_row_and_a_batch_without_persons_none(
    postgres_dsn: str, store: PostgresStore
) -> None:
    """A redelivered batch leaves every sketch row as it was (not even a new row version), and a
    batch whose events have no person makes no sketch row at all."""
    sent = [event(f"e{n}", minutes=n, user_id=f"u{n % 3}") for n in range(10)]
    await store.append([batch("ws-a", "web", *sent)])

    async def versions() -> list[tuple[Any, ...]]:
        async with owner_connection(postgres_dsn) as owner:
            cursor = await owner.execute(
                "SELECT workspace_id, project_id, bucket, event_type, xmin::text, ctid::text"
                " FROM eventcore.users_hour ORDER BY 1, 2, 3, 4"
            )
            return await cursor.fetchall()

    before = await versions()
    assert len(before) == 2  # page_view and every type, one hour

    assert await store.append([batch("ws-a", "web", *sent)]) == AppendResult(0, 10)
    nobody = [event(f"n{n}", "click", minutes=90 + n) for n in range(10)]
    assert await store.append([batch("ws-a", "web", *nobody)]) == AppendResult(10, 0)

    assert await versions() == before
    listed = await store.list_events("ws-a", "web", limit=100)
    assert {e.id: e.person for e in listed} == {
        **{e.id: e.user_id for e in sent},
        **{e.id: None for e in nobody},
    }


async def test_a_rebuild_makes_every_sketch_again_in_chunks(
    postgres_dsn: str, store: PostgresStore
) -> None:
    """A rebuild of more sketch rows than one chunk, after the sketches were damaged, gives the
    SQL count of distinct persons for every row again, and reports the rows it replaced."""
    hours = _REBUILD_CHUNK // 2 + 10  # two types and every type: three rows an hour
    events = [
        event(f"e{n}", ("a", "b")[n % 2], minutes=30 * n, user_id=f"u{n % 11}")
        for n in range(2 * hours)
    ]
    await store.append([batch("ws-a", "web", *events)])
    exact = await persons_from_events(postgres_dsn)
    assert len(exact) > _REBUILD_CHUNK
    async with owner_connection(postgres_dsn) as owner:
        # Every sketch made the first hour's, and one of a workspace without events.
        await owner.execute(
            "UPDATE eventcore.users_hour SET sketch = (SELECT sketch FROM eventcore.users_hour"
            " ORDER BY bucket LIMIT 1)"
        )
        await owner.execute(
            "INSERT INTO eventcore.users_hour SELECT 'ws-gone', project_id, bucket, event_type,"
            " sketch FROM eventcore.users_hour ORDER BY bucket LIMIT 1"
        )
    assert await stored_persons(postgres_dsn) != exact

    assert await store.rebuild_counts() == Recount(len(events), frozenset({"ws-a", "ws-gone"}))

    assert await stored_persons(postgres_dsn) == exact
    await delete_counts(postgres_dsn)
    assert await store.rebuild_counts("ws-a") == Recount(len(events), frozenset({"ws-a"}))
    assert await stored_persons(postgres_dsn) == exact


async def test_person_events_are_an_index_only_scan_of_the_persons_index(
    store: PostgresStore, postgres_dsn: str
) -> None:
    """A funnel's read of a project declaring no dimensions finds every column in
    events_persons_by_type: no heap page is visited once the table is vacuumed, and events
    without a person are not in that index. Once the project declares dimensions, its
    events are read through an index scan (of the index the planner prefers) that visits each
    one's heap row for its values."""
    events = [
        event(f"e{n}", ("signup", "purchase", "view")[n % 3], minutes=7 * n, user_id=f"u{n % 9}")
        for n in range(300)
    ]
    nobody = [event(f"n{n}", "signup", minutes=n) for n in range(100)]
    await store.append([batch("ws-a", "web", *events, *nobody), batch("ws-b", "web", *events)])
    async with owner_connection(postgres_dsn) as conn:
        await conn.execute("VACUUM ANALYZE eventcore.events")
        cursor = await conn.execute(
            "SELECT count(*) FROM eventcore.events WHERE user_id IS NOT NULL"
            " OR anonymous_id IS NOT NULL"
        )
        assert await cursor.fetchone() == (600,)

    (scan,) = await _person_event_scans(postgres_dsn)
    assert scan["Node Type"] == "Index Only Scan", scan
    assert scan["Index Name"] == "events_persons_by_type"
    assert scan["Heap Fetches"] == 0
    assert scan["Actual Rows"] == 200
    found = await store.person_events("ws-a", "web", ["signup", "purchase"], *EVERYTHING)
    assert len(found) == 200
    assert {f.values for f in found} == {""}
    assert await store.person_events("ws-a", "web", [], *EVERYTHING) == []

    await seed_declaring_project(store, postgres_dsn)
    (scan,) = await _person_event_scans(postgres_dsn)
    assert scan["Node Type"] == "Index Scan", scan
    assert scan["Index Name"] in {"events_persons_by_type", "events_newest_by_type"}
    assert scan["Actual Rows"] == 200
    found = await store.person_events("ws-a", "web", ["signup", "purchase"], *EVERYTHING)
    assert len(found) == 200
    assert {f.values for f in found} == {'{"n":null}'}


async def seed_declaring_project(store: PostgresStore, dsn: str) -> None:
    """Make ws-a's project ``web`` (a row of its own) declare ``n``, and its events' values."""
    async with owner_connection(dsn) as owner:
        await owner.execute(
            "INSERT INTO eventcore.projects (workspace_id, project_id, name, created_at)"
            " VALUES ('ws-a', 'web', 'Web', now())"
        )
    assert await store.set_dimensions("ws-a", "web", ("n",)) is not None
    await store.rebuild_counts("ws-a")


async def _person_event_scans(dsn: str) -> list[dict[str, Any]]:
    """The scans of the events that the funnels' read of ws-a's signups and purchases ran."""
    parameters = {
        "workspace_id": "ws-a",
        "project_id": "web",
        "event_types": ["signup", "purchase"],
        "start": T0,
        "end": T0 + timedelta(days=30),
        "limit": 1_000,
    }
    async with app_connection(dsn) as conn, conn.transaction():
        await conn.execute(SET_TENANT, ("ws-a",))
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        cursor = await conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + _PERSON_EVENTS, parameters)
        ((explained,),) = await cursor.fetchall()
    scans = _scans(explained[0]["Plan"])
    # Both branches are planned; the one-time filters run one of them, by the project's row.
    assert len([s for s in scans if s.get("Relation Name") == "events"]) == 2
    return [s for s in scans if s.get("Relation Name") == "events" and s["Actual Loops"]]


def _scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan] if "Scan" in plan["Node Type"] else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


async def test_the_persons_upgrade_keeps_the_events_and_rewrites_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database at 0005 holding events takes migration 0006 without rewriting the events
    table; the old events read back without persons and make no sketch on a rebuild, and new
    events with persons are sketched. (The events of before are written as the store of 0005
    wrote them, in SQL: today's store needs the later migrations too, applied after 0006.)"""
    shipped = schema.load_migrations()
    with fresh_database(migrated=False) as dsn:
        monkeypatch.setattr(schema, "load_migrations", lambda: shipped[:5])
        assert await migrate(dsn) == ["0001", "0002", "0003", "0004", "0005"]
        monkeypatch.undo()
        async with owner_connection(dsn) as owner:
            await owner.execute(
                "INSERT INTO eventcore.events (workspace_id, project_id, event_id, event_time,"
                " received_at, type, properties)"
                " SELECT 'ws-a', 'web', 'e' || n, %s + n * interval '1 minute', %s, 'page_view',"
                " '{}' FROM generate_series(0, 19) AS n",
                (T0, T0),
            )

        async def events_file() -> Any:
            async with owner_connection(dsn) as owner:
                cursor = await owner.execute(
                    "SELECT relfilenode FROM pg_class WHERE oid = 'eventcore.events'::regclass"
                )
                return await cursor.fetchone()

        before = await events_file()
        monkeypatch.setattr(schema, "load_migrations", lambda: shipped[:6])
        assert await migrate(dsn) == ["0006"]
        monkeypatch.undo()
        assert await events_file() == before
        assert await migrate(dsn) == [m.version for m in shipped[6:]]

        async with await PostgresStore.open(dsn) as store:
            listed = await store.list_events("ws-a", "web", limit=50)
            assert len(listed) == 20
            assert all(e.user_id is None and e.anonymous_id is None for e in listed)
            assert await store.rebuild_counts() == Recount(20, frozenset({"ws-a"}))
            assert await store.user_sketches("ws-a", "web", *EVERYTHING) == []
            new = event("late", minutes=5, anonymous_id="anon-1")
            assert await store.append([batch("ws-a", "web", new)]) == AppendResult(1, 0)
            [(hour, sketch)] = await store.user_sketches("ws-a", "web", *EVERYTHING)
        assert (hour, estimate([sketch]).users) == (T0, 1)


async def test_an_append_failing_in_the_database_commits_nothing_and_keeps_its_connection(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement refused halfway through the pipelined transaction (here the sketch lock, the
    application role's UPDATE on the sketches revoked) leaves no event, count or sketch behind,
    and the pool's one connection goes on working, with no transaction left open on it."""
    await truncate_tables(postgres_dsn)
    sent = [event(f"e{n}", minutes=n, user_id=f"u{n}") for n in range(5)]
    async with await PostgresStore.open(postgres_dsn, min_size=1, max_size=1) as store:
        async with owner_connection(postgres_dsn) as owner:
            await owner.execute("REVOKE UPDATE ON eventcore.users_hour FROM eventcore_app")
            try:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await store.append([batch("ws-a", "web", *sent), batch("ws-b", "web", *sent)])
            finally:
                await owner.execute("GRANT UPDATE ON eventcore.users_hour TO eventcore_app")
        assert await stored_counts(postgres_dsn) == Counter()
        assert await stored_persons(postgres_dsn) == {}

        assert await store.append([batch("ws-a", "web", *sent)]) == AppendResult(5, 0)
        async with store.pool.connection() as conn:
            assert conn.info.transaction_status is TransactionStatus.IDLE
    assert await stored_persons(postgres_dsn) == await persons_from_events(postgres_dsn)
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]  # no warning either


async def test_days_stored_before_day_sketches_are_answered_from_their_hours(
    store: PostgresStore, postgres_dsn: str
) -> None:
    """What migration 0014 finds (hour sketches without kept estimates, no day sketch) answers
    as before from the hours; a day's next append starts its day sketch from its hours' union,
    and a rebuild makes every day's."""
    events = [
        event(f"e{n}", ("a", "b")[n % 2], minutes=97 * n, user_id=f"u{n % 13}") for n in range(60)
    ]
    await store.append([batch("ws-a", "web", *events)])
    start, end = T0 - timedelta(hours=12), T0 + timedelta(days=4, hours=12)

    async def answers() -> list[Any]:
        found = []
        for granularity in (Granularity.HOUR, Granularity.DAY):
            rows = await store.user_window("ws-a", "web", start, end, granularity)
            series = window_user_series("web", granularity, start, end, rows)
            found.append((series.total, [(p.bucket, p.users) for p in series.series]))
        return found

    before = await answers()
    async with owner_connection(postgres_dsn) as owner:
        await owner.execute("DELETE FROM eventcore.users_day")
    assert await answers() == before
    async with owner_connection(postgres_dsn) as owner:
        await owner.execute("UPDATE eventcore.users_hour SET users = NULL, relative_error = NULL")
    assert await answers() == before

    second_day = T0 + timedelta(days=1)
    late = [
        event("late-1", "a", minutes=24 * 60 + 5, user_id="u1"),
        event("late-2", "a", minutes=24 * 60 + 6, user_id="newcomer"),
    ]
    await store.append([batch("ws-a", "web", *late)])
    async with owner_connection(postgres_dsn) as owner:
        cursor = await owner.execute("SELECT DISTINCT day FROM eventcore.users_day")
        assert [row[0] for row in await cursor.fetchall()] == [second_day.replace(hour=0)]
    every = events + late
    day_total, by_day = (await answers())[1]
    assert day_total == len({e.user_id for e in every})
    assert dict(by_day)[second_day.replace(hour=0)] == len(
        {e.user_id for e in every if e.timestamp.date() == second_day.date()}
    )
    assert await stored_persons(postgres_dsn) != await persons_from_events(postgres_dsn)
    await store.rebuild_counts("ws-a")
    assert await stored_persons(postgres_dsn) == await persons_from_events(postgres_dsn)
