"""The suppressions table (0015), proven at the database: row-level security like every tenant
table, and the application role's grants (no TRUNCATE)."""

from __future__ import annotations

import psycopg
import pytest
from tests.integration.postgres.conftest import T0, Tenant
from tests.integration.postgres.test_postgres_row_level_security import write_as
from tests.support.postgres import app_connection, owner_connection

from eventcore.adapters.postgres import DEFAULT_APP_ROLE, PostgresStore
from eventcore.deletions import Deletion, DeletionStatus, EventSelector

pytestmark = pytest.mark.integration

_INSERT = (
    "INSERT INTO eventcore.suppressions (workspace_id, project_id, user_id, suppressed_at,"
    " deletion_id) VALUES (%s, %s, 'intruder', now(), 'del-x')"
)


async def suppress(store: PostgresStore, tenant: Tenant, *persons: str) -> None:
    await store.create_deletion(
        Deletion(
            id=f"del-{tenant.workspace_id}",
            workspace_id=tenant.workspace_id,
            project_id=tenant.project.id,
            selector=EventSelector(user_ids=persons),
            status=DeletionStatus.PENDING,
            requested_at=T0,
            requested_by=tenant.user.id,
            suppress=True,
        )
    )


async def test_the_table_has_forced_row_level_security_and_the_app_roles_grants(
    postgres_dsn: str,
) -> None:
    async with owner_connection(postgres_dsn) as conn:
        cursor = await conn.execute(
            "SELECT c.relrowsecurity, c.relforcerowsecurity,"
            " EXISTS (SELECT FROM pg_policies p WHERE p.schemaname = 'eventcore'"
            "         AND p.tablename = 'suppressions' AND p.policyname = 'tenant_isolation'),"
            " has_table_privilege(%(role)s, c.oid, 'SELECT'),"
            " has_table_privilege(%(role)s, c.oid, 'INSERT'),"
            " has_table_privilege(%(role)s, c.oid, 'DELETE'),"
            " has_table_privilege(%(role)s, c.oid, 'UPDATE'),"
            " has_table_privilege(%(role)s, c.oid, 'TRUNCATE')"
            " FROM pg_class c WHERE c.oid = 'eventcore.suppressions'::regclass",
            {"role": DEFAULT_APP_ROLE},
        )
        flags = await cursor.fetchone()

    assert flags == (True, True, True, True, True, True, True, False)


async def test_a_workspace_sees_adds_and_lifts_only_its_own_suppressions(
    postgres_dsn: str, store: PostgresStore, two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, globex = two_tenants
    await suppress(store, acme, "ada")
    await suppress(store, globex, "ada", "bob")

    async with app_connection(postgres_dsn) as app:
        async with app.transaction():
            await app.execute(
                "SELECT set_config('app.workspace_id', %s, true)", (acme.workspace_id,)
            )
            cursor = await app.execute("SELECT workspace_id, user_id FROM eventcore.suppressions")
            visible = await cursor.fetchall()
            removed = await app.execute(
                "DELETE FROM eventcore.suppressions WHERE workspace_id = %s",
                (globex.workspace_id,),
            )
            assert removed.rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            await write_as(app, acme.workspace_id, _INSERT, (globex.workspace_id, "prj-x"))

    assert visible == [(acme.workspace_id, "ada")]
    assert await store.suppressed_persons(globex.workspace_id, globex.project.id) == {"ada", "bob"}
