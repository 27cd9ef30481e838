"""Declared dimensions on a real server: exact and bounded tallies under concurrency, the
declarations of other processes, the round trips an append costs, the rebuild, the upgrade."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import msgspec
import psycopg
import pytest
from msgspec import Raw
from tests.integration.postgres.conftest import T0
from tests.support.postgres import (
    delete_counts,
    dsn_through,
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
from eventcore.adapters.postgres._events import _REBUILD_CHUNK
from eventcore.aggregation import Granularity, bucket_start
from eventcore.defaults import MAX_DIMENSION_VALUES
from eventcore.dimensions import Kind, Where, decode_values
from eventcore.events import Event, IngestBatch
from eventcore.persons import ALL_TYPES, estimate
from eventcore.ports import AppendResult, Recount
from eventcore.tenancy import Membership, Project, Role, User, Workspace

pytestmark = pytest.mark.integration

PATHS = ("plan", "context.page")
WORKSPACES = ("ws-a", "ws-b", "ws-c")
# Tally key as read back by the owner: (workspace, project, type, dimension, day, kind, value).
TallyKey = tuple[str, str, str, str, datetime, int, str]


def event(
    event_id: str,
    event_type: str = "view",
    minutes: float = 0,
    *,
    plan: str | None = None,
    page: str | None = None,
    user_id: str | None = None,
) -> Event:
    properties: dict[str, Any] = {}
    if plan is not None:
        properties["plan"] = plan
    if page is not None:
        properties["context"] = {"page": page}
    return Event(
        event_id,
        event_type,
        T0 + timedelta(minutes=minutes),
        Raw(msgspec.json.encode(properties)),
        user_id=user_id,
    )


def batch(workspace_id: str, project_id: str, *events: Event) -> IngestBatch:
    return IngestBatch(workspace_id, project_id, T0 + timedelta(days=3), list(events))


def projects_of(workspace_id: str) -> tuple[str, str]:
    """A workspace's project declaring dimensions and its project declaring none: ``dims`` and
    ``plain`` in ws-a, with the workspace's letter after in the others (the memory store wants
    project ids unique across workspaces)."""
    suffix = "" if workspace_id == "ws-a" else "-" + workspace_id[-1]
    return "dims" + suffix, "plain" + suffix


async def open_projects(store: Any, declared: tuple[str, ...] = PATHS) -> None:
    """In each workspace, its ``dims`` project declaring ``declared`` and its ``plain`` one
    declaring none (see projects_of)."""
    for ws in WORKSPACES:
        owner = User(f"user-{ws}", f"{ws}@example.com", "salt$digest", T0)
        await store.create_signup(
            owner, Workspace(ws, ws, T0), Membership(ws, owner.id, Role.OWNER, T0)
        )
        dims, plain = projects_of(ws)
        await store.create_project(Project(dims, ws, "Dims", T0, declared))
        await store.create_project(Project(plain, ws, "Plain", T0))


async def stored_tallies(dsn: str) -> dict[TallyKey, tuple[int, int]]:
    """Every tally row, read as the owner: key → (count, the persons its sketch counts)."""
    async with owner_connection(dsn) as owner:
        cursor = await owner.execute(
            "SELECT workspace_id, project_id, event_type, dimension, day, kind, value, count,"
            " sketch FROM eventcore.dims_day"
        )
        rows = await cursor.fetchall()
    return {
        tuple(key): (count, estimate([sketch]).users if sketch else 0)  # type: ignore[misc]
        for *key, count, sketch in rows
    }


def memory_tallies(memory: MemoryStore) -> dict[TallyKey, tuple[int, int]]:
    return {
        (k.workspace_id, k.project_id, k.event_type, k.dimension, k.day, int(k.kind), k.value): (
            count,
            estimate([sketch]).users if sketch else 0,
        )
        for k, (count, sketch) in memory.tallies.items()
    }


async def stored_values(dsn: str) -> dict[tuple[str, str, str], str | None]:
    async with owner_connection(dsn) as owner:
        cursor = await owner.execute(
            "SELECT workspace_id, project_id, event_id, dim_values FROM eventcore.events"
        )
        return {
            (ws, prj, event_id): values for ws, prj, event_id, values in await cursor.fetchall()
        }


async def exact_tallies(dsn: str) -> dict[tuple[str, str, str, str, datetime], Counter[str]]:
    """Per group (workspace, project, type or '', dimension, day): the stored events' values,
    counted from their stored values with plain SQL (a missing value as "")."""
    async with owner_connection(dsn) as owner:
        cursor = await owner.execute(
            "SELECT e.workspace_id, e.project_id, t.event_type, v.key,"
            " date_trunc('day', e.event_time, 'UTC'), coalesce(v.value, ''), count(*)"
            " FROM eventcore.events AS e"
            " CROSS JOIN LATERAL json_each_text(e.dim_values::json) AS v"
            " CROSS JOIN LATERAL (VALUES (e.type), ('')) AS t (event_type)"
            " WHERE e.dim_values IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
        )
        rows = await cursor.fetchall()
    found: dict[tuple[str, str, str, str, datetime], Counter[str]] = {}
    for *group, value, count in rows:
        found.setdefault(tuple(group), Counter())[value] = count  # type: ignore[arg-type]
    return found


async def test_tallies_and_values_equal_the_reference_store_s(
    postgres_dsn: str, store: PostgresStore
) -> None:
    """Appends over several workspaces and both kinds of project, with resends, equal ids in
    one call, persons and values past the bound, leave the tallies and the stored values the
    memory store computes; a project declaring none has neither."""
    memory = MemoryStore()
    for each in (store, memory):
        await open_projects(each)
    calls = []
    for call in range(4):
        batches = []
        for ws in WORKSPACES:
            for project in projects_of(ws):
                made = [
                    event(
                        f"e{(call * 71 + n) % 300}",
                        ("view", "buy")[n % 2],
                        minutes=(n * 97) % 1500,  # two days
                        plan=f"plan-{(n * 7 + call) % 130}" if n % 5 else None,
                        page=("/", "/pricing", "x" * 300)[n % 3],
                        user_id=f"u{n % 13}" if n % 4 else None,
                    )
                    for n in range(90)
                ]
                batches.append(batch(ws, project, *made))
        calls.append(batches)
    for batches in (*calls, calls[1]):
        assert await store.append(batches) == await memory.append(batches)

    tallies = await stored_tallies(postgres_dsn)
    assert tallies == memory_tallies(memory)
    assert {key[1] for key in tallies} == {projects_of(ws)[0] for ws in WORKSPACES}
    kept = Counter(key[:5] for key in tallies if key[5] == Kind.VALUE)
    assert max(kept.values()) == MAX_DIMENSION_VALUES
    values = await stored_values(postgres_dsn)
    assert {key for key, v in values.items() if v is not None} == {
        key for key in memory.values if key[1].startswith("dims")
    }
    for key, stored in values.items():
        assert (stored or "") == memory.values[key]  # type: ignore[index]


async def test_concurrent_appends_neither_deadlock_nor_lose_nor_exceed_the_bound(
    postgres_dsn: str,
) -> None:
    """Writers appending overlapping events in opposite orders over several workspaces, each
    bringing new values to the same groups (more than a group keeps, together), with persons,
    with rebuilds among them: no deadlock, and every group keeps at most the bound, each kept
    value with exactly its events' count and persons, ``other`` the rest."""
    await truncate_tables(postgres_dsn)
    each = 240

    def events(writer: int, round_: int) -> list[Event]:
        # Shared ids (the overlap, each with one value whoever stores it) and ids of this writer
        # and round alone, each writer with values of its own.
        return [
            event(
                f"r{round_}-e{n}" if n % 2 else f"w{writer}-r{round_}-e{n}",
                ("a", "b")[n % 2],
                minutes=(n * 13) % 2880,
                plan=f"w{writer}-{(n + 7 * round_) % 50}" if n % 2 == 0 else f"shared-{n % 30}",
                page=f"/p{n % 4}" if n % 3 else None,
                user_id=f"user-{writer}-{n % 17}" if n % 3 else None,
            )
            for n in range(each)
        ]

    def call(writer: int, round_: int) -> list[IngestBatch]:
        batches = [
            batch(ws, project, *events(writer, round_))
            for ws in WORKSPACES
            for project in projects_of(ws)
        ]
        if writer % 2:
            return batches
        return [batch(b.workspace_id, b.project_id, *reversed(b.events)) for b in reversed(batches)]

    async with await PostgresStore.open(postgres_dsn, max_size=6) as store:
        await open_projects(store)
        for round_ in range(3):
            results = await asyncio.gather(
                *(store.append(call(writer, round_)) for writer in range(4)),
                store.rebuild_counts("ws-b" if round_ % 2 else None),
            )
            appended = [r for r in results if isinstance(r, AppendResult)]
            assert all(r.inserted + r.duplicates == 2 * 3 * each for r in appended)

    exact = await exact_tallies(postgres_dsn)
    persons = await persons_by_value(postgres_dsn)
    groups: dict[tuple[Any, ...], dict[tuple[int, str], tuple[int, int]]] = {}
    for key, tally in (await stored_tallies(postgres_dsn)).items():
        groups.setdefault(key[:5], {})[(key[5], key[6])] = tally
    assert set(groups) == set(exact)
    assert max(len(counted) for counted in exact.values()) > MAX_DIMENSION_VALUES  # not vacuous
    for group, tallies in groups.items():
        counted = exact[group]
        kept = {value for kind, value in tallies if kind == Kind.VALUE}
        assert len(kept) == min(MAX_DIMENSION_VALUES, len(counted) - ("" in counted)), group
        for (kind, value), (count, users) in tallies.items():
            if kind == Kind.VALUE:
                assert (count, users) == (counted[value], len(persons.get((*group, value), ()))), (
                    group
                )
        other = sum(n for value, n in counted.items() if value not in kept and value)
        assert tallies.get((Kind.OTHER, ""), (0, 0))[0] == other, group
        assert tallies.get((Kind.NONE, ""), (0, 0))[0] == counted.get("", 0), group
    assert await stored_counts(postgres_dsn) == await recount_from_events(postgres_dsn)
    assert await stored_persons(postgres_dsn) == await persons_from_events(postgres_dsn)


async def persons_by_value(dsn: str) -> dict[tuple[Any, ...], set[str]]:
    """(workspace, project, type or '', dimension, day, value) → the distinct persons."""
    async with owner_connection(dsn) as owner:
        cursor = await owner.execute(
            "SELECT e.workspace_id, e.project_id, t.event_type, v.key,"
            " date_trunc('day', e.event_time, 'UTC'), v.value, array_agg(DISTINCT e.user_id)"
            " FROM eventcore.events AS e"
            " CROSS JOIN LATERAL json_each_text(e.dim_values::json) AS v"
            " CROSS JOIN LATERAL (VALUES (e.type), ('')) AS t (event_type)"
            " WHERE e.user_id IS NOT NULL AND v.value IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
        )
        rows = await cursor.fetchall()
    found: dict[tuple[Any, ...], set[str]] = {}
    for *key, users in rows:
        found[tuple(key)] = set(users)
    return found


async def test_a_declaration_committed_by_another_process_is_honoured_by_the_next_append(
    postgres_dsn: str,
) -> None:
    """One store appends while another changes the project's dimensions: each append after the
    other's declaration committed stores and tallies the dimensions declared then, whatever the
    first store guessed from what it saw before."""
    await truncate_tables(postgres_dsn)
    async with (
        await PostgresStore.open(postgres_dsn, max_size=2) as writer,
        await PostgresStore.open(postgres_dsn, max_size=2) as admin,
    ):
        await open_projects(admin, ())
        await writer.append([batch("ws-a", "dims", event("e1", plan="pro"))])
        assert await admin.set_dimensions("ws-a", "dims", ("plan",)) is not None
        await writer.append([batch("ws-a", "dims", event("e2", plan="pro"))])
        assert await admin.set_dimensions("ws-a", "dims", ("context.page",)) is not None
        await writer.append([batch("ws-a", "dims", event("e3", plan="pro", page="/"))])
        assert await admin.set_dimensions("ws-a", "dims", ()) is not None
        await writer.append([batch("ws-a", "dims", event("e4", plan="pro", page="/"))])
        assert await admin.delete_project("ws-a", "dims", T0) is not None
        await writer.append([batch("ws-a", "dims", event("e5", plan="pro", page="/"))])

    values = await stored_values(postgres_dsn)
    assert [values[("ws-a", "dims", f"e{n}")] for n in range(1, 6)] == [
        None,
        '{"plan":"pro"}',
        '{"context.page":"/"}',
        None,
        None,
    ]
    assert set(await stored_tallies(postgres_dsn)) == {
        ("ws-a", "dims", event_type, dimension, bucket_start(T0, Granularity.DAY), 0, value)
        for event_type in ("view", ALL_TYPES)
        for dimension, value in (("plan", "pro"), ("context.page", "/"))
    }


class RoundTrips:
    """A relay to the server that counts the client's waits: each time the server answers after
    the client sent something, one round trip."""

    def __init__(self) -> None:
        self.count = 0
        self._last = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 5432)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, direction: str
        ) -> None:
            try:
                while data := await source.read(65536):
                    if direction == "server" and self._last == "client":
                        self.count += 1
                    self._last = direction
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        task = asyncio.ensure_future(
            asyncio.gather(
                pump(reader, upstream_writer, "client"),
                pump(upstream_reader, writer, "server"),
                return_exceptions=True,
            )
        )
        self._tasks.add(task)


@pytest.fixture
async def round_trips() -> AsyncIterator[RoundTrips]:
    relay = RoundTrips()
    yield relay
    await relay.close()


async def test_an_append_costs_a_round_trip_more_only_for_persons_or_values(
    postgres_dsn: str, store: PostgresStore, round_trips: RoundTrips
) -> None:
    """Round trips of an append of one workspace: two (its statement, the COMMIT) for events
    of a project declaring no dimensions; three with persons or declared values (the sketches'
    and tallies' locks and reads share the third); one more when this process guessed the
    project's dimensions wrong (the first append after another process changed them), and only
    then."""
    await open_projects(store, ("plan",))
    port = await round_trips.start()
    async with await PostgresStore.open(
        dsn_through(postgres_dsn, port), min_size=1, max_size=1
    ) as measured:

        async def settled() -> int:
            """The count once the connection is back in the pool, reset (in the background)."""
            for _ in range(200):
                if measured.pool.get_stats().get("pool_available") == 1:
                    return round_trips.count
                await asyncio.sleep(0.005)
            raise AssertionError("the connection did not come back")

        await measured.ping()
        before = await settled()
        await measured.ping()
        reset = await settled() - before - 1  # the pool's reset after each use

        async def cost(project: str, *events: Event) -> int:
            before = await settled()
            await measured.append([batch("ws-a", project, *events)])
            return await settled() - before - reset

        assert await cost("plain", event("p1", plan="pro")) == 2
        assert await cost("plain", event("p2", plan="pro", user_id="u")) == 3
        assert await cost("dims", event("d1", plan="pro")) == 3 + 1  # a guess of none, wrong
        assert await cost("dims", event("d2", plan="pro")) == 3
        assert await cost("dims", event("d3", plan="pro", user_id="u")) == 3
        assert await cost("dims", event("d3", plan="pro", user_id="u")) == 2  # a resend
        assert await store.set_dimensions("ws-a", "dims", ()) is not None  # elsewhere
        assert await cost("dims", event("d4", plan="pro")) == 2 + 1
        assert await cost("dims", event("d5", plan="pro")) == 2


async def test_a_rebuild_makes_values_and_tallies_again_in_chunks(
    postgres_dsn: str, store: PostgresStore
) -> None:
    """A rebuild of a project with more events than one chunk, over several days, after the
    tallies and values were damaged and the project's declaration changed, gives each event
    the values of the dimensions declared now and the tallies of a fresh store; events whose
    values did not change are not written (their row version stays); events of a project
    declaring none keep no values."""
    await truncate_tables(postgres_dsn)
    await open_projects(store, ("plan",))
    events = [
        event(
            f"e{n}",
            ("view", "buy")[n % 2],
            minutes=n * 3,
            plan=f"plan-{n % 40}",
            page=f"/p{n % 7}",
            user_id=f"u{n % 23}",
        )
        for n in range(_REBUILD_CHUNK * 2 + 100)
    ]
    assert len({bucket_start(e.timestamp, Granularity.DAY) for e in events}) > 2
    await store.append([batch("ws-a", "dims", *events), batch("ws-a", "plain", *events[:50])])
    assert await store.set_dimensions("ws-a", "dims", ("plan", "context.page")) is not None
    async with owner_connection(postgres_dsn) as owner:
        await owner.execute(
            'UPDATE eventcore.events SET dim_values = \'{"plan":"bogus"}\''
            " WHERE project_id = 'plain' OR event_id IN ('e1', 'e2')"
        )
    await delete_counts(postgres_dsn)

    async def versions() -> dict[str, str]:
        async with owner_connection(postgres_dsn) as owner:
            cursor = await owner.execute(
                "SELECT event_id, ctid::text FROM eventcore.events WHERE project_id = 'dims'"
            )
            return dict(await cursor.fetchall())

    first = await versions()
    assert await store.rebuild_counts("ws-a") == Recount(len(events) + 50, frozenset({"ws-a"}))
    second = await versions()
    assert first != second  # every value changed: each gained context.page

    fresh = MemoryStore()
    await open_projects(fresh, ("plan", "context.page"))
    await fresh.append([batch("ws-a", "dims", *events), batch("ws-a", "plain", *events[:50])])
    assert await stored_tallies(postgres_dsn) == memory_tallies(fresh)
    values = await stored_values(postgres_dsn)
    assert values == {key: value or None for key, value in fresh.values.items()}

    assert await store.rebuild_counts() == Recount(len(events) + 50, frozenset({"ws-a"}))
    assert await versions() == second  # nothing changed, nothing written
    assert await stored_tallies(postgres_dsn) == memory_tallies(fresh)


async def test_filters_are_bound_parameters(store: PostgresStore) -> None:
    """Any text as a filter's dimension or value is compared, never run: quotes, JSON path
    syntax and SQL find nothing or exactly the events with that value."""
    await open_projects(store, ("plan", "context.page"))
    odd = 'it\'s "odd" -- ; DROP TABLE x'
    events = [event("e1", plan=odd, page="/"), event("e2", plan="pro", page="/")]
    await store.append([batch("ws-a", "dims", *events)])
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))

    found = await store.filtered_events("ws-a", "dims", *window, None, (Where("plan", odd),))
    assert [decode_values(f.values)["plan"] for f in found] == [odd]
    for where in (
        Where("plan", "pro' OR '1'='1"),
        Where("plan'", "pro"),
        Where("$.plan", "pro"),
        Where('context"."page', "/"),
    ):
        assert await store.filtered_events("ws-a", "dims", *window, None, (where,)) == []
    both = (Where("context.page", "/"), Where("plan", "pro"))
    assert len(await store.filtered_events("ws-a", "dims", *window, "view", both)) == 1


async def test_an_append_whose_tally_write_fails_commits_nothing(postgres_dsn: str) -> None:
    """The tallies' writes leave with the COMMIT: refused there (the application role's UPDATE
    on the tallies revoked), the append stores no event, count, sketch or tally, and the pool's
    connection goes on working."""
    await truncate_tables(postgres_dsn)
    sent = [event(f"e{n}", plan="pro", user_id=f"u{n}") for n in range(5)]
    async with await PostgresStore.open(postgres_dsn, min_size=1, max_size=1) as store:
        await open_projects(store, ("plan",))
        async with owner_connection(postgres_dsn) as owner:
            await owner.execute("REVOKE UPDATE ON eventcore.dims_day FROM eventcore_app")
            try:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await store.append([batch("ws-a", "dims", *sent)])
            finally:
                await owner.execute("GRANT UPDATE ON eventcore.dims_day TO eventcore_app")
        assert await stored_counts(postgres_dsn) == Counter()
        assert await stored_persons(postgres_dsn) == {}
        assert await stored_tallies(postgres_dsn) == {}
        assert await stored_values(postgres_dsn) == {}

        assert await store.append([batch("ws-a", "dims", *sent)]) == AppendResult(5, 0)
    assert sum(count for count, _ in (await stored_tallies(postgres_dsn)).values()) == 10


async def test_the_dimensions_upgrade_keeps_events_and_projects_and_rewrites_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database at 0006 holding projects and events takes migration 0007 without rewriting
    either table; the projects declare nothing, the old events read back without values, and
    once a project declares dimensions a rebuild gives its old events values and tallies, as
    appends do for the new ones."""
    shipped = schema.load_migrations()
    with fresh_database(migrated=False) as dsn:
        monkeypatch.setattr(schema, "load_migrations", lambda: shipped[:6])
        assert await migrate(dsn) == ["0001", "0002", "0003", "0004", "0005", "0006"]
        monkeypatch.undo()
        async with owner_connection(dsn) as owner:
            # As the store of 0006 wrote them.
            await owner.execute(
                "INSERT INTO eventcore.projects (workspace_id, project_id, name, created_at)"
                " VALUES ('ws-a', 'web', 'Web', %s)",
                (T0,),
            )
            await owner.execute(
                "INSERT INTO eventcore.events (workspace_id, project_id, event_id, event_time,"
                " received_at, type, properties, user_id)"
                " SELECT 'ws-a', 'web', 'e' || n, %s + n * interval '1 minute', %s, 'view',"
                " json_build_object('plan', 'plan-' || mod(n, 3)), 'u' || mod(n, 4)"
                " FROM generate_series(0, 19) AS n",
                (T0, T0),
            )

        async def files() -> list[Any]:
            async with owner_connection(dsn) as owner:
                cursor = await owner.execute(
                    "SELECT relname, relfilenode FROM pg_class WHERE oid IN"
                    " ('eventcore.events'::regclass, 'eventcore.projects'::regclass) ORDER BY 1"
                )
                return await cursor.fetchall()

        before = await files()
        # Every migration after 0006 (0007 is the dimensions' own).
        assert await migrate(dsn) == [m.version for m in shipped[6:]]
        assert await files() == before

        async with await PostgresStore.open(dsn) as store:
            project = await store.get_project("ws-a", "web")
            assert project is not None
            assert project.dimensions == ()
            window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
            old = await store.filtered_events("ws-a", "web", *window, None, ())
            assert len(old) == 20
            assert {f.values for f in old} == {""}
            assert await store.set_dimensions("ws-a", "web", ("plan",)) is not None
            assert await store.rebuild_counts() == Recount(20, frozenset({"ws-a"}))
            await store.append([batch("ws-a", "web", event("late", plan="plan-0"))])
            tallies = await store.dimension_tallies("ws-a", "web", "plan", *window)
            pro = await store.filtered_events(
                "ws-a", "web", *window, None, (Where("plan", "plan-0"),)
            )
        assert [(t.kind, t.value, t.count) for t in tallies] == [
            (Kind.VALUE, "plan-0", 8),
            (Kind.VALUE, "plan-1", 7),
            (Kind.VALUE, "plan-2", 6),
        ]
        assert len(pro) == 8
