"""Accounts in SQLite: users, workspaces, memberships, projects and API keys.

Every refusal (a taken email, a second membership, a reused id or key hash) is a unique key
refusing the row inside the transaction, translated in ``_errors``: no check-then-insert race.
"""

# S608: SQL text here is assembled only from this module's column lists; every value is a bound
# parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from eventcore.adapters.sqlite._codec import (
    json_strings,
    micros,
    moment,
    optional_moment,
    strings,
    values,
)
from eventcore.adapters.sqlite._database import Database
from eventcore.audit import ActorType, AuditAction, AuditEntry
from eventcore.events import EventCursor
from eventcore.tenancy import (
    ApiKey,
    Invitation,
    Member,
    Membership,
    Project,
    Role,
    User,
    Workspace,
    may_leave,
)

T = TypeVar("T")

# Each list is in the order of its record's fields: inserts bind the record's fields as they
# are, selects build the record from the row.
_USER_COLUMNS = "id, email, password_hash, created_at"
_WORKSPACE_COLUMNS = "id, name, created_at"
_MEMBERSHIP_COLUMNS = "workspace_id, user_id, role, created_at"
_PROJECT_COLUMNS = "id, workspace_id, name, created_at, dimensions, retention_days, allowed_origins"
_API_KEY_COLUMNS = "id, workspace_id, project_id, name, prefix, key_hash, created_at, revoked_at"
_INVITATION_COLUMNS = (
    "id, workspace_id, email, role, token_hash, created_at, expires_at, accepted_at"
)


def _insert_sql(table: str, columns: str) -> str:
    placeholders = ", ".join(["?"] * len(columns.split(",")))
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"


_INSERT_USER = _insert_sql("users", _USER_COLUMNS)
_INSERT_WORKSPACE = _insert_sql("workspaces", _WORKSPACE_COLUMNS)
_INSERT_MEMBERSHIP = _insert_sql("memberships", _MEMBERSHIP_COLUMNS)
_INSERT_PROJECT = _insert_sql("projects", _PROJECT_COLUMNS)
_INSERT_API_KEY = _insert_sql("api_keys", _API_KEY_COLUMNS)
_INSERT_INVITATION = _insert_sql("invitations", _INVITATION_COLUMNS)
_AUDIT_COLUMNS = (
    "workspace_id, id, at, action, actor_type, actor_id, target_type, target_id, details,"
    " request_id, client_address"
)
_INSERT_AUDIT = _insert_sql("audit_log", _AUDIT_COLUMNS)
# Newest first; keyed by (action filter, cursor).
_LIST_AUDIT = {
    (filtered, paged): (
        f"SELECT {_AUDIT_COLUMNS}, seq FROM audit_log WHERE workspace_id = ?"
        + (" AND action = ?" if filtered else "")
        + (" AND (at, seq) < (?, ?)" if paged else "")
        + " ORDER BY at DESC, seq DESC LIMIT ?"
    )
    for filtered in (False, True)
    for paged in (False, True)
}


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], moment(row[3]))


def _membership(row: Any) -> Membership:
    return Membership(row[0], row[1], Role(row[2]), moment(row[3]))


def _project(row: Any) -> Project:
    return Project(row[0], row[1], row[2], moment(row[3]), strings(row[4]), row[5], strings(row[6]))


def _invitation(row: Any) -> Invitation:
    return Invitation(
        row[0],
        row[1],
        row[2],
        Role(row[3]),
        row[4],
        moment(row[5]),
        moment(row[6]),
        optional_moment(row[7]),
    )


def _accept_invitation(
    connection: sqlite3.Connection,
    workspace_id: str,
    invitation_id: str,
    membership: Membership,
    at: datetime,
) -> bool:
    accepted = connection.execute(
        "UPDATE invitations SET accepted_at = ?"
        " WHERE workspace_id = ? AND id = ? AND accepted_at IS NULL RETURNING id",
        (micros(at), workspace_id, invitation_id),
    ).fetchall()
    if not accepted:
        return False
    connection.execute(_INSERT_MEMBERSHIP, values(membership))
    return True


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        row[0], row[1], row[2], row[3], row[4], row[5], moment(row[6]), optional_moment(row[7])
    )


# The writers run in the writer thread, each inside the transaction Database._write opened.


def audited(
    connection: sqlite3.Connection,
    audit: AuditEntry | None,
    work: Callable[..., T],
    *args: Any,
) -> T:
    """``work``, and ``audit`` recorded in the same transaction if it took effect (returned
    neither None nor False)."""
    done = work(connection, *args)
    if audit is not None and done is not None and done is not False:
        insert_audit(connection, audit)
    return done


def insert_audit(connection: sqlite3.Connection, entry: AuditEntry) -> None:
    connection.execute(
        _INSERT_AUDIT,
        (
            entry.workspace_id,
            entry.id,
            micros(entry.at),
            entry.action.value,
            entry.actor_type.value,
            entry.actor_id,
            entry.target_type,
            entry.target_id,
            msgspec.json.encode(entry.details).decode(),
            entry.request_id,
            entry.client_address,
        ),
    )


def _expire_audit_log(connection: sqlite3.Connection, before: int) -> int:
    """Delete the entries recorded before ``before``: the only deletion the log's trigger lets
    through, and only inside this transaction (the horizon is put back before it commits)."""
    connection.execute("UPDATE audit_horizon SET horizon = ?", (before,))
    removed = connection.execute("DELETE FROM audit_log WHERE at < ?", (before,)).rowcount
    connection.execute("UPDATE audit_horizon SET horizon = -9223372036854775808")
    return int(removed)


# The tables a workspace deletion empties of the workspace's rows, besides workspaces and
# api_keys (deleted first) and the audit log (past its trigger, as the expiry does).
_WORKSPACE_TABLES = (
    "events",
    "counts_minute",
    "counts_hour",
    "users_hour",
    "users_day",
    "dims_day",
    "deleted_events",
    "deletions",
    "suppressions",
    "invitations",
    "projects",
    "memberships",
    "generations",
)
_LATEST_MICROS = 9223372036854775807


def _delete_workspace(
    connection: sqlite3.Connection, workspace_id: str, at: datetime
) -> list[ApiKey] | None:
    if not connection.execute(
        "DELETE FROM workspaces WHERE id = ? RETURNING id", (workspace_id,)
    ).fetchall():
        return None
    keys = [
        _api_key(row)
        for row in connection.execute(
            f"DELETE FROM api_keys WHERE workspace_id = ? RETURNING {_API_KEY_COLUMNS}",
            (workspace_id,),
        ).fetchall()
    ]
    for table in _WORKSPACE_TABLES:
        connection.execute(f"DELETE FROM {table} WHERE workspace_id = ?", (workspace_id,))
    connection.execute("UPDATE audit_horizon SET horizon = ?", (_LATEST_MICROS,))
    connection.execute("DELETE FROM audit_log WHERE workspace_id = ?", (workspace_id,))
    connection.execute("UPDATE audit_horizon SET horizon = -9223372036854775808")
    connection.execute(
        "INSERT INTO deleted_workspaces (workspace_id, deleted_at) VALUES (?, ?)"
        " ON CONFLICT DO NOTHING",
        (workspace_id, micros(at)),
    )
    return keys


def _audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row[1],
        workspace_id=row[0],
        at=moment(row[2]),
        action=AuditAction(row[3]),
        actor_type=ActorType(row[4]),
        actor_id=row[5],
        target_type=row[6],
        target_id=row[7],
        details=msgspec.json.decode(row[8]),
        request_id=row[9],
        client_address=row[10],
        seq=row[11],
    )


def _create_signup(
    connection: sqlite3.Connection, user: User, workspace: Workspace, owner: Membership
) -> bool:
    connection.execute(_INSERT_USER, values(user))
    connection.execute(_INSERT_WORKSPACE, values(workspace))
    connection.execute(_INSERT_MEMBERSHIP, values(owner))
    return True


def _insert(connection: sqlite3.Connection, sql: str, record: msgspec.Struct) -> bool:
    """True: a refused row raises (see _errors)."""
    connection.execute(sql, values(record))
    return True


def _revoke_api_key(
    connection: sqlite3.Connection, workspace_id: str, key_id: str, at: datetime
) -> ApiKey | None:
    # coalesce keeps the first revocation time; RETURNING reads the row in the same statement.
    rows = connection.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?)"
        f" WHERE workspace_id = ? AND id = ? RETURNING {_API_KEY_COLUMNS}",
        (micros(at), workspace_id, key_id),
    ).fetchall()
    return _api_key(rows[0]) if rows else None


_MEMBER_SQL = (
    "SELECT m.user_id, u.email, m.role, m.created_at FROM memberships m"
    " JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ? ORDER BY m.created_at, m.rowid"
)


def _member(row: Any) -> Member:
    return Member(row[0], row[1], Role(row[2]), moment(row[3]))


def _keep_an_owner(connection: sqlite3.Connection, workspace_id: str, leaving: str) -> bool:
    """Whether ``leaving`` is a member; LastOwner if it is the workspace's only owner. (The
    writer holds the write lock for the whole transaction: nobody changes them meanwhile.)"""
    rows = connection.execute(
        "SELECT user_id, role FROM memberships WHERE workspace_id = ?", (workspace_id,)
    ).fetchall()
    return may_leave(dict(rows), leaving)


def _change_role(
    connection: sqlite3.Connection, workspace_id: str, user_id: str, role: Role
) -> Membership | None:
    if role is not Role.OWNER and not _keep_an_owner(connection, workspace_id, user_id):
        return None
    rows = connection.execute(
        f"UPDATE memberships SET role = ? WHERE workspace_id = ? AND user_id = ?"
        f" RETURNING {_MEMBERSHIP_COLUMNS}",
        (role.value, workspace_id, user_id),
    ).fetchall()
    return _membership(rows[0]) if rows else None


def _remove_membership(connection: sqlite3.Connection, workspace_id: str, user_id: str) -> bool:
    if not _keep_an_owner(connection, workspace_id, user_id):
        return False
    connection.execute(
        "DELETE FROM memberships WHERE workspace_id = ? AND user_id = ?", (workspace_id, user_id)
    )
    return True


def _set_project_column(
    connection: sqlite3.Connection, workspace_id: str, project_id: str, column: str, value: Any
) -> Project | None:
    """One column of a project (dimensions, retention_days, allowed_origins) set; the project as it is now.
    Committed before any later append's transaction reads it there."""
    rows = connection.execute(
        f"UPDATE projects SET {column} = ? WHERE workspace_id = ? AND id = ?"
        f" RETURNING {_PROJECT_COLUMNS}",
        (value, workspace_id, project_id),
    ).fetchall()
    return _project(rows[0]) if rows else None


def _delete_project(
    connection: sqlite3.Connection, workspace_id: str, project_id: str, at: datetime
) -> list[ApiKey] | None:
    deleted = connection.execute(
        "DELETE FROM projects WHERE workspace_id = ? AND id = ? RETURNING id",
        (workspace_id, project_id),
    ).fetchall()
    if not deleted:
        return None
    rows = connection.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?)"
        f" WHERE workspace_id = ? AND project_id = ? RETURNING {_API_KEY_COLUMNS}",
        (micros(at), workspace_id, project_id),
    ).fetchall()
    return [_api_key(row) for row in rows]


class Accounts(Database):
    """The AccountStore half of the SQLite store."""

    async def create_signup(
        self,
        user: User,
        workspace: Workspace,
        owner: Membership,
        *,
        audit: AuditEntry | None = None,
    ) -> None:
        await self._write(audited, audit, _create_signup, user, workspace, owner)

    async def get_user(self, user_id: str) -> User | None:
        return await self._query_one(
            _user, f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", user_id
        )

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._query_one(
            _user, f"SELECT {_USER_COLUMNS} FROM users WHERE email = ?", email
        )

    async def get_membership(self, workspace_id: str, user_id: str) -> Membership | None:
        return await self._query_one(
            _membership,
            f"SELECT {_MEMBERSHIP_COLUMNS} FROM memberships WHERE workspace_id = ? AND user_id = ?",
            workspace_id,
            user_id,
        )

    async def list_memberships(self, user_id: str) -> list[Membership]:
        # rowid breaks ties in insertion order, as the reference store's stable sort does.
        return await self._query(
            _membership,
            f"SELECT {_MEMBERSHIP_COLUMNS} FROM memberships WHERE user_id = ?"
            " ORDER BY created_at, rowid",
            user_id,
        )

    async def add_membership(self, membership: Membership) -> None:
        await self._write(_insert, _INSERT_MEMBERSHIP, membership)

    async def create_invitation(
        self, invitation: Invitation, *, audit: AuditEntry | None = None
    ) -> None:
        await self._write(audited, audit, _insert, _INSERT_INVITATION, invitation)

    async def find_invitation(self, workspace_id: str, token_hash: str) -> Invitation | None:
        return await self._query_one(
            _invitation,
            f"SELECT {_INVITATION_COLUMNS} FROM invitations"
            " WHERE workspace_id = ? AND token_hash = ?",
            workspace_id,
            token_hash,
        )

    async def accept_invitation(
        self,
        workspace_id: str,
        invitation_id: str,
        membership: Membership,
        at: datetime,
        *,
        audit: AuditEntry | None = None,
    ) -> bool:
        return await self._write(
            audited, audit, _accept_invitation, workspace_id, invitation_id, membership, at
        )

    async def list_members(self, workspace_id: str) -> list[Member]:
        return await self._query(_member, _MEMBER_SQL, workspace_id)

    async def change_role(
        self, workspace_id: str, user_id: str, role: Role, *, audit: AuditEntry | None = None
    ) -> Membership | None:
        return await self._write(audited, audit, _change_role, workspace_id, user_id, role)

    async def remove_membership(
        self, workspace_id: str, user_id: str, *, audit: AuditEntry | None = None
    ) -> bool:
        return await self._write(audited, audit, _remove_membership, workspace_id, user_id)

    async def get_workspace(self, workspace_id: str) -> Workspace | None:
        return await self._query_one(
            lambda row: Workspace(row[0], row[1], moment(row[2])),
            f"SELECT {_WORKSPACE_COLUMNS} FROM workspaces WHERE id = ?",
            workspace_id,
        )

    async def delete_workspace(self, workspace_id: str, at: datetime) -> list[ApiKey] | None:
        return await self._write(_delete_workspace, workspace_id, at)

    async def create_project(self, project: Project, *, audit: AuditEntry | None = None) -> None:
        await self._write(audited, audit, _insert, _INSERT_PROJECT, project)

    async def get_project(self, workspace_id: str, project_id: str) -> Project | None:
        return await self._query_one(
            _project,
            f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE workspace_id = ? AND id = ?",
            workspace_id,
            project_id,
        )

    async def list_projects(self, workspace_id: str) -> list[Project]:
        return await self._query(
            _project,
            f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE workspace_id = ?"
            " ORDER BY created_at, rowid",
            workspace_id,
        )

    async def create_api_key(self, key: ApiKey, *, audit: AuditEntry | None = None) -> None:
        await self._write(audited, audit, _insert, _INSERT_API_KEY, key)

    async def list_api_keys(self, workspace_id: str, project_id: str) -> list[ApiKey]:
        return await self._query(
            _api_key,
            f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = ? AND project_id = ?"
            " ORDER BY created_at, rowid",
            workspace_id,
            project_id,
        )

    async def set_dimensions(
        self,
        workspace_id: str,
        project_id: str,
        dimensions: tuple[str, ...],
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        return await self._set_project(
            workspace_id, project_id, "dimensions", json_strings(dimensions), audit
        )

    async def set_retention(
        self,
        workspace_id: str,
        project_id: str,
        retention_days: int | None,
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        return await self._set_project(
            workspace_id, project_id, "retention_days", retention_days, audit
        )

    async def set_allowed_origins(
        self,
        workspace_id: str,
        project_id: str,
        origins: tuple[str, ...],
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        return await self._set_project(
            workspace_id, project_id, "allowed_origins", json_strings(origins), audit
        )

    async def _set_project(
        self,
        workspace_id: str,
        project_id: str,
        column: str,
        value: Any,
        audit: AuditEntry | None,
    ) -> Project | None:
        """One column of a project set, audited in the same transaction; the project now."""
        return await self._write(
            audited, audit, _set_project_column, workspace_id, project_id, column, value
        )

    async def projects_with_retention(self) -> list[Project]:
        return await self._query(
            _project,
            f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE retention_days IS NOT NULL"
            " ORDER BY workspace_id, id",
        )

    async def delete_project(
        self, workspace_id: str, project_id: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> list[ApiKey] | None:
        return await self._write(audited, audit, _delete_project, workspace_id, project_id, at)

    async def revoke_api_key(
        self, workspace_id: str, key_id: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> ApiKey | None:
        return await self._write(audited, audit, _revoke_api_key, workspace_id, key_id, at)

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._write(insert_audit, entry)

    async def expire_audit_log(self, before: datetime) -> int:
        return await self._write(_expire_audit_log, micros(before))

    async def list_audit(
        self,
        workspace_id: str,
        *,
        limit: int,
        action: AuditAction | None = None,
        before: EventCursor | None = None,
    ) -> list[AuditEntry]:
        parameters: list[Any] = [workspace_id]
        if action is not None:
            parameters.append(action.value)
        if before is not None:
            parameters += (micros(before.timestamp), before.seq)
        parameters.append(max(limit, 0))
        sql = _LIST_AUDIT[(action is not None, before is not None)]
        return await self._query(_audit_entry, sql, *parameters)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        return await self._query_one(
            _api_key, f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", key_hash
        )
