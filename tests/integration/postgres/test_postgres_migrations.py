"""Migrations: shipped with the package, applied once, safe to run from many processes at once."""

from __future__ import annotations

import asyncio

import pytest
from tests.support.postgres import fresh_database, owner_connection

from eventcore.adapters.postgres import MigrationError, load_migrations, migrate

pytestmark = pytest.mark.integration

VERSIONS = [m.version for m in load_migrations()]


async def applied_versions(dsn: str) -> list[str]:
    async with owner_connection(dsn) as conn:
        cursor = await conn.execute("SELECT version FROM eventcore.schema_migrations ORDER BY 1")
        return [row[0] for row in await cursor.fetchall()]


def test_migrations_are_packaged_in_version_order() -> None:
    """The package holds numbered SQL migrations, loaded in version order, each naming the role."""
    migrations = load_migrations()

    assert sorted(set(VERSIONS)) == VERSIONS
    assert [m.version for m in migrations[:3]] == ["0001", "0002", "0003"]
    rendered = b"".join(m.render('odd"role') for m in migrations)
    assert b'"odd""role"' in rendered
    assert b':"app_role"' not in rendered


async def test_a_second_migrate_applies_nothing(postgres_dsn: str) -> None:
    """Migrating an up-to-date database applies nothing and leaves the history as it was."""
    before = await applied_versions(postgres_dsn)

    assert await migrate(postgres_dsn) == []
    assert await applied_versions(postgres_dsn) == before == VERSIONS


async def test_concurrent_migrations_apply_each_version_once() -> None:
    """Three migrations started together on a fresh database: one applies all, the others none."""
    with fresh_database(migrated=False) as dsn:
        results = await asyncio.gather(*(migrate(dsn) for _ in range(3)))

        assert sorted(results) == [[], [], VERSIONS]
        assert await applied_versions(dsn) == VERSIONS
        async with owner_connection(dsn) as conn:
            cursor = await conn.execute("SELECT count(*) FROM eventcore.events")
            assert await cursor.fetchone() == (0,)


async def test_a_migration_changed_after_it_was_applied_is_refused() -> None:
    """If an applied migration's file no longer matches its recorded checksum, migrate stops."""
    with fresh_database() as dsn:
        async with owner_connection(dsn) as conn:
            await conn.execute(
                "UPDATE eventcore.schema_migrations SET checksum = 'edited' WHERE version = '0001'"
            )

        with pytest.raises(MigrationError, match="0001_tables was changed"):
            await migrate(dsn)
