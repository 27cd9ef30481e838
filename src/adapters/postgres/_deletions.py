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
from eventcore.suppressions import Suppression

_COLUMNS = (
    "deletion_id, workspace_id, project_id, user_ids, event_ids, start_time, end_time, status,"
    " requested_at, requested_by, events_deleted, completed_at, error, suppress"
)
# Ids kept as deleted (an append of one again is a duplicate): by a deletion's chunk, and by a
# deletion of event ids alone from its request on (EventSelector.ids_only).
KEEP_DELETED = """
INSERT INTO eventcore.deleted_events (workspace_id, project_id, event_id, deleted_at)
SELECT %(workspace_id)s, %(project_id)s, d.event_id, %(at)s
FROM unnest(%(event_ids)s::text[]) AS d (event_id)
ON CONFLICT DO NOTHING
"""
_INSERT = f"INSERT INTO eventcore.deletions ({_COLUMNS}) VALUES ({', '.join(['%s'] * 14)})"
_SUPPRESSION_COLUMNS = (
    "workspace_id, project_id, user_id, suppressed_at, deletion_id, suppressed_by"
)
# Every person of the request in one statement; one already suppressed keeps its suppression.
_SUPPRESS = f"""
INSERT INTO eventcore.suppressions ({_SUPPRESSION_COLUMNS})
SELECT %(workspace_id)s, %(project_id)s, person, %(at)s, %(deletion_id)s, %(by)s
FROM unnest(%(persons)s::text[]) AS person
ON CONFLICT DO NOTHING
"""
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
    suppress: bool,
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
        suppress,
    )


class Deletions(Database):
    """The DeletionStore part of the PostgreSQL store."""

    async def create_deletion(
        self,
        deletion: Deletion,
        *,
        audit: AuditEntry | None = None,
        suppression_audit: AuditEntry | None = None,
    ) -> None:
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
                    deletion.suppress,
                ),
            )
            await record_entry(conn, audit)
            if selector.ids_only:
                await conn.execute(
                    KEEP_DELETED,
                    {
                        "workspace_id": deletion.workspace_id,
                        "project_id": deletion.project_id,
                        "event_ids": list(selector.event_ids),
                        "at": deletion.requested_at,
                    },
                )
            if deletion.suppress:
                await conn.execute(
                    _SUPPRESS,
                    {
                        "workspace_id": deletion.workspace_id,
                        "project_id": deletion.project_id,
                        "at": deletion.requested_at,
                        "deletion_id": deletion.id,
                        "by": deletion.requested_by,
                        "persons": list(selector.user_ids),
                    },
                )
                await record_entry(conn, suppression_audit)

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

    async def suppressed_persons(self, workspace_id: str, project_id: str) -> frozenset[str]:
        return frozenset(
            await self._query(
                lambda user_id: user_id,
                "SELECT user_id FROM eventcore.suppressions"
                " WHERE workspace_id = %s AND project_id = %s AND lifted_at IS NULL",
                (workspace_id, project_id),
                workspace_id=workspace_id,
            )
        )

    async def list_suppressions(
        self, workspace_id: str, project_id: str, *, limit: int, after: str | None = None
    ) -> list[Suppression]:
        return await self._query(
            Suppression,
            f"SELECT {_SUPPRESSION_COLUMNS} FROM eventcore.suppressions"
            " WHERE workspace_id = %(ws)s AND project_id = %(prj)s AND lifted_at IS NULL"
            " AND (%(after)s::text IS NULL OR user_id > %(after)s::text)"
            " ORDER BY user_id LIMIT %(limit)s",
            {"ws": workspace_id, "prj": project_id, "after": after, "limit": max(limit, 0)},
            workspace_id=workspace_id,
        )

    async def lift_suppression(
        self,
        workspace_id: str,
        project_id: str,
        user_id: str,
        at: datetime,
        *,
        audit: AuditEntry | None = None,
    ) -> bool:
        async with self._tenant(workspace_id, pipelined=False) as conn:
            cursor = await conn.execute(
                "UPDATE eventcore.suppressions SET lifted_at = %s"
                " WHERE workspace_id = %s AND project_id = %s AND user_id = %s"
                " AND lifted_at IS NULL RETURNING user_id",
                (at, workspace_id, project_id, user_id),
            )
            lifted = await cursor.fetchone() is not None
            if lifted:
                await record_entry(conn, audit)
        return lifted
