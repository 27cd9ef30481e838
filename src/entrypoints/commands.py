"""The operator commands behind ``eventcore migrate``, ``dlq``, ``rollup``, ``retention`` and
``export``."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import msgspec
from dependency_injector import providers

from eventcore.entrypoints.bootstrap import (
    CommandContainer,
    Readiness,
    api_readiness,
    close_resources,
    rabbit_options,
    resolve,
)
from eventcore.entrypoints.preflight import open_checked, reaching
from eventcore.entrypoints.settings import ConfigurationError, Settings
from eventcore.usecases.maintenance import Maintenance


async def migrate(settings: Settings) -> None:
    """Create or upgrade the schema; safe to run again and from several processes at once."""
    if settings.uses_postgres:
        from eventcore.adapters.postgres import migrate as migrate_postgres

        with reaching("database"):
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

    options = rabbit_options(settings)
    with reaching("queue"):
        letters = await list_dead(options.url, options.names, limit=limit)
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

    options = rabbit_options(settings)
    with reaching("queue"):
        moved = await replay(options.url, options.names, limit=limit)
    print(f"replayed {moved} batch(es) into {settings.queue_name}")


@asynccontextmanager
async def _maintenance(settings: Settings) -> AsyncIterator[Maintenance]:
    """The maintenance use case on the configured store, closed after. The servers it needs are
    checked as `serve` checks them: one that is down is one line."""
    container = CommandContainer(settings=settings)
    readiness: providers.Provider[Readiness] = providers.Singleton(
        api_readiness,
        container.gateways.store,
        container.gateways.redis,
        providers.Object(None),
    )
    await open_checked(container, readiness)
    try:
        yield await resolve(container.maintenance)
    finally:
        await close_resources(container)


async def rollup_rebuild(settings: Settings, *, workspace_id: str | None) -> None:
    """Recompute the count tables from raw events (a repair; ingest may keep running), and
    retire every cached answer computed from the old counts."""
    async with _maintenance(settings) as maintenance:
        recount = await maintenance.rebuild_counts(workspace_id)
    scope = f"workspace {workspace_id}" if workspace_id else "every workspace"
    print(f"recounted {recount.events} events for {scope}")


async def retention_run(settings: Settings) -> None:
    """Remove what is past its retention now (the schedule of every API process does the same
    each hour)."""
    async with _maintenance(settings) as maintenance:
        retained = await maintenance.run_retention()
    days = settings.audit_retention_days
    if not days:
        print("the audit log is kept for ever (EVENTCORE_AUDIT_RETENTION_DAYS=0): nothing removed")
    else:
        print(f"removed {retained.audit_entries} audit log entries older than {days} days")
    projects = "project" if retained.projects == 1 else "projects"
    print(
        f"expired {retained.events} events of {retained.projects} {projects}"
        " past their project's retention"
    )


async def export(
    settings: Settings,
    *,
    workspace_id: str,
    project_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    event_type: str | None = None,
) -> None:
    """A project's stored events to stdout as NDJSON, page by page; the count on stderr."""
    from eventcore.entrypoints.http.schemas import ndjson

    out = sys.stdout.buffer
    lines = 0
    async with _maintenance(settings) as maintenance:
        pages = await maintenance.export(
            workspace_id, project_id, start=start, end=end, event_type=event_type
        )
        try:
            async for chunk in ndjson(pages):
                out.write(chunk)
                out.flush()
                lines += chunk.count(b"\n")
        except BrokenPipeError:
            # The reader stopped (`| head`): stop too, without a traceback at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return
    print(f"exported {lines} events", file=sys.stderr)
