"""Request and response bodies of the HTTP API, and the schema of the fields an event body
shares across the ingest routes (whose handlers read and document their bodies themselves)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from msgspec import Meta, Raw

from eventcore.defaults import (
    MAX_ALLOWED_ORIGINS,
    MAX_EMAIL_LENGTH,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_RETENTION_DAYS,
    MAX_TYPE_LENGTH,
    MIN_PASSWORD_LENGTH,
    MIN_RETENTION_DAYS,
)
from eventcore.events import StoredEvent
from eventcore.tenancy import ApiKey, Membership, Project, Role

Text = Annotated[str, Meta(max_length=1024)]


def _documented(**rules: object) -> Meta:
    """Text whose rules the use case checks itself (with a clearer message than a schema error
    would give); ``rules`` state them in the OpenAPI document so that clients know them."""
    return Meta(max_length=1024, extra_json_schema={"extra": rules})


# Trimmed and lower-cased before it is checked; the rule eventcore applies, looser than RFC 5322.
Email = Annotated[
    str, _documented(max_length=MAX_EMAIL_LENGTH, pattern=r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")
]
Password = Annotated[str, _documented(min_length=MIN_PASSWORD_LENGTH)]
# A name is trimmed, then must hold 1 to 200 characters.
Name = Annotated[str, _documented(max_length=MAX_NAME_LENGTH, pattern=r"\S")]


class SignupRequest(msgspec.Struct, forbid_unknown_fields=False):
    email: Email
    password: Password
    workspace: Name


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
    name: Name


# A project's retention of its events, in days; null keeps them for ever.
RetentionDays = Annotated[int, Meta(ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS)]


# Scheme, host and port, as a browser sends them in `Origin`, no path (eventcore.origins's rule,
# in either case; the use case checks it, lower-cased).
Origin = Annotated[
    str,
    _documented(
        max_length=300,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])"
        r"(:[0-9]{1,5})?$",
    ),
]
AllowedOrigins = Annotated[list[Origin], Meta(max_length=MAX_ALLOWED_ORIGINS)]


class ProjectView(msgspec.Struct):
    id: str
    name: str
    created_at: datetime
    retention_days: RetentionDays | None
    # The origins whose pages may send with the project's keys; empty: any.
    allowed_origins: AllowedOrigins

    @classmethod
    def of(cls, project: Project) -> ProjectView:
        return cls(
            project.id,
            project.name,
            project.created_at,
            project.retention_days,
            list(project.allowed_origins),
        )


class ProjectChange(msgspec.Struct, forbid_unknown_fields=True):
    """The fields of a project to change; a field left out keeps its value."""

    retention_days: RetentionDays | msgspec.UnsetType | None = msgspec.UNSET
    allowed_origins: AllowedOrigins | msgspec.UnsetType | None = msgspec.UNSET


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
    email: Email
    role: Role


class MemberView(msgspec.Struct):
    workspace_id: str
    user_id: str
    role: Role

    @classmethod
    def of(cls, membership: Membership) -> MemberView:
        return cls(membership.workspace_id, membership.user_id, membership.role)


class InvitationView(msgspec.Struct):
    invitation_id: str
    email: str
    role: Role
    token: str
    expires_at: datetime


class RoleRequest(msgspec.Struct):
    role: Role


class MemberEntry(msgspec.Struct):
    user_id: str
    email: str
    role: Role
    joined_at: datetime


class MemberList(msgspec.Struct):
    members: list[MemberEntry]


class EventView(msgspec.Struct):
    id: str
    type: str
    timestamp: datetime
    received_at: datetime
    properties: Raw
    user_id: str | None
    anonymous_id: str | None

    @classmethod
    def of(cls, e: StoredEvent) -> EventView:
        return cls(
            e.id, e.type, e.timestamp, e.received_at, e.properties, e.user_id, e.anonymous_id
        )


async def ndjson(pages: AsyncIterator[list[StoredEvent]]) -> AsyncIterator[bytes]:
    """An export's pages as NDJSON: each page one chunk of lines, each line an event as
    ``/v1/events`` shows it (:class:`EventView`)."""
    encoder = msgspec.json.Encoder()
    chunk = bytearray()
    async for page in pages:
        for event in page:
            encoder.encode_into(EventView.of(event), chunk, -1)
            chunk += b"\n"
        yield bytes(chunk)
        chunk.clear()


class EventList(msgspec.Struct):
    events: list[EventView]
    next_cursor: str | None


class Health(msgspec.Struct, omit_defaults=True):
    """``error`` is present (in the API's error shape) only when a needed dependency is down."""

    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)
    error: dict[str, str] | None = None


def event_id_schema(description: str) -> Schema:
    """An event id as a client sends it (the idempotency key within the project)."""
    return Schema(
        type=OpenAPIType.STRING, min_length=1, max_length=MAX_ID_LENGTH, description=description
    )


def event_type_schema(description: str) -> Schema:
    """An event type as a client sends it: it holds a character other than white space."""
    return Schema(
        type=OpenAPIType.STRING,
        min_length=1,
        max_length=MAX_TYPE_LENGTH,
        pattern=r"\S",
        description=description,
    )
