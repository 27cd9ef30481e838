"""Migrations: shipped with the package, applied once, safe to run from many processes at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from msgspec import Raw
from tests.support.postgres import fresh_database, owner_connection

from eventcore.adapters.postgres import MigrationError, PostgresStore, load_migrations, migrate
from eventcore.aggregation import CountPoint, EventTypeCount, StoredGrain
from eventcore.events import Event, IngestBatch

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


HOUR_WINDOW = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))


async def hour_answers(dsn: str) -> list[list[CountPoint] | list[EventTypeCount]]:
    """Every hour-count read the store answers for the two workspaces of the upgrade test."""
    answers: list[list[CountPoint] | list[EventTypeCount]] = []
    async with await PostgresStore.open(dsn) as store:
        for workspace_id in ("ws-a", "ws-b"):
            for event_type in (None, "click"):
                answers.append(
                    await store.count_series(
                        workspace_id, "web", StoredGrain.HOUR, *HOUR_WINDOW, event_type
                    )
                )
            answers.append(await store.event_type_totals(workspace_id, "web", *HOUR_WINDOW))
    return answers


async def test_the_covering_hour_index_upgrade_keeps_every_answer() -> None:
    """A database at 0003 holding counts takes migration 0004 (the covering index of the hour
    counts) and answers every hour read exactly as before, and appends go on counting."""
    with fresh_database() as dsn:
        start = HOUR_WINDOW[0] + timedelta(hours=5)
        events = [
            Event(
                f"e{n}",
                ("click", "view", "buy")[n % 3],
                start + timedelta(minutes=17 * n),
                Raw(b"{}"),
            )
            for n in range(120)
        ]
        async with await PostgresStore.open(dsn) as store:
            await store.append(
                [
                    IngestBatch("ws-a", "web", start, events),
                    IngestBatch("ws-b", "web", start, events[::4]),
                ]
            )
        # Back to 0003 as it shipped: no index, the default table options, no record of 0004.
        async with owner_connection(dsn) as conn:
            await conn.execute("DROP INDEX eventcore.counts_hour_covering")
            await conn.execute(
                "ALTER TABLE eventcore.counts_hour RESET"
                " (autovacuum_vacuum_scale_factor, autovacuum_vacuum_insert_scale_factor)"
            )
            await conn.execute("DELETE FROM eventcore.schema_migrations WHERE version = '0004'")
        before = await hour_answers(dsn)

        assert await migrate(dsn) == ["0004"]

        assert await hour_answers(dsn) == before
        assert sum(point.count for point in before[0]) == 120
        async with owner_connection(dsn) as conn:
            cursor = await conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'eventcore'"
                " AND indexname = 'counts_hour_covering'"
            )
            (definition,) = await cursor.fetchone() or ("",)
            cursor = await conn.execute(
                "SELECT reloptions FROM pg_class WHERE oid = 'eventcore.counts_hour'::regclass"
            )
            (options,) = await cursor.fetchone() or ([],)
        assert definition.startswith("CREATE UNIQUE INDEX counts_hour_covering")
        assert "INCLUDE (count)" in definition
        assert "autovacuum_vacuum_scale_factor=0.01" in options
        # The index is also an arbiter of the appends' ON CONFLICT: later events still add up.
        late = msgspec.structs.replace(events[0], id="late")
        async with await PostgresStore.open(dsn) as store:
            assert (await store.append([IngestBatch("ws-a", "web", start, [late])])).inserted == 1
        after = await hour_answers(dsn)
        assert sum(point.count for point in after[0]) == 121
        assert after[3:] == before[3:]


@pytest.mark.parametrize("shipped", [8, 10])
async def test_a_store_on_an_older_schema_is_not_ready_until_migrated(
    monkeypatch: pytest.MonkeyPatch, shipped: int
) -> None:
    """On a database migrated by an older eventcore (before 0011 made the version readable, or
    after), the store opens but its schema check says to run `eventcore migrate`: a server
    stops at start-up with that line instead of serving 500s on tables it lacks; once migrated
    the check passes."""
    from eventcore.adapters.postgres import schema
    from eventcore.errors import DatabaseUnavailable

    every = schema.load_migrations()
    with fresh_database(migrated=False) as dsn:
        monkeypatch.setattr(schema, "load_migrations", lambda: every[:shipped])
        await migrate(dsn)
        monkeypatch.undo()
        async with await PostgresStore.open(dsn) as store:
            with pytest.raises(DatabaseUnavailable, match="run `eventcore migrate`") as refused:
                await store.check_schema()
            assert f"needs {VERSIONS[-1]}" in refused.value.message
            await store.ping()
            await migrate(dsn)
            await store.check_schema()
