"""Row-level security, proven at the database: the application role sees and writes one tenant."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from msgspec import Raw
from psycopg import sql
from psycopg.pq import TransactionStatus
from tests.integration.postgres.conftest import T0, Tenant, seed_tenant
from tests.support.postgres import (
    ADMIN_DSN,
    TENANT_TABLES,
    app_connection,
    create_database,
    drop_database,
    dsn_for,
    owner_connection,
    require_server,
)

from eventcore.adapters.postgres import DEFAULT_APP_ROLE, PostgresStore, migrate
from eventcore.events import Event, IngestBatch
from eventcore.ports import Recount

pytestmark = pytest.mark.integration

# One row of each tenant table for a given workspace, as the application would write it.
INSERTS = {
    "workspaces": (
        "INSERT INTO eventcore.workspaces (workspace_id, name, created_at) VALUES (%s, 'x', now())"
    ),
    "memberships": (
        "INSERT INTO eventcore.memberships (workspace_id, user_id, role, created_at)"
        " VALUES (%s, 'intruder', 'owner', now())"
    ),
    "projects": (
        "INSERT INTO eventcore.projects (workspace_id, project_id, name, created_at)"
        " VALUES (%s, 'prj-x', 'x', now())"
    ),
    "api_keys": (
        "INSERT INTO eventcore.api_keys (workspace_id, key_id, project_id, name, prefix,"
        " key_hash, created_at) VALUES (%s, 'key-x', 'prj-x', 'x', 'ek_', 'hash-x', now())"
    ),
    "events": (
        "INSERT INTO eventcore.events (workspace_id, project_id, event_id, event_time,"
        " received_at, type, properties) VALUES (%s, 'prj-x', 'e-x', now(), now(), 't', '{}')"
    ),
    "counts_minute": (
        "INSERT INTO eventcore.counts_minute (workspace_id, project_id, bucket, event_type, count)"
        " VALUES (%s, 'prj-x', '2026-03-01T12:00Z', 't', 1)"
    ),
    "counts_hour": (
        "INSERT INTO eventcore.counts_hour (workspace_id, project_id, bucket, event_type, count)"
        " VALUES (%s, 'prj-x', '2026-03-01T12:00Z', 't', 1)"
    ),
    "users_hour": (
        "INSERT INTO eventcore.users_hour (workspace_id, project_id, bucket, event_type, sketch)"
        " VALUES (%s, 'prj-x', '2026-03-01T12:00Z', 't', '\\x00')"
    ),
    "users_day": (
        "INSERT INTO eventcore.users_day (workspace_id, project_id, day, event_type, sketch)"
        " VALUES (%s, 'prj-x', '2026-03-01T00:00Z', 't', '\\x00')"
    ),
    "dims_day": (
        "INSERT INTO eventcore.dims_day (workspace_id, project_id, event_type, dimension, day,"
        " kind, value, count) VALUES (%s, 'prj-x', 't', 'plan', '2026-03-01T00:00Z', 0, 'pro', 1)"
    ),
}


def table(name: str) -> sql.Identifier:
    return sql.Identifier("eventcore", name)


async def write_as(
    app: psycopg.AsyncConnection[tuple[Any, ...]],
    workspace_id: str,
    statement: str,
    parameters: tuple[Any, ...],
) -> None:
    """Run one write in a transaction set to ``workspace_id``, as the store does."""
    async with app.transaction():
        await app.execute("SELECT set_config('app.workspace_id', %s, true)", (workspace_id,))
        await app.execute(statement, parameters)


async def test_every_tenant_table_has_forced_row_level_security(postgres_dsn: str) -> None:
    """Each tenant table has row-level security enabled and forced, with a tenant policy."""
    async with owner_connection(postgres_dsn) as conn:
        cursor = await conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " EXISTS (SELECT FROM pg_policies p WHERE p.schemaname = 'eventcore'"
            "         AND p.tablename = c.relname AND p.policyname = 'tenant_isolation')"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'eventcore' AND c.relkind = 'r'"
        )
        tables = {name: flags for name, *flags in await cursor.fetchall()}

    for name in TENANT_TABLES:
        assert tables[name] == [True, True, True], name
    assert tables["users"] == [False, False, False]


async def test_without_a_workspace_setting_no_tenant_row_is_visible(
    postgres_dsn: str, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """A transaction of the application role that set no workspace sees no row of any tenant table."""
    async with owner_connection(postgres_dsn) as owner, app_connection(postgres_dsn) as app:
        for name in TENANT_TABLES:
            query = sql.SQL("SELECT count(*) FROM {}").format(table(name))
            async with app.transaction():
                seen = await (await app.execute(query)).fetchone()
            stored = await (await owner.execute(query)).fetchone()
            assert seen == (0,), name
            assert stored is not None, name
            assert stored[0] >= 2, name  # rows exist: the test is not vacuous


async def test_a_transaction_for_one_workspace_sees_none_of_anothers_rows(
    postgres_dsn: str, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """Set to workspace A, the application role sees A's rows and none of B's, even by asking."""
    acme, globex = two_tenants
    async with app_connection(postgres_dsn) as app:
        for name in TENANT_TABLES:
            async with app.transaction():
                await app.execute(
                    "SELECT set_config('app.workspace_id', %s, true)", (acme.workspace_id,)
                )
                cursor = await app.execute(
                    sql.SQL("SELECT DISTINCT workspace_id FROM {}").format(table(name))
                )
                visible = {row[0] for row in await cursor.fetchall()}
                cursor = await app.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE workspace_id = %s").format(table(name)),
                    (globex.workspace_id,),
                )
                asked_for = await cursor.fetchone()
            assert visible == {acme.workspace_id}, name
            assert asked_for == (0,), name


@pytest.mark.parametrize("name", TENANT_TABLES)
async def test_inserting_another_workspaces_row_is_refused(
    postgres_dsn: str, two_tenants: tuple[Tenant, Tenant], name: str
) -> None:
    """Set to workspace A, inserting a row for workspace B fails the policy check."""
    acme, globex = two_tenants
    async with app_connection(postgres_dsn) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            await write_as(app, acme.workspace_id, INSERTS[name], (globex.workspace_id,))


async def test_rows_cannot_be_moved_changed_or_deleted_across_workspaces(
    postgres_dsn: str, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """Set to A, updates and deletes touch none of B's rows, and no row of A can become B's."""
    acme, globex = two_tenants
    async with app_connection(postgres_dsn) as app:
        async with app.transaction():
            await app.execute(
                "SELECT set_config('app.workspace_id', %s, true)", (acme.workspace_id,)
            )
            deleted = await app.execute(
                "DELETE FROM eventcore.events WHERE workspace_id = %s", (globex.workspace_id,)
            )
            updated = await app.execute(
                "UPDATE eventcore.projects SET name = 'stolen' WHERE workspace_id = %s",
                (globex.workspace_id,),
            )
            assert (deleted.rowcount, updated.rowcount) == (0, 0)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            await write_as(
                app,
                acme.workspace_id,
                "UPDATE eventcore.events SET workspace_id = %s",
                (globex.workspace_id,),
            )
    async with owner_connection(postgres_dsn) as owner:
        cursor = await owner.execute(
            "SELECT count(*) FROM eventcore.events WHERE workspace_id = %s", (globex.workspace_id,)
        )
        assert await cursor.fetchone() == (2,)


async def test_the_application_role_is_not_owner_superuser_or_bypassrls(
    postgres_dsn: str, store: PostgresStore
) -> None:
    """The store's connections work as a role that owns nothing and may only read and write rows."""
    async with store.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT current_user, r.rolsuper, r.rolbypassrls, r.rolcanlogin"
            " FROM pg_roles r WHERE r.rolname = current_user"
        )
        assert await cursor.fetchone() == (DEFAULT_APP_ROLE, False, False, False)
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'eventcore' AND pg_get_userbyid(c.relowner) = current_user"
        )
        assert await cursor.fetchone() == (0,)
        cursor = await conn.execute(
            "SELECT has_schema_privilege('eventcore', 'CREATE'),"
            " has_table_privilege('eventcore.events', 'TRUNCATE'),"
            " has_table_privilege('eventcore.events', 'REFERENCES'),"
            " has_table_privilege('eventcore.events', 'TRIGGER'),"
            " has_table_privilege('eventcore.schema_migrations', 'SELECT'),"
            " has_table_privilege('eventcore.events', 'INSERT')"
        )
        assert await cursor.fetchone() == (False, False, False, False, False, True)


async def test_a_pooled_connection_carries_nothing_into_the_next_checkout(
    postgres_dsn: str, two_tenants: tuple[Tenant, Tenant], caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever one checkout did to the session (tenant, role, open transaction) is gone in the next."""
    acme, _ = two_tenants
    caplog.set_level(logging.ERROR, logger="psycopg.pool")  # the pool warns about the rollback
    async with await PostgresStore.open(postgres_dsn, min_size=1, max_size=1) as single:
        assert len(await single.list_events(acme.workspace_id, acme.project.id, limit=10)) == 2
        conn = await single.pool.getconn()
        backend = conn.info.backend_pid
        # A careless checkout: the tenant set for the session, the role dropped, a transaction
        # left open, a temporary table made.
        await conn.execute("SELECT set_config('app.workspace_id', %s, false)", (acme.workspace_id,))
        await conn.execute("RESET ROLE")
        await conn.execute("CREATE TEMPORARY TABLE leftover (n int)")
        await conn.execute("BEGIN")
        await conn.execute("SELECT set_config('app.workspace_id', %s, true)", (acme.workspace_id,))
        await single.pool.putconn(conn)

        async with single.pool.connection() as again:
            assert again.info.backend_pid == backend  # the very same session
            assert again.info.transaction_status is TransactionStatus.IDLE
            cursor = await again.execute(
                "SELECT coalesce(current_setting('app.workspace_id', true), ''), current_user,"
                " to_regclass('pg_temp.leftover') IS NULL, current_setting('TimeZone')"
            )
            assert await cursor.fetchone() == ("", DEFAULT_APP_ROLE, True, "UTC")
            cursor = await again.execute("SELECT count(*) FROM eventcore.events")
            assert await cursor.fetchone() == (0,)

        # And the store still works on it, as the application role.
        assert len(await single.list_events(acme.workspace_id, acme.project.id, limit=10)) == 2


async def test_cross_tenant_lookups_answer_only_their_own_question(
    postgres_dsn: str, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """The SECURITY DEFINER lookups return their row, but open no table to the application role."""
    acme, globex = two_tenants
    async with app_connection(postgres_dsn) as app:
        cursor = await app.execute(
            "SELECT key_id FROM eventcore.find_api_key(%s)", (globex.key.key_hash,)
        )
        assert await cursor.fetchall() == [(globex.key.id,)]
        cursor = await app.execute(
            "SELECT workspace_id FROM eventcore.memberships_of_user(%s)", (acme.user.id,)
        )
        assert await cursor.fetchall() == [(acme.workspace_id,)]
        # The owner's lookup policies do not apply to the application role, whatever it sets.
        await app.execute("SET eventcore.definer_lookup = 'on'")
        for name in ("api_keys", "memberships", "events", "users_hour", "dims_day"):
            cursor = await app.execute(sql.SQL("SELECT count(*) FROM {}").format(table(name)))
            assert await cursor.fetchone() == (0,), name


@pytest.fixture
def plain_owner() -> Iterator[str]:
    """A database owned by a login role that is not superuser (as a managed database's admin)."""
    require_server()
    role = f"eventcore_test_owner_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(role)))
    database = create_database(owner=role)
    try:
        yield dsn_for(database, user=role)
    finally:
        drop_database(database)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


async def test_a_plain_owner_is_walled_in_too_and_the_lookups_still_work(plain_owner: str) -> None:
    """With a non-superuser owner, FORCE binds the owner, and the store works end to end."""
    assert await migrate(plain_owner)
    async with await PostgresStore.open(plain_owner, max_size=2) as store:
        acme = await seed_tenant(store, "acme")
        await seed_tenant(store, "globex")
        assert await store.find_api_key(acme.key.key_hash) == acme.key
        assert [m.workspace_id for m in await store.list_memberships(acme.user.id)] == [
            acme.workspace_id
        ]
        late = Event("late", "signup", T0 + timedelta(hours=1), Raw(b"{}"))
        await store.append([IngestBatch(acme.workspace_id, acme.project.id, T0, [late])])
        assert await store.rebuild_counts() == Recount(5, frozenset({"ws-acme", "ws-globex"}))
    async with owner_connection(plain_owner) as owner:
        # The owner itself, without a workspace, sees no tenant rows: FORCE applies to it.
        cursor = await owner.execute("SELECT count(*) FROM eventcore.events")
        assert await cursor.fetchone() == (0,)
