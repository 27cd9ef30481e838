"""The audit log is append-only at the database: the application role may add and read its own
workspace's entries, and every statement that would change or remove one fails."""

from __future__ import annotations

import psycopg
import pytest
from tests.integration.postgres.conftest import T0, Tenant
from tests.integration.postgres.test_postgres_row_level_security import write_as
from tests.support.postgres import app_connection, owner_connection

from eventcore.adapters.postgres import PostgresStore
from eventcore.audit import ActorType, AuditAction, AuditEntry

pytestmark = pytest.mark.integration

ALTERATIONS = [
    "UPDATE eventcore.audit_log SET action = 'nothing.happened' WHERE workspace_id = %s",
    "UPDATE eventcore.audit_log SET workspace_id = workspace_id WHERE workspace_id = %s",
    "DELETE FROM eventcore.audit_log WHERE workspace_id = %s",
    "DELETE FROM eventcore.audit_log WHERE workspace_id = %s AND false",
]


async def recorded(store: PostgresStore, tenant: Tenant) -> AuditEntry:
    entry = AuditEntry(
        id=f"audit-{tenant.workspace_id}",
        workspace_id=tenant.workspace_id,
        at=T0,
        action=AuditAction.PROJECT_CREATED,
        actor_type=ActorType.USER,
        actor_id=tenant.user.id,
        target_type="project",
        target_id=tenant.project.id,
    )
    await store.record_audit(entry)
    return entry


async def count(postgres_dsn: str, workspace_id: str) -> int:
    async with owner_connection(postgres_dsn) as owner:
        cursor = await owner.execute(
            "SELECT count(*) FROM eventcore.audit_log WHERE workspace_id = %s", (workspace_id,)
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("statement", ALTERATIONS)
async def test_the_application_role_cannot_change_or_delete_an_entry(
    postgres_dsn: str,
    store: PostgresStore,
    two_tenants: tuple[Tenant, Tenant],
    statement: str,
) -> None:
    """Even for its own workspace's rows, and even one matching no row: permission denied."""
    acme, _ = two_tenants
    await recorded(store, acme)

    async with app_connection(postgres_dsn) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            await write_as(app, acme.workspace_id, statement, (acme.workspace_id,))

    assert await count(postgres_dsn, acme.workspace_id) == 1


async def test_the_application_role_cannot_truncate_it(
    postgres_dsn: str, store: PostgresStore, two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = two_tenants
    await recorded(store, acme)

    async with app_connection(postgres_dsn) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            await app.execute("TRUNCATE eventcore.audit_log")

    assert await count(postgres_dsn, acme.workspace_id) == 1


async def test_entries_are_walled_in_like_every_tenant_row(
    postgres_dsn: str, store: PostgresStore, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """Forced row-level security: set to one workspace, the role reads only its entries and
    cannot add one to another workspace."""
    acme, globex = two_tenants
    await recorded(store, acme)
    await recorded(store, globex)

    async with app_connection(postgres_dsn) as app:
        async with app.transaction():
            await app.execute(
                "SELECT set_config('app.workspace_id', %s, true)", (acme.workspace_id,)
            )
            cursor = await app.execute("SELECT DISTINCT workspace_id FROM eventcore.audit_log")
            assert {row[0] for row in await cursor.fetchall()} == {acme.workspace_id}
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            await write_as(
                app,
                acme.workspace_id,
                "INSERT INTO eventcore.audit_log (workspace_id, entry_id, at, action, actor_type,"
                " details) VALUES (%s, 'forged', now(), 'signup', 'user', '{}')",
                (globex.workspace_id,),
            )
    async with owner_connection(postgres_dsn) as owner:
        cursor = await owner.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE oid = 'eventcore.audit_log'::regclass"
        )
        assert await cursor.fetchone() == (True, True)
