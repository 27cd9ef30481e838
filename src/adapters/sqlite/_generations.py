"""The analytics cache's generations kept in the SQLite file, for every process serving it.

With ``eventcore serve --workers N`` on SQLite, each process commits what it receives and
answers from its own memory. A generation kept in one process's memory would leave the others
serving answers from before another process's commit; kept in the file, every process's bump is
seen by every process at its next lookup (one indexed read).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from eventcore.adapters.memory import MemoryQueryCache
from eventcore.adapters.sqlite._database import Database
from eventcore.ports import Clock


def _bump(connection: sqlite3.Connection, workspace_ids: list[str]) -> None:
    connection.executemany(
        "INSERT INTO generations (workspace_id, generation) VALUES (?, 1)"
        " ON CONFLICT (workspace_id) DO UPDATE SET generation = generation + 1",
        [(workspace_id,) for workspace_id in workspace_ids],
    )


def _generation(row: tuple[int]) -> int:
    return int(row[0])


class Generations(Database):
    """The generations half of the SQLite store (see the module docstring)."""

    async def generation(self, workspace_id: str) -> int:
        found = await self._query_one(
            _generation, "SELECT generation FROM generations WHERE workspace_id = ?", workspace_id
        )
        return found or 0

    async def bump_generations(self, workspace_ids: Iterable[str]) -> None:
        ids = sorted(set(workspace_ids))
        if ids:
            await self._write(_bump, ids)


class SqliteQueryCache(MemoryQueryCache):
    """Answers in this process's memory, generations in the SQLite file (``Generations``): an
    answer is served only at the generation the file holds now, whichever process bumped it."""

    def __init__(self, store: Generations, clock: Clock, max_entries: int = 10_000) -> None:
        super().__init__(clock, max_entries)
        self._store = store

    async def generation(self, workspace_id: str) -> int:
        return await self._store.generation(workspace_id)

    async def bump(self, workspace_ids: Iterable[str]) -> None:
        await self._store.bump_generations(workspace_ids)

    async def lookup(self, workspace_id: str, key: str) -> tuple[int, bytes | None]:
        generation = await self._store.generation(workspace_id)
        return generation, self._answer(workspace_id, key, generation)
