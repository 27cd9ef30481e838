"""Tenants and who may do what: workspaces, projects, roles, principals and permission rules."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

import msgspec

from eventcore.errors import LastOwner, PermissionDenied


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    VIEWER = "viewer"


class Permission(enum.StrEnum):
    READ_ANALYTICS = "read_analytics"
    READ_PROJECTS = "read_projects"
    MANAGE_PROJECTS = "manage_projects"
    MANAGE_API_KEYS = "manage_api_keys"
    MANAGE_MEMBERS = "manage_members"
    READ_AUDIT_LOG = "read_audit_log"
    DELETE_WORKSPACE = "delete_workspace"


_GRANTS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.OWNER: frozenset(Permission),
        Role.ADMIN: frozenset(
            {
                Permission.READ_ANALYTICS,
                Permission.READ_PROJECTS,
                Permission.MANAGE_PROJECTS,
                Permission.MANAGE_API_KEYS,
                Permission.READ_AUDIT_LOG,
            }
        ),
        Role.VIEWER: frozenset({Permission.READ_ANALYTICS, Permission.READ_PROJECTS}),
    }
)


def allows(role: Role, permission: Permission) -> bool:
    return permission in _GRANTS[role]


def may_leave(roles: Mapping[str, str], leaving: str) -> bool:
    """Whether ``leaving`` is one of a workspace's members (``roles``: user id to role) and so
    has a membership to change or remove; LastOwner if it is their only owner (a workspace
    keeps at least one)."""
    if leaving not in roles:
        return False
    if roles[leaving] == Role.OWNER and [
        user_id for user_id, role in roles.items() if role == Role.OWNER
    ] == [leaving]:
        raise LastOwner()
    return True


class Principal(msgspec.Struct, frozen=True):
    """A signed-in user acting inside one workspace with one role."""

    user_id: str
    workspace_id: str
    role: Role

    def require(self, permission: Permission) -> None:
        if not allows(self.role, permission):
            raise PermissionDenied(
                f"The {self.role.value} role may not {permission.value.replace('_', ' ')}."
            )


class ProjectRef(msgspec.Struct, frozen=True):
    """The tenant an event belongs to: every stored event carries both ids."""

    workspace_id: str
    project_id: str


class User(msgspec.Struct, frozen=True):
    id: str
    email: str
    password_hash: str
    created_at: datetime


class Workspace(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: datetime


class Membership(msgspec.Struct, frozen=True):
    workspace_id: str
    user_id: str
    role: Role
    created_at: datetime


class Member(msgspec.Struct, frozen=True):
    """A membership as the workspace's members see it: who (with their email) and which role."""

    user_id: str
    email: str
    role: Role
    joined_at: datetime


class Invitation(msgspec.Struct, frozen=True):
    """An owner's offer of a role to whoever holds its token and signs in as ``email``; only
    the token's SHA-256 is kept. Open until accepted or ``expires_at``."""

    id: str
    workspace_id: str
    email: str
    role: Role
    token_hash: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None


class Project(msgspec.Struct, frozen=True):
    id: str
    workspace_id: str
    name: str
    created_at: datetime
    # The property paths counted per value at write time (eventcore.dimensions).
    dimensions: tuple[str, ...] = ()
    # How many days its events are kept (eventcore.retention); None: for ever.
    retention_days: int | None = None
    # The origins whose pages may send with its write keys (eventcore.origins); none: any.
    allowed_origins: tuple[str, ...] = ()


class ApiKey(msgspec.Struct, frozen=True):
    """An API key's stored form: the secret itself is never kept, only its SHA-256."""

    id: str
    workspace_id: str
    project_id: str
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def tenant(self) -> ProjectRef:
        return ProjectRef(self.workspace_id, self.project_id)


def normalise_email(email: str) -> str:
    return email.strip().lower()
