"""eventcore inside another service: the embedded profile as an async context manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec

from eventcore.entrypoints.bootstrap import (
    ApiContainer,
    close_resources,
    open_resources,
    resolve,
)
from eventcore.entrypoints.settings import Settings
from eventcore.platform import Platform


@asynccontextmanager
async def open_embedded(
    data_dir: str | Path = "./eventcore-data", **settings: Any
) -> AsyncIterator[Platform]:
    """The same wiring as ``eventcore serve``, without HTTP: SQLite under ``data_dir``.

    Keyword arguments override :class:`~eventcore.entrypoints.settings.Settings` fields, for example
    ``rate_limit_events_per_second=0`` to switch rate limiting off.
    """
    config = msgspec.structs.replace(Settings(data_dir=str(data_dir)), **settings)
    container = ApiContainer(settings=config)
    await open_resources(container)
    try:
        yield await resolve(container.platform)
    finally:
        await close_resources(container)
