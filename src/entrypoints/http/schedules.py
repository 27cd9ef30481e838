"""What every API process does on a schedule, besides answering: finish open deletions, and
remove what is past its retention. Each runs at start-up, then every so often, until the app
stops; a failed round is logged and the next one tries again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from eventcore.platform import Platform

log = structlog.get_logger("eventcore.schedules")


async def every(seconds: float, name: str, work: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await work()
        except Exception as exc:
            log.warning(f"{name}.failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(seconds)


def start(platform: Platform, *, deletions: float, retention: float) -> list[asyncio.Task[None]]:
    """The schedules of one API process, running: cancel them when it stops."""

    async def run_retention() -> None:
        retained = await platform.maintenance.run_retention()
        if retained.audit_entries or retained.events:
            log.info(
                "retention.ran",
                audit_entries=retained.audit_entries,
                events=retained.events,
                projects=retained.projects,
            )

    loop = asyncio.get_running_loop()
    return [
        loop.create_task(every(deletions, "deletion.sweep", platform.deletions.run_open)),
        loop.create_task(every(retention, "retention", run_retention)),
    ]
