"""The operator commands behind ``eventcore migrate``, ``dlq`` and ``rollup``."""

from __future__ import annotations

import sys

import msgspec

from eventcore.entrypoints.container import build_container, start, stop
from eventcore.entrypoints.settings import ConfigurationError, Settings


async def migrate(settings: Settings) -> None:
    """Create or upgrade the schema; safe to run again and from several processes at once."""
    if settings.uses_postgres:
        from eventcore.adapters.postgres import migrate as migrate_postgres

        applied = await migrate_postgres(settings.database_url)
    else:
        from eventcore.adapters.sqlite import SqliteStore

        # Opening the embedded store brings its schema up to date.
        store = await SqliteStore.open(settings.sqlite_path)
        await store.close()
        applied = []
    if applied:
        print(f"applied migrations: {', '.join(applied)}")
    else:
        print("the schema is up to date")


def _require_queue(settings: Settings) -> None:
    if not settings.distributed:
        raise ConfigurationError(
            "The dead-letter queue exists in the distributed profile: set EVENTCORE_AMQP_URL."
        )


async def dlq_list(settings: Settings, *, limit: int, as_json: bool) -> None:
    _require_queue(settings)
    from eventcore.adapters.rabbitmq import dlq_list as list_dead

    letters = await list_dead(settings.amqp_url, settings.queue_names, limit=limit)
    if as_json:
        for letter in letters:
            sys.stdout.write(msgspec.json.encode(letter).decode() + "\n")
        return
    if not letters:
        print("the dead-letter queue is empty")
        return
    for letter in letters:
        fields = msgspec.structs.asdict(letter)
        print("  ".join(f"{name}={value}" for name, value in fields.items() if value is not None))
    print(f"{len(letters)} dead-lettered batch(es) shown")


async def dlq_replay(settings: Settings, *, limit: int | None) -> None:
    _require_queue(settings)
    from eventcore.adapters.rabbitmq import dlq_replay as replay

    moved = await replay(settings.amqp_url, settings.queue_names, limit=limit)
    print(f"replayed {moved} batch(es) into {settings.queue_name}")


async def rollup_rebuild(settings: Settings, *, workspace_id: str | None) -> None:
    """Recompute the count tables from raw events (a repair; ingest may keep running)."""
    container = build_container(settings)
    platform = await start(container)
    try:
        counted = await platform.store.rebuild_counts(workspace_id)
        if workspace_id is not None:
            await container.gateways.query_cache().bump([workspace_id])
    finally:
        await stop(container)
    scope = f"workspace {workspace_id}" if workspace_id else "every workspace"
    print(f"recounted {counted} events for {scope}")
