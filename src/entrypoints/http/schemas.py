"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Raw

from eventcore.tenancy import ApiKey, Project, Role

Text = Annotated[str, Meta(max_length=1024)]


class SignupRequest(msgspec.Struct, forbid_unknown_fields=False):
    email: Text
    password: Text
    workspace: Text


class SignupResponse(msgspec.Struct):
    user_id: str
    workspace_id: str
    access_token: str
    expires_in: int
    token_type: Literal["bearer"] = "bearer"  # noqa: S105


class LoginRequest(msgspec.Struct):
    email: Text
    password: Text
    workspace_id: Text | None = None


class LoginResponse(msgspec.Struct):
    access_token: str
    expires_in: int
    token_type: Literal["bearer"] = "bearer"  # noqa: S105


class NameRequest(msgspec.Struct):
    name: Text


class ProjectView(msgspec.Struct):
    id: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, project: Project) -> ProjectView:
        return cls(project.id, project.name, project.created_at)


class ProjectList(msgspec.Struct):
    projects: list[ProjectView]


class NewApiKey(msgspec.Struct):
    """The secret ``key`` is shown in this answer only."""

    id: str
    key: str
    prefix: str
    project_id: str
    name: str
    created_at: datetime


class ApiKeyView(msgspec.Struct):
    id: str
    name: str
    prefix: str
    project_id: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyView:
        return cls(key.id, key.name, key.prefix, key.project_id, key.created_at, key.revoked_at)


class ApiKeyList(msgspec.Struct):
    api_keys: list[ApiKeyView]


class MemberRequest(msgspec.Struct):
    email: Text
    role: Role


class MemberView(msgspec.Struct):
    workspace_id: str
    user_id: str
    role: Role


class EventView(msgspec.Struct):
    id: str
    type: str
    timestamp: datetime
    received_at: datetime
    properties: Raw


class EventList(msgspec.Struct):
    events: list[EventView]
    next_cursor: str | None


class Health(msgspec.Struct, omit_defaults=True):
    """``error`` is present (in the API's error shape) only when a needed dependency is down."""

    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)
    error: dict[str, str] | None = None
