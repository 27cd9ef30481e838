"""Deletion requests in SQLite (the deleting itself is in ``_events``)."""

# S608: SQL text here is assembled only from this module's column lists; every value is a bound
# parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec

from eventcore.adapters.sqlite._accounts import audited, insert_audit
from eventcore.adapters.sqlite._codec import micros, moment, optional_moment
from eventcore.adapters.sqlite._database import Database
from eventcore.audit import AuditEntry
from eventcore.deletions import Deletion, DeletionStatus, EventSelector
from eventcore.suppressions import Suppression

DELETION_COLUMNS = (
    "id, workspace_id, project_id, user_ids, event_ids, start_time, end_time, status,"
    " requested_at, requested_by, events_deleted, completed_at, error, suppress"
)
_SUPPRESSION_COLUMNS = (
    "workspace_id, project_id, user_id, suppressed_at, deletion_id, suppressed_by"
)
_ENDED = "('done', 'failed')"


def _optional_micros(value: datetime | None) -> int | None:
    return None if value is None else micros(value)


def deletion_of(row: Any) -> Deletion:
    return Deletion(
        row[0],
        row[1],
        row[2],
        EventSelector(
            tuple(msgspec.json.decode(row[3])),
            tuple(msgspec.json.decode(row[4])),
            optional_moment(row[5]),
            optional_moment(row[6]),
        ),
        DeletionStatus(row[7]),
        moment(row[8]),
        row[9],
        row[10],
        optional_moment(row[11]),
        row[12],
        bool(row[13]),
    )


def _suppression(row: Any) -> Suppression:
    return Suppression(row[0], row[1], row[2], moment(row[3]), row[4], row[5])


# Ids kept as deleted (an append of one again is a duplicate): by appends that withhold an
# event, by a deletion's chunk, and by a deletion of event ids alone from its request on.
KEEP_DELETED = (
    "INSERT INTO deleted_events (workspace_id, project_id, event_id, deleted_at)"
    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


def _create(
    connection: sqlite3.Connection, deletion: Deletion, suppression_audit: AuditEntry | None
) -> bool:
    selector = deletion.selector
    connection.execute(
        f"INSERT INTO deletions ({DELETION_COLUMNS}) VALUES ({', '.join(['?'] * 14)})",
        (
            deletion.id,
            deletion.workspace_id,
            deletion.project_id,
            msgspec.json.encode(selector.user_ids).decode(),
            msgspec.json.encode(selector.event_ids).decode(),
            _optional_micros(selector.start),
            _optional_micros(selector.end),
            deletion.status.value,
            micros(deletion.requested_at),
            deletion.requested_by,
            deletion.events_deleted,
            _optional_micros(deletion.completed_at),
            deletion.error,
            int(deletion.suppress),
        ),
    )
    if selector.ids_only:
        # Kept as deleted from the request on (EventSelector.ids_only).
        connection.executemany(
            KEEP_DELETED,
            [
                (
                    deletion.workspace_id,
                    deletion.project_id,
                    event_id,
                    micros(deletion.requested_at),
                )
                for event_id in selector.event_ids
            ],
        )
    if deletion.suppress:
        # A person already suppressed keeps the suppression it had.
        connection.executemany(
            f"INSERT INTO suppressions ({_SUPPRESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [
                (
                    deletion.workspace_id,
                    deletion.project_id,
                    person,
                    micros(deletion.requested_at),
                    deletion.id,
                    deletion.requested_by,
                )
                for person in selector.user_ids
            ],
        )
        if suppression_audit is not None:
            insert_audit(connection, suppression_audit)
    return True


def _lift(
    connection: sqlite3.Connection, workspace_id: str, project_id: str, user_id: str, at: int
) -> bool:
    return bool(
        connection.execute(
            "UPDATE suppressions SET lifted_at = ? WHERE workspace_id = ? AND project_id = ?"
            " AND user_id = ? AND lifted_at IS NULL RETURNING user_id",
            (at, workspace_id, project_id, user_id),
        ).fetchall()
    )


def _finish(
    connection: sqlite3.Connection,
    workspace_id: str,
    deletion_id: str,
    status: DeletionStatus,
    at: datetime,
    error: str | None,
    audit: AuditEntry | None,
) -> bool:
    ended = connection.execute(
        "UPDATE deletions SET status = ?, completed_at = ?, error = ?"
        f" WHERE workspace_id = ? AND id = ? AND status NOT IN {_ENDED} RETURNING id",
        (status.value, micros(at), error, workspace_id, deletion_id),
    ).fetchall()
    if ended and audit is not None:
        insert_audit(connection, audit)
    return bool(ended)


def _progress(
    connection: sqlite3.Connection, workspace_id: str, deletion_id: str, deleted: int
) -> None:
    connection.execute(
        "UPDATE deletions SET events_deleted = events_deleted + ?,"
        f" status = CASE WHEN status IN {_ENDED} THEN status ELSE 'running' END"
        " WHERE workspace_id = ? AND id = ?",
        (deleted, workspace_id, deletion_id),
    )


class Deletions(Database):
    """The DeletionStore part of the SQLite store."""

    async def create_deletion(
        self,
        deletion: Deletion,
        *,
        audit: AuditEntry | None = None,
        suppression_audit: AuditEntry | None = None,
    ) -> None:
        await self._write(audited, audit, _create, deletion, suppression_audit)

    async def get_deletion(self, workspace_id: str, deletion_id: str) -> Deletion | None:
        return await self._query_one(
            deletion_of,
            f"SELECT {DELETION_COLUMNS} FROM deletions WHERE workspace_id = ? AND id = ?",
            workspace_id,
            deletion_id,
        )

    async def list_deletions(self, workspace_id: str, project_id: str) -> list[Deletion]:
        return await self._query(
            deletion_of,
            f"SELECT {DELETION_COLUMNS} FROM deletions WHERE workspace_id = ? AND project_id = ?"
            " ORDER BY requested_at DESC, seq DESC",
            workspace_id,
            project_id,
        )

    async def progress_deletion(self, workspace_id: str, deletion_id: str, deleted: int) -> None:
        await self._write(_progress, workspace_id, deletion_id, deleted)

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
        return await self._write(_finish, workspace_id, deletion_id, status, at, error, audit)

    async def open_deletions(self) -> list[tuple[str, str]]:
        return await self._query(
            lambda row: (row[0], row[1]),
            f"SELECT workspace_id, id FROM deletions WHERE status NOT IN {_ENDED}"
            " ORDER BY requested_at, seq",
        )

    async def suppressed_persons(self, workspace_id: str, project_id: str) -> frozenset[str]:
        return frozenset(
            await self._query(
                lambda row: row[0],
                "SELECT user_id FROM suppressions WHERE workspace_id = ? AND project_id = ?"
                " AND lifted_at IS NULL",
                workspace_id,
                project_id,
            )
        )

    async def list_suppressions(
        self, workspace_id: str, project_id: str, *, limit: int, after: str | None = None
    ) -> list[Suppression]:
        return await self._query(
            _suppression,
            f"SELECT {_SUPPRESSION_COLUMNS} FROM suppressions"
            " WHERE workspace_id = ? AND project_id = ? AND lifted_at IS NULL"
            " AND (?3 IS NULL OR user_id > ?3)"
            " ORDER BY user_id LIMIT ?4",
            workspace_id,
            project_id,
            after,
            max(limit, 0),
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
        return await self._write(
            audited, audit, _lift, workspace_id, project_id, user_id, micros(at)
        )
