"""Accounts in PostgreSQL: users, workspaces, memberships, projects and API keys.

Every refusal (a taken email, a second membership, a reused id or key hash) is a unique key
refusing the row inside the transaction, translated in ``_errors``: no check-then-insert race.
"""

# S608: SQL text here is assembled only from this module's column lists; every value is a bound
# parameter.
# ruff: noqa: S608

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from eventcore.adapters.postgres._database import SET_TENANT, Connection, Database, values
from eventcore.audit import ActorType, AuditAction, AuditEntry, Detail
from eventcore.errors import DatabaseUnavailable
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

# Each list is in the order of its record's fields: inserts bind the record's fields as they
# are, selects build the record from the row.
_USER_COLUMNS = "user_id, email, password_hash, created_at"
_WORKSPACE_COLUMNS = "workspace_id, name, created_at"
_MEMBERSHIP_COLUMNS = "workspace_id, user_id, role, created_at"
_INVITATION_COLUMNS = (
    "invitation_id, workspace_id, email, role, token_hash, created_at, expires_at, accepted_at"
)
_PROJECT_COLUMNS = (
    "project_id, workspace_id, name, created_at, dimensions, retention_days, allowed_origins"
)
_API_KEY_COLUMNS = (
    "key_id, workspace_id, project_id, name, prefix, key_hash, created_at, revoked_at"
)


def _insert_sql(table: str, columns: str) -> str:
    placeholders = ", ".join(["%s"] * len(columns.split(",")))
    return f"INSERT INTO eventcore.{table} ({columns}) VALUES ({placeholders})"


_INSERT_USER = _insert_sql("users", _USER_COLUMNS)
_INSERT_WORKSPACE = _insert_sql("workspaces", _WORKSPACE_COLUMNS)
_INSERT_MEMBERSHIP = _insert_sql("memberships", _MEMBERSHIP_COLUMNS)
_INSERT_INVITATION = _insert_sql("invitations", _INVITATION_COLUMNS)
_INSERT_PROJECT = _insert_sql("projects", _PROJECT_COLUMNS)
_INSERT_API_KEY = _insert_sql("api_keys", _API_KEY_COLUMNS)

# The tables a workspace deletion empties of the workspace's rows, besides workspaces and
# api_keys (deleted first) and the audit log (through its SECURITY DEFINER function).
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
)

# API keys this process has read, kept to authenticate ingest while PostgreSQL cannot be reached
# (see find_api_key): how many, how long a lookup waits for a pooled connection before the last
# record read is used instead, and how long after a failed lookup the next one tries again.
_KNOWN_KEYS = 10_000
_KEY_LOOKUP_TIMEOUT = 2.0
_KEY_LOOKUP_RETRY = 1.0


def _membership(workspace_id: str, user_id: str, role: str, created_at: datetime) -> Membership:
    return Membership(workspace_id, user_id, Role(role), created_at)


def _invitation(
    invitation_id: str,
    workspace_id: str,
    email: str,
    role: str,
    token_hash: str,
    created_at: datetime,
    expires_at: datetime,
    accepted_at: datetime | None,
) -> Invitation:
    return Invitation(
        invitation_id,
        workspace_id,
        email,
        Role(role),
        token_hash,
        created_at,
        expires_at,
        accepted_at,
    )


def _project(
    project_id: str,
    workspace_id: str,
    name: str,
    created_at: datetime,
    dimensions: list[str],
    retention_days: int | None,
    allowed_origins: list[str],
) -> Project:
    return Project(
        project_id,
        workspace_id,
        name,
        created_at,
        tuple(dimensions),
        retention_days,
        tuple(allowed_origins),
    )


def _member(user_id: str, email: str, role: str, joined_at: datetime) -> Member:
    return Member(user_id, email, Role(role), joined_at)


async def _keep_an_owner(conn: Connection, workspace_id: str, leaving: str) -> bool:
    """Whether ``leaving`` is a member; LastOwner if it is the workspace's only owner.

    The workspace's memberships are locked for the transaction first (FOR UPDATE), so two
    owners demoting or removing each other at once are taken one after the other, and the
    second sees the first's change."""
    cursor = await conn.execute(
        "SELECT user_id, role FROM eventcore.memberships WHERE workspace_id = %s FOR UPDATE",
        (workspace_id,),
    )
    return may_leave(dict(await cursor.fetchall()), leaving)


_AUDIT_COLUMNS = (
    "workspace_id, entry_id, at, action, actor_type, actor_id, target_type, target_id, details,"
    " request_id, client_address"
)
_INSERT_AUDIT = _insert_sql("audit_log", _AUDIT_COLUMNS)
# Newest first; keyed by (action filter, cursor).
_LIST_AUDIT = {
    (filtered, paged): f"""
        SELECT {_AUDIT_COLUMNS}, seq FROM eventcore.audit_log
        WHERE workspace_id = %(workspace_id)s
          {"AND action = %(action)s" if filtered else ""}
          {"AND (at, seq) < (%(before_at)s, %(before_seq)s)" if paged else ""}
        ORDER BY at DESC, seq DESC LIMIT %(limit)s
    """
    for filtered in (False, True)
    for paged in (False, True)
}


async def record_entry(conn: Connection, entry: AuditEntry | None) -> None:
    """The action's audit entry, in the action's own transaction."""
    if entry is None:
        return
    await conn.execute(
        _INSERT_AUDIT,
        (
            entry.workspace_id,
            entry.id,
            entry.at,
            entry.action.value,
            entry.actor_type.value,
            entry.actor_id,
            entry.target_type,
            entry.target_id,
            Jsonb(entry.details),
            entry.request_id,
            entry.client_address,
        ),
    )


def _audit_entry(
    workspace_id: str,
    entry_id: str,
    at: datetime,
    action: str,
    actor_type: str,
    actor_id: str | None,
    target_type: str | None,
    target_id: str | None,
    details: dict[str, Detail],
    request_id: str | None,
    client_address: str | None,
    seq: int,
) -> AuditEntry:
    return AuditEntry(
        entry_id,
        workspace_id,
        at,
        AuditAction(action),
        ActorType(actor_type),
        actor_id,
        target_type,
        target_id,
        details,
        request_id,
        client_address,
        seq,
    )


class Accounts(Database):
    """The AccountStore half of the PostgreSQL store."""

    _known_keys: OrderedDict[str, ApiKey]
    _keys_unreachable_until: float | None
    _probing_keys: bool

    async def create_signup(
        self,
        user: User,
        workspace: Workspace,
        owner: Membership,
        *,
        audit: AuditEntry | None = None,
    ) -> None:
        async with self._tenant(workspace.id, pipelined=False) as conn:
            await conn.execute(_INSERT_USER, values(user))
            await conn.execute(_INSERT_WORKSPACE, values(workspace))
            if owner.workspace_id != workspace.id:
                await conn.execute(SET_TENANT, (owner.workspace_id,))
            await conn.execute(_INSERT_MEMBERSHIP, values(owner))
            await record_entry(conn, audit)

    # users is global (not tenant data): no workspace, no row-level security.

    async def get_user(self, user_id: str) -> User | None:
        return await self._query_one(
            User,
            f"SELECT {_USER_COLUMNS} FROM eventcore.users WHERE user_id = %s",
            (user_id,),
            workspace_id=None,
        )

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._query_one(
            User,
            f"SELECT {_USER_COLUMNS} FROM eventcore.users WHERE email = %s",
            (email,),
            workspace_id=None,
        )

    async def get_membership(self, workspace_id: str, user_id: str) -> Membership | None:
        return await self._query_one(
            _membership,
            f"SELECT {_MEMBERSHIP_COLUMNS} FROM eventcore.memberships"
            " WHERE workspace_id = %s AND user_id = %s",
            (workspace_id, user_id),
            workspace_id=workspace_id,
        )

    async def list_memberships(self, user_id: str) -> list[Membership]:
        # Login asks before any workspace is chosen: a SECURITY DEFINER function answers it.
        return await self._query(
            _membership,
            f"SELECT {_MEMBERSHIP_COLUMNS}"
            " FROM eventcore.memberships_of_user(%s) ORDER BY created_at, seq",
            (user_id,),
            workspace_id=None,
        )

    async def add_membership(self, membership: Membership) -> None:
        await self._insert(membership.workspace_id, _INSERT_MEMBERSHIP, values(membership))

    async def create_invitation(
        self, invitation: Invitation, *, audit: AuditEntry | None = None
    ) -> None:
        async with self._tenant(invitation.workspace_id, pipelined=False) as conn:
            await conn.execute(_INSERT_INVITATION, values(invitation))
            await record_entry(conn, audit)

    async def find_invitation(self, workspace_id: str, token_hash: str) -> Invitation | None:
        return await self._query_one(
            _invitation,
            f"SELECT {_INVITATION_COLUMNS} FROM eventcore.invitations"
            " WHERE workspace_id = %s AND token_hash = %s",
            (workspace_id, token_hash),
            workspace_id=workspace_id,
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
        async with self._tenant(workspace_id, pipelined=False) as conn:
            cursor = await conn.execute(
                "UPDATE eventcore.invitations SET accepted_at = %s WHERE workspace_id = %s"
                " AND invitation_id = %s AND accepted_at IS NULL RETURNING invitation_id",
                (at, workspace_id, invitation_id),
            )
            if await cursor.fetchone() is None:
                return False
            await conn.execute(_INSERT_MEMBERSHIP, values(membership))
            await record_entry(conn, audit)
        return True

    async def list_members(self, workspace_id: str) -> list[Member]:
        return await self._query(
            _member,
            "SELECT m.user_id, u.email, m.role, m.created_at FROM eventcore.memberships m"
            " JOIN eventcore.users u ON u.user_id = m.user_id"
            " WHERE m.workspace_id = %s ORDER BY m.created_at, m.seq",
            (workspace_id,),
            workspace_id=workspace_id,
        )

    async def change_role(
        self, workspace_id: str, user_id: str, role: Role, *, audit: AuditEntry | None = None
    ) -> Membership | None:
        async with self._tenant(workspace_id, pipelined=False) as conn:
            if role is not Role.OWNER and not await _keep_an_owner(conn, workspace_id, user_id):
                return None
            cursor = await conn.execute(
                f"UPDATE eventcore.memberships SET role = %s"
                f" WHERE workspace_id = %s AND user_id = %s RETURNING {_MEMBERSHIP_COLUMNS}",
                (role.value, workspace_id, user_id),
            )
            row = await cursor.fetchone()
            if row is not None:
                await record_entry(conn, audit)
        return _membership(*row) if row is not None else None

    async def remove_membership(
        self, workspace_id: str, user_id: str, *, audit: AuditEntry | None = None
    ) -> bool:
        async with self._tenant(workspace_id, pipelined=False) as conn:
            if not await _keep_an_owner(conn, workspace_id, user_id):
                return False
            await conn.execute(
                "DELETE FROM eventcore.memberships WHERE workspace_id = %s AND user_id = %s",
                (workspace_id, user_id),
            )
            await record_entry(conn, audit)
        return True

    async def get_workspace(self, workspace_id: str) -> Workspace | None:
        return await self._query_one(
            Workspace,
            f"SELECT {_WORKSPACE_COLUMNS} FROM eventcore.workspaces WHERE workspace_id = %s",
            (workspace_id,),
            workspace_id=workspace_id,
        )

    async def delete_workspace(self, workspace_id: str, at: datetime) -> list[ApiKey] | None:
        async with self._tenant(workspace_id, pipelined=False) as conn:
            cursor = await conn.execute(
                "DELETE FROM eventcore.workspaces WHERE workspace_id = %s RETURNING workspace_id",
                (workspace_id,),
            )
            if await cursor.fetchone() is None:
                return None
            cursor = await conn.execute(
                f"DELETE FROM eventcore.api_keys WHERE workspace_id = %s RETURNING {_API_KEY_COLUMNS}",
                (workspace_id,),
            )
            keys = [ApiKey(*row) for row in await cursor.fetchall()]
            for table in _WORKSPACE_TABLES:
                await conn.execute(
                    f"DELETE FROM eventcore.{table} WHERE workspace_id = %s", (workspace_id,)
                )
            await conn.execute("SELECT eventcore.delete_workspace_audit()")
            await conn.execute(
                "INSERT INTO eventcore.deleted_workspaces (workspace_id, deleted_at)"
                " VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (workspace_id, at),
            )
        for key in keys:
            self._known_keys.pop(key.key_hash, None)
        for known in [k for k in self._dimensions if k[0] == workspace_id]:
            self._dimensions.pop(known, None)
        return keys

    async def create_project(self, project: Project, *, audit: AuditEntry | None = None) -> None:
        # The declared paths as a list: psycopg binds a list as an array (text[]).
        *fields, dimensions, retention_days, origins = values(project)
        async with self._tenant(project.workspace_id, pipelined=False) as conn:
            await conn.execute(
                _INSERT_PROJECT, (*fields, list(dimensions), retention_days, list(origins))
            )
            await record_entry(conn, audit)
        if project.dimensions:
            self._remember_dimensions(project.workspace_id, project.id, project.dimensions)

    async def get_project(self, workspace_id: str, project_id: str) -> Project | None:
        return await self._query_one(
            _project,
            f"SELECT {_PROJECT_COLUMNS} FROM eventcore.projects"
            " WHERE workspace_id = %s AND project_id = %s",
            (workspace_id, project_id),
            workspace_id=workspace_id,
        )

    async def list_projects(self, workspace_id: str) -> list[Project]:
        return await self._query(
            _project,
            f"SELECT {_PROJECT_COLUMNS} FROM eventcore.projects"
            " WHERE workspace_id = %s ORDER BY created_at, seq",
            (workspace_id,),
            workspace_id=workspace_id,
        )

    async def create_api_key(self, key: ApiKey, *, audit: AuditEntry | None = None) -> None:
        async with self._tenant(key.workspace_id, pipelined=False) as conn:
            await conn.execute(_INSERT_API_KEY, values(key))
            await record_entry(conn, audit)

    async def list_api_keys(self, workspace_id: str, project_id: str) -> list[ApiKey]:
        return await self._query(
            ApiKey,
            f"SELECT {_API_KEY_COLUMNS} FROM eventcore.api_keys"
            " WHERE workspace_id = %s AND project_id = %s ORDER BY created_at, seq",
            (workspace_id, project_id),
            workspace_id=workspace_id,
        )

    async def set_dimensions(
        self,
        workspace_id: str,
        project_id: str,
        dimensions: tuple[str, ...],
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        # Committed when this returns: every append whose transaction starts later reads it
        # there (see _events on the appends' dimensions). This process's own guess is updated
        # too, so that its next appends need no second try.
        project = await self._set_project_column(
            workspace_id, project_id, "dimensions", list(dimensions), audit
        )
        if project is not None:
            self._remember_dimensions(workspace_id, project_id, project.dimensions)
        return project

    async def set_retention(
        self,
        workspace_id: str,
        project_id: str,
        retention_days: int | None,
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        # Committed when this returns: every append whose transaction starts later reads it.
        return await self._set_project_column(
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
        return await self._set_project_column(
            workspace_id, project_id, "allowed_origins", list(origins), audit
        )

    async def _set_project_column(
        self,
        workspace_id: str,
        project_id: str,
        column: str,
        value: Any,
        audit: AuditEntry | None,
    ) -> Project | None:
        """One column of a project set, audited in the same transaction; the project now."""
        async with self._tenant(workspace_id, pipelined=False) as conn:
            cursor = await conn.execute(
                sql.SQL(
                    "UPDATE eventcore.projects SET {} = %s WHERE workspace_id = %s"
                    f" AND project_id = %s RETURNING {_PROJECT_COLUMNS}"
                ).format(sql.Identifier(column)),
                (value, workspace_id, project_id),
            )
            row = await cursor.fetchone()
            project = _project(*row) if row is not None else None
            if project is not None:
                await record_entry(conn, audit)
        return project

    async def projects_with_retention(self) -> list[Project]:
        return await self._query(
            _project,
            f"SELECT {_PROJECT_COLUMNS} FROM eventcore.projects_with_retention()",
            (),
            workspace_id=None,
        )

    async def delete_project(
        self, workspace_id: str, project_id: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> list[ApiKey] | None:
        async with self._tenant(workspace_id, pipelined=False) as conn:
            cursor = await conn.execute(
                "DELETE FROM eventcore.projects WHERE workspace_id = %s AND project_id = %s"
                " RETURNING project_id",
                (workspace_id, project_id),
            )
            if await cursor.fetchone() is None:
                return None
            cursor = await conn.execute(
                "UPDATE eventcore.api_keys SET revoked_at = coalesce(revoked_at, %s)"
                f" WHERE workspace_id = %s AND project_id = %s RETURNING {_API_KEY_COLUMNS}",
                (at, workspace_id, project_id),
            )
            revoked = [ApiKey(*row) for row in await cursor.fetchall()]
            await record_entry(conn, audit)
        for key in revoked:
            self._known_keys.pop(key.key_hash, None)
        return revoked

    async def revoke_api_key(
        self, workspace_id: str, key_id: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> ApiKey | None:
        async with self._tenant(workspace_id, pipelined=False) as conn:
            cursor = await conn.execute(
                "UPDATE eventcore.api_keys SET revoked_at = coalesce(revoked_at, %s)"
                f" WHERE workspace_id = %s AND key_id = %s RETURNING {_API_KEY_COLUMNS}",
                (at, workspace_id, key_id),
            )
            row = await cursor.fetchone()
            revoked = ApiKey(*row) if row is not None else None
            if revoked is not None:
                await record_entry(conn, audit)
        if revoked is not None:
            self._known_keys.pop(revoked.key_hash, None)
        return revoked

    async def record_audit(self, entry: AuditEntry) -> None:
        async with self._tenant(entry.workspace_id, pipelined=False) as conn:
            await record_entry(conn, entry)

    async def expire_audit_log(self, before: datetime) -> int:
        # Across workspaces: the one SECURITY DEFINER function that may delete audit rows.
        removed = await self._query_one(
            int, "SELECT eventcore.expire_audit_log(%s)", (before,), workspace_id=None
        )
        return removed or 0

    async def list_audit(
        self,
        workspace_id: str,
        *,
        limit: int,
        action: AuditAction | None = None,
        before: EventCursor | None = None,
    ) -> list[AuditEntry]:
        parameters: dict[str, Any] = {
            "workspace_id": workspace_id,
            "action": None if action is None else action.value,
            "limit": max(limit, 0),
        }
        if before is not None:
            parameters["before_at"] = before.timestamp
            parameters["before_seq"] = before.seq
        query = _LIST_AUDIT[(action is not None, before is not None)]
        return await self._query(_audit_entry, query, parameters, workspace_id=workspace_id)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key's record; while PostgreSQL cannot be reached, the record last read here.

        Ingest must keep accepting while the database is away (the batches wait in the queue
        for it), and a key is the one thing ingest reads from the database. So a key this
        process has read before is answered as last read when the database does not answer
        (after a short wait, then without asking for ``_KEY_LOOKUP_RETRY`` s while one lookup
        probes it); a key never read is DatabaseUnavailable. A revocation made elsewhere
        meanwhile takes effect once the database answers again.
        """
        known = self._known_keys.get(key_hash)
        down_until = self._keys_unreachable_until
        if (
            known is not None
            and down_until is not None
            and (self._probing_keys or time.monotonic() < down_until)
        ):
            return known
        probing = down_until is not None
        self._probing_keys = self._probing_keys or probing
        try:
            # The tenant is what this lookup finds: a SECURITY DEFINER function answers it.
            async with self._connection(_KEY_LOOKUP_TIMEOUT) as conn:
                cursor = await conn.execute(
                    f"SELECT {_API_KEY_COLUMNS} FROM eventcore.find_api_key(%s)", (key_hash,)
                )
                row = await cursor.fetchone()
        except DatabaseUnavailable:
            self._keys_unreachable_until = time.monotonic() + _KEY_LOOKUP_RETRY
            if known is None:
                raise
            return known
        finally:
            if probing:
                self._probing_keys = False
        self._keys_unreachable_until = None
        if row is None:
            self._known_keys.pop(key_hash, None)
            return None
        record = ApiKey(*row)
        self._known_keys[key_hash] = record
        self._known_keys.move_to_end(key_hash)
        if len(self._known_keys) > _KNOWN_KEYS:
            self._known_keys.popitem(last=False)
        return record
