"""Deletion requests in PostgreSQL (the deleting itself is in ``_events``)."""

# S608: SQL text here is assembled only from this module's column lists; every value is a bound
# parameter.
# ruff: noqa: S608

from __future__ import annotations

from datetime import datetime

from eventcore.adapters.postgres._accounts import record_entry
from eventcore.adapters.postgres._database import Database
from eventcore.audit import AuditEntry
from eventcore.deletions import Deletion, DeletionStatus, EventSelector

_COLUMNS = (
    "deletion_id, workspace_id, project_id, user_ids, event_ids, start_time, end_time, status,"
    " requested_at, requested_by, events_deleted, completed_at, error"
)
_INSERT = f"INSERT INTO eventcore.deletions ({_COLUMNS}) VALUES ({', '.join(['%s'] * 13)})"
_ENDED = ("done", "failed")


def _deletion(
    deletion_id: str,
    workspace_id: str,
    project_id: str,
    user_ids: list[str],
    event_ids: list[str],
    start: datetime | None,
    end: datetime | None,
    status: str,
    requested_at: datetime,
    requested_by: str | None,
    events_deleted: int,
    completed_at: datetime | None,
    error: str | None,
) -> Deletion:
    return Deletion(
        deletion_id,
        workspace_id,
        project_id,
        EventSelector(tuple(user_ids), tuple(event_ids), start, end),
        DeletionStatus(status),
        requested_at,
        requested_by,
        events_deleted,
        completed_at,
        error,
    )


class Deletions(Database):
    """The DeletionStore part of the PostgreSQL store."""

    async def create_deletion(self, deletion: Deletion, *, audit: AuditEntry | None = None) -> None:
        selector = deletion.selector
        async with self._tenant(deletion.workspace_id, pipelined=False) as conn:
            await conn.execute(
                _INSERT,
                (
                    deletion.id,
                    deletion.workspace_id,
                    deletion.project_id,
                    list(selector.user_ids),
                    list(selector.event_ids),
                    selector.start,
                    selector.end,
                    deletion.status.value,
                    deletion.requested_at,
                    deletion.requested_by,
                    deletion.events_deleted,
                    deletion.completed_at,
                    deletion.error,
                ),
            )
            await record_entry(conn, audit)

    async def get_deletion(self, workspace_id: str, deletion_id: str) -> Deletion | None:
        return await self._query_one(
            _deletion,
            f"SELECT {_COLUMNS} FROM eventcore.deletions"
            " WHERE workspace_id = %s AND deletion_id = %s",
            (workspace_id, deletion_id),
            workspace_id=workspace_id,
        )

    async def list_deletions(self, workspace_id: str, project_id: str) -> list[Deletion]:
        return await self._query(
            _deletion,
            f"SELECT {_COLUMNS} FROM eventcore.deletions"
            " WHERE workspace_id = %s AND project_id = %s ORDER BY requested_at DESC, seq DESC",
            (workspace_id, project_id),
            workspace_id=workspace_id,
        )

    async def progress_deletion(self, workspace_id: str, deletion_id: str, deleted: int) -> None:
        async with self._tenant(workspace_id) as conn:
            await conn.execute(
                "UPDATE eventcore.deletions SET events_deleted = events_deleted + %s,"
                " status = CASE WHEN status = ANY(%s) THEN status ELSE 'running' END"
                " WHERE workspace_id = %s AND deletion_id = %s",
                (deleted, list(_ENDED), workspace_id, deletion_id),
            )

    async def finish_deletion(
        self,
        workspace_id: str,
        deletion_id: str,
        status: DeletionStatus,
        at: datetime,
        *,
        error: str | None = None,
        audit: AuditEntry | None = None,
    ) -> bool:
        async with self._tenant(workspace_id, pipelined=False) as conn:
            cursor = await conn.execute(
                "UPDATE eventcore.deletions SET status = %s, completed_at = %s, error = %s"
                " WHERE workspace_id = %s AND deletion_id = %s AND status <> ALL(%s)"
                " RETURNING deletion_id",
                (status.value, at, error, workspace_id, deletion_id, list(_ENDED)),
            )
            ended = await cursor.fetchone() is not None
            if ended:
                await record_entry(conn, audit)
        return ended

    async def open_deletions(self) -> list[tuple[str, str]]:
        return await self._query(
            lambda workspace_id, deletion_id: (workspace_id, deletion_id),
            "SELECT workspace_id, deletion_id FROM eventcore.open_deletions()",
            (),
            workspace_id=None,
        )
