"""PostgresStore on a real server: exactly-once appends, exact counts, paging, tenant walls."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import Raw
from tests.integration.postgres.conftest import T0, Tenant, seed_tenant
from tests.support.postgres import (
    app_connection,
    owner_connection,
    postgres_store,
    recount_from_events,
    stored_counts,
    truncate_tables,
)

from eventcore.adapters.memory import MemoryStore
from eventcore.adapters.postgres import PostgresStore
from eventcore.adapters.postgres._database import SET_TENANT
from eventcore.adapters.postgres._events import _SERIES, _TYPE_TOTALS
from eventcore.aggregation import CountKey, StoredGrain
from eventcore.cursors import CursorCodec, CursorScope
from eventcore.deletions import EventSelector
from eventcore.errors import AlreadyMember, DatabaseUnavailable, EmailTaken, InvalidRequest
from eventcore.events import Event, EventCursor, IngestBatch, StoredEvent
from eventcore.ports import AppendResult, Recount
from eventcore.tenancy import Membership, Project, Role, User, Workspace

pytestmark = pytest.mark.integration

EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def event(event_id: str, event_type: str = "page_view", minutes: float = 0) -> Event:
    return Event(
        event_id,
        event_type,
        T0 + timedelta(minutes=minutes),
        Raw(b'{"id":"%s"}' % event_id.encode()),
    )


def batch(workspace_id: str, project_id: str, *events: Event) -> IngestBatch:
    return IngestBatch(workspace_id, project_id, T0 + timedelta(hours=1), list(events))


def ids(events: list[StoredEvent]) -> list[str]:
    return [e.id for e in events]


async def test_mixed_workspace_appends_store_each_event_once(store: PostgresStore) -> None:
    """One append over several workspaces stores each (workspace, project, id) once, like memory."""
    calls = [
        [
            batch("ws-a", "web", event("e1"), event("e2"), event("e1")),
            batch("ws-b", "web", event("e1"), event("e2")),
            batch("ws-a", "app", event("e1")),
            batch("ws-a", "web", event("e2"), event("e3")),
        ],
        [batch("ws-b", "web", event("e2"), event("e4")), batch("ws-a", "web", event("e3"))],
    ]
    memory = MemoryStore()

    for call in calls:
        assert await store.append(call) == await memory.append(call)
    for call in calls:  # a redelivery of everything
        assert await store.append(call) == AppendResult(0, sum(len(b.events) for b in call))

    for workspace_id, project_id in (("ws-a", "web"), ("ws-a", "app"), ("ws-b", "web")):
        listed = await store.list_events(workspace_id, project_id, limit=100)
        expected = await memory.list_events(workspace_id, project_id, limit=100)
        assert ids(listed) == ids(expected)


async def test_the_first_of_equal_ids_in_one_append_is_the_one_kept(store: PostgresStore) -> None:
    """Two events with one id in a single append: the first is stored and counted, once."""
    first = Event("e1", "signup", T0, Raw(b'{"v": 1}'))
    second = Event("e1", "click", T0 + timedelta(minutes=5), Raw(b'{"v": 2}'))

    assert await store.append([batch("ws-a", "web", first), batch("ws-a", "web", second)]) == (
        AppendResult(1, 1)
    )

    [stored] = await store.list_events("ws-a", "web", limit=10)
    assert (stored.type, stored.timestamp, msgspec.json.decode(stored.properties)) == (
        "signup",
        T0,
        {"v": 1},
    )
    series = await store.count_series("ws-a", "web", StoredGrain.HOUR, *EVERYTHING)
    assert [(p.event_type, p.count) for p in series] == [("signup", 1)]


async def test_properties_come_back_as_the_same_json_without_parsing(store: PostgresStore) -> None:
    """Stored properties are returned as JSON text in a Raw that decodes to what was sent."""
    sent = '{"plan":"pro","n":[1,2.5,null],"nested":{"a":true},"unicode":"żółw 🐢"}'.encode()
    await store.append([batch("ws-a", "web", Event("e1", "signup", T0, Raw(sent)))])

    [stored] = await store.list_events("ws-a", "web", limit=1)

    assert isinstance(stored.properties, Raw)
    assert msgspec.json.decode(stored.properties) == msgspec.json.decode(sent)
    assert stored.timestamp.utcoffset() == timedelta(0)


EVENTS = st.builds(
    event,
    st.sampled_from([f"e{n}" for n in range(8)]),
    st.sampled_from(["page_view", "Click", "click", "ärger"]),
    st.integers(-90, 150).map(lambda m: m / 2),  # half-minutes around two hour boundaries
)
BATCHES = st.builds(
    lambda workspace_id, project_id, events: batch(workspace_id, project_id, *events),
    st.sampled_from(["ws-a", "ws-b", "ws-c"]),
    st.sampled_from(["web", "app"]),
    st.lists(EVENTS, max_size=6),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(calls=st.lists(st.lists(BATCHES, min_size=1, max_size=4), min_size=1, max_size=3))
async def test_counts_are_exact_against_a_recount_by_sql(
    postgres_dsn: str, store: PostgresStore, calls: list[list[IngestBatch]]
) -> None:
    """After any appends, both count tables equal a SQL recount of the events, and memory's answers."""
    await truncate_tables(postgres_dsn)
    memory = MemoryStore()

    for call in calls:
        assert await store.append(call) == await memory.append(call)

    counts = await stored_counts(postgres_dsn)
    assert counts == await recount_from_events(postgres_dsn)
    assert counts == +memory.counts
    for workspace_id in ("ws-a", "ws-b", "ws-c"):
        for project_id in ("web", "app"):
            for grain in StoredGrain:
                assert await store.count_series(
                    workspace_id, project_id, grain, *EVERYTHING
                ) == await memory.count_series(workspace_id, project_id, grain, *EVERYTHING)
            assert await store.event_type_totals(
                workspace_id, project_id, *EVERYTHING
            ) == await memory.event_type_totals(workspace_id, project_id, *EVERYTHING)


async def test_concurrent_overlapping_appends_neither_deadlock_nor_double_count(
    postgres_dsn: str,
) -> None:
    """Writers appending the same events in opposite orders, with a rebuild among them, stay exact."""
    await truncate_tables(postgres_dsn)
    # Enough rows per statement that the writers' inserts overlap in time: inserting in arrival
    # order instead of key order deadlocks here on most runs.
    EACH = 500
    events = [event(f"e{n}", ("a", "b")[n % 2], minutes=n) for n in range(EACH)]
    batches = [batch(workspace_id, "web", *events) for workspace_id in ("ws-a", "ws-b", "ws-c")]
    forwards = batches + [batch(b.workspace_id, "app", *b.events) for b in batches]
    backwards = [
        batch(b.workspace_id, b.project_id, *reversed(b.events)) for b in reversed(forwards)
    ]
    async with await PostgresStore.open(postgres_dsn, max_size=5) as store:
        for _ in range(5):
            results = await asyncio.gather(
                *(store.append(forwards if n % 2 else backwards) for n in range(4)),
                store.rebuild_counts(),
            )
            appended = [r for r in results if isinstance(r, AppendResult)]
            assert sum(r.inserted for r in appended) in (0, 6 * EACH)
            assert all(r.inserted + r.duplicates == 6 * EACH for r in appended)

    assert await stored_counts(postgres_dsn) == await recount_from_events(postgres_dsn)
    async with owner_connection(postgres_dsn) as owner:
        cursor = await owner.execute("SELECT count(*) FROM eventcore.events")
        assert await cursor.fetchone() == (6 * EACH,)


async def test_paging_with_the_cursor_walks_every_event_once_newest_first(
    store: PostgresStore,
) -> None:
    """Pages of three, each strictly older than the last, list every event once, ties by arrival."""
    # Four timestamps for ten events: many ties, broken by insertion order (newest first).
    events = [event(f"e{n}", ("a", "b")[n % 2], minutes=n % 4) for n in range(10)]
    memory = MemoryStore()
    for chunk in (events[:4], events[4:]):
        await store.append([batch("ws-a", "web", *chunk)])
        await memory.append([batch("ws-a", "web", *chunk)])

    codec = CursorCodec.random()
    for event_type in (None, "a"):
        scope = CursorScope("ws-a", "web", event_type)
        pages: list[list[StoredEvent]] = []
        cursor: EventCursor | None = None
        while not pages or len(pages[-1]) == 3:
            page = await store.list_events(
                "ws-a", "web", limit=3, event_type=event_type, before=cursor
            )
            pages.append(page)
            if page:
                # Through the wire form and back, as a client's next request brings it.
                sealed = codec.encode(scope, EventCursor.after(page[-1]))
                cursor = codec.decode(scope, sealed)
        walked = [e for page in pages for e in page]
        expected = await memory.list_events("ws-a", "web", limit=100, event_type=event_type)
        assert ids(walked) == ids(expected)
        keys = [(e.timestamp, e.seq) for e in walked]
        assert keys == sorted(set(keys), reverse=True)


async def test_another_workspaces_ids_answer_none(
    store: PostgresStore, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """Asked with workspace B, A's project, key, member and events are not there."""
    acme, globex = two_tenants
    b = globex.workspace_id

    assert await store.get_project(b, acme.project.id) is None
    assert await store.get_membership(b, acme.user.id) is None
    assert await store.revoke_api_key(b, acme.key.id, T0) is None
    assert await store.list_api_keys(b, acme.project.id) == []
    assert await store.list_events(b, acme.project.id, limit=10) == []
    assert await store.count_series(b, acme.project.id, StoredGrain.MINUTE, *EVERYTHING) == []
    assert await store.event_type_totals(b, acme.project.id, *EVERYTHING) == []
    # Nothing was touched: A's key is still live.
    assert await store.find_api_key(acme.key.key_hash) == acme.key
    assert await store.get_project(acme.workspace_id, acme.project.id) == acme.project


async def test_a_text_postgresql_cannot_hold_is_refused_with_a_true_reason(
    store: PostgresStore, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """A NUL in a text is refused before it is sent (psycopg has no server diagnostic to give):
    the message says so, rather than "cannot store a value: None", and nothing is stored."""
    acme, _ = two_tenants

    with pytest.raises(InvalidRequest) as refused:
        await store.create_project(Project("prj-nul", acme.workspace_id, "a\x00b", T0))

    assert refused.value.code == "unstorable_value"
    assert "NUL" in refused.value.message, refused.value.message
    assert "None" not in refused.value.message, refused.value.message
    assert await store.get_project(acme.workspace_id, "prj-nul") is None


async def test_account_conflicts_carry_the_reference_codes(
    store: PostgresStore, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """A taken email is email_taken, a second membership already_member, and nothing half-stored."""
    acme, _ = two_tenants
    intruder = User("user-x", acme.user.email, "h", T0)
    late_workspace = Workspace("ws-x", "X", T0)

    with pytest.raises(EmailTaken) as taken:
        await store.create_signup(
            intruder, late_workspace, Membership("ws-x", "user-x", Role.OWNER, T0)
        )
    with pytest.raises(AlreadyMember) as member:
        await store.add_membership(Membership(acme.workspace_id, acme.user.id, Role.VIEWER, T0))

    assert (taken.value.code, member.value.code) == ("email_taken", "already_member")
    assert await store.get_user("user-x") is None
    assert await store.get_membership("ws-x", "user-x") is None
    assert (await store.get_membership(acme.workspace_id, acme.user.id)) == Membership(
        acme.workspace_id, acme.user.id, Role.OWNER, T0
    )


async def test_memberships_list_oldest_first_ties_in_arrival_order(
    store: PostgresStore, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """A user's memberships across workspaces come oldest first, equal times as they were added."""
    acme, _ = two_tenants
    later = T0 + timedelta(days=1)
    for workspace_id, created in (("ws-z", later), ("ws-m", later), ("ws-a0", T0)):
        await store.add_membership(Membership(workspace_id, acme.user.id, Role.VIEWER, created))

    memberships = await store.list_memberships(acme.user.id)

    assert [m.workspace_id for m in memberships] == [acme.workspace_id, "ws-a0", "ws-z", "ws-m"]


async def test_revoking_a_key_keeps_the_first_time(
    store: PostgresStore, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """A key revoked twice keeps its first revocation time, and the lookup by hash sees it."""
    acme, _ = two_tenants
    first = await store.revoke_api_key(acme.workspace_id, acme.key.id, T0 + timedelta(hours=1))
    second = await store.revoke_api_key(acme.workspace_id, acme.key.id, T0 + timedelta(hours=2))

    assert first == second == msgspec.structs.replace(acme.key, revoked_at=T0 + timedelta(hours=1))
    assert await store.find_api_key(acme.key.key_hash) == first


async def test_rebuild_restores_damaged_counts(postgres_dsn: str, store: PostgresStore) -> None:
    """Rebuilding recomputes counts from events: one workspace alone, or every workspace."""
    await store.append(
        [
            batch("ws-a", "web", *(event(f"e{n}", minutes=n * 7) for n in range(20))),
            batch("ws-b", "web", *(event(f"e{n}", "click", minutes=n) for n in range(5))),
        ]
    )
    exact = await recount_from_events(postgres_dsn)
    async with owner_connection(postgres_dsn) as owner:
        await owner.execute("UPDATE eventcore.counts_minute SET count = count + 5")
        await owner.execute("DELETE FROM eventcore.counts_hour WHERE workspace_id = 'ws-b'")
        await owner.execute(
            "INSERT INTO eventcore.counts_hour VALUES ('ws-gone', 'web', %s, 'x', 3)", (T0,)
        )

    assert await store.rebuild_counts("ws-a") == Recount(20, frozenset({"ws-a"}))
    damaged = await stored_counts(postgres_dsn)
    assert {k: v for k, v in damaged.items() if k.workspace_id == "ws-a"} == {
        k: v for k, v in exact.items() if k.workspace_id == "ws-a"
    }
    assert damaged != exact

    # ws-gone has no events, but its count rows were replaced (by none): it is reported too.
    assert await store.rebuild_counts() == Recount(25, frozenset({"ws-a", "ws-b", "ws-gone"}))
    assert await stored_counts(postgres_dsn) == exact


async def test_buckets_are_utc_whatever_the_server_time_zone(postgres_dsn: str) -> None:
    """With the database's time zone set to +05:30, buckets still start on UTC minutes and hours."""
    async with owner_connection(postgres_dsn) as owner:
        database = (await (await owner.execute("SELECT current_database()")).fetchone() or [""])[0]
    odd_zone = postgres_dsn + "?options=-c%20TimeZone%3DAsia/Kolkata"
    await truncate_tables(postgres_dsn)
    async with await PostgresStore.open(odd_zone, max_size=1) as store:
        moment = datetime(2026, 3, 1, 12, 44, 30, tzinfo=UTC)
        await store.append([batch("ws-a", "web", Event("e1", "t", moment, Raw(b"{}")))])
        hours = await store.count_series("ws-a", "web", StoredGrain.HOUR, *EVERYTHING)
        [stored] = await store.list_events("ws-a", "web", limit=1)

    assert database.startswith("eventcore_test_")
    assert hours[0].bucket == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert hours[0].bucket.utcoffset() == stored.timestamp.utcoffset() == timedelta(0)
    assert await stored_counts(postgres_dsn) == Counter(
        {
            CountKey(
                "ws-a", "web", StoredGrain.MINUTE, datetime(2026, 3, 1, 12, 44, tzinfo=UTC), "t"
            ): 1,
            CountKey("ws-a", "web", StoredGrain.HOUR, datetime(2026, 3, 1, 12, tzinfo=UTC), "t"): 1,
        }
    )


async def test_ping_answers_and_a_dropped_connection_is_unavailable(
    postgres_dsn: str, store: PostgresStore
) -> None:
    """ping returns while the server answers; a killed connection raises DatabaseUnavailable."""
    await store.ping()
    async with owner_connection(postgres_dsn) as owner:
        await owner.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    with pytest.raises(DatabaseUnavailable) as failure:
        await store.ping()

    assert failure.value.code == "database_unavailable"
    await store.ping()  # the pool replaced the dead connection


async def test_the_store_opens_only_where_it_can_work(postgres_dsn: str) -> None:
    """Opening with a role that does not exist fails at once with the database's reason."""
    with pytest.raises(psycopg.Error, match="no_such_role"):
        await PostgresStore.open(postgres_dsn, app_role="no_such_role")


async def test_seeded_tenants_are_complete(store: PostgresStore) -> None:
    """The seed used by these tests puts one row of each kind in place for its workspace."""
    tenant = await seed_tenant(store, "initech")

    assert await store.get_user_by_email("initech@example.com") == tenant.user
    assert await store.list_projects(tenant.workspace_id) == [tenant.project]
    assert await store.list_api_keys(tenant.workspace_id, tenant.project.id) == [tenant.key]
    assert len(await store.list_events(tenant.workspace_id, tenant.project.id, limit=5)) == 2


async def test_before_commit_runs_once_per_append_after_its_inserts_and_before_commit(
    postgres_dsn: str,
) -> None:
    """The hook runs once per append, when every insert is made and none is committed yet."""
    await truncate_tables(postgres_dsn)
    seen: list[int] = []

    def before_commit() -> None:
        # Another session sees nothing yet: the transaction is still open.
        with psycopg.connect(postgres_dsn) as other:
            row = other.execute("SELECT count(*) FROM eventcore.events").fetchone()
        seen.append(row[0] if row else -1)

    async with await PostgresStore.open(postgres_dsn, before_commit=before_commit) as store:
        appended = await store.append(
            [batch("ws-a", "web", event("e1"), event("e2")), batch("ws-b", "web", event("e1"))]
        )
        assert await store.append([]) == AppendResult(0, 0)
        assert len(await store.list_events("ws-b", "web", limit=10)) == 1

    assert appended == AppendResult(3, 0)
    assert seen == [0]


async def test_an_append_whose_before_commit_fails_commits_nothing(postgres_dsn: str) -> None:
    """A hook that raises (a process dying there) leaves no event and no count behind."""
    await truncate_tables(postgres_dsn)

    def before_commit() -> None:
        raise RuntimeError("died before COMMIT")

    async with await PostgresStore.open(postgres_dsn, before_commit=before_commit) as store:
        with pytest.raises(RuntimeError, match="before COMMIT"):
            await store.append([batch("ws-a", "web", event("e1"), event("e2"))])

    assert await stored_counts(postgres_dsn) == Counter()
    async with owner_connection(postgres_dsn) as owner:
        cursor = await owner.execute("SELECT count(*) FROM eventcore.events")
        assert await cursor.fetchone() == (0,)


def _scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan] if "Scan" in plan["Node Type"] else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


@pytest.mark.parametrize(
    "query",
    [_SERIES[(StoredGrain.HOUR, False)], _SERIES[(StoredGrain.HOUR, True)], _TYPE_TOTALS],
    ids=["series", "series-of-a-type", "type-totals"],
)
async def test_hour_count_reads_are_index_only_scans(
    store: PostgresStore, postgres_dsn: str, query: str
) -> None:
    """The hour reads find every column in the covering index: no heap page is visited once the
    table is vacuumed (whatever the table's size makes the planner prefer, seq and bitmap scans
    are ruled out here so that the choice is between the indexes)."""
    events = [event(f"e{n}", ("click", "view")[n % 2], minutes=37 * n) for n in range(200)]
    await store.append([batch("ws-a", "web", *events), batch("ws-b", "web", *events[:50])])
    async with owner_connection(postgres_dsn) as conn:
        await conn.execute("VACUUM ANALYZE eventcore.counts_hour")
    parameters = {
        "workspace_id": "ws-a",
        "project_id": "web",
        "start": T0,
        "end": T0 + timedelta(days=30),
        "event_type": "click",
    }
    async with app_connection(postgres_dsn) as conn, conn.transaction():
        await conn.execute(SET_TENANT, ("ws-a",))
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        cursor = await conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, parameters)
        ((explained,),) = await cursor.fetchall()

    (scan,) = _scans(explained[0]["Plan"])
    assert scan["Node Type"] == "Index Only Scan", scan
    assert scan["Index Name"] == "counts_hour_covering"
    assert scan["Heap Fetches"] == 0
    assert scan["Actual Rows"] > 0


async def test_an_expiry_chunk_commits_asynchronously_and_flushes_as_it_writes(
    postgres_dsn: str,
) -> None:
    """An expiry chunk's transaction runs with synchronous_commit off and backend_flush_after
    256kB (bench/README.md, "Retention"), and only it: an append on the same connection before
    and after it, and a deletion request's delete, keep the server's settings. A statement
    trigger on the events table records the settings each insert and delete ran with."""
    async with owner_connection(postgres_dsn) as conn:
        await conn.execute(
            "CREATE TABLE public.seen_settings (op text, sync text, flush text, seq serial)"
        )
        await conn.execute(
            "CREATE FUNCTION public.record_settings() RETURNS trigger LANGUAGE plpgsql"
            " SECURITY DEFINER SET search_path = pg_catalog AS $$ BEGIN"
            " INSERT INTO public.seen_settings (op, sync, flush) VALUES (TG_OP,"
            " current_setting('synchronous_commit'), current_setting('backend_flush_after'));"
            " RETURN NULL; END $$"
        )
        await conn.execute(
            "CREATE TRIGGER record_settings AFTER INSERT OR DELETE ON eventcore.events"
            " FOR EACH STATEMENT EXECUTE FUNCTION public.record_settings()"
        )
    try:
        async with postgres_store(postgres_dsn, min_size=1, max_size=1) as store:
            old = [event(f"old{n}", minutes=n) for n in range(10)]
            await store.append([batch("ws-a", "web", *old)])
            before = T0 + timedelta(minutes=6)
            assert await store.expire_events("ws-a", "web", before, limit=4) == 4
            assert await store.expire_events("ws-a", "web", before, limit=4) == 2
            await store.append([batch("ws-a", "web", event("new"))])
            assert (
                await store.delete_events(
                    "ws-a", "web", EventSelector(event_ids=("old8",)), limit=100
                )
                == 1
            )
        async with owner_connection(postgres_dsn) as conn:
            cursor = await conn.execute(
                "SELECT op, sync, flush FROM public.seen_settings ORDER BY seq"
            )
            seen = await cursor.fetchall()
            cursor = await conn.execute(
                "SELECT current_setting('synchronous_commit'),"
                " current_setting('backend_flush_after')"
            )
            server = await cursor.fetchone()
    finally:
        async with owner_connection(postgres_dsn) as conn:
            await conn.execute("DROP TRIGGER record_settings ON eventcore.events")
            await conn.execute("DROP FUNCTION public.record_settings()")
            await conn.execute("DROP TABLE public.seen_settings")

    assert server is not None
    assert server != ("off", "256kB")
    first_append, *expiry, second_append, deletion = seen
    assert first_append == second_append == ("INSERT", *server)
    assert deletion == ("DELETE", *server)
    # Two chunks, a statement or two each.
    assert len(expiry) >= 2
    assert set(expiry) == {("DELETE", "off", "256kB")}
