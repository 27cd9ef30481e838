"""The audit log's route: a workspace's recorded actions, newest first (owner, admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.types import ControllerRouterHandler

from eventcore.audit import ActorType, AuditAction, AuditEntry, Detail
from eventcore.cursors import CURSOR_PATTERN
from eventcore.defaults import DEFAULT_PAGE
from eventcore.entrypoints.http.analytics import LIMIT
from eventcore.entrypoints.http.errors import ACCESS_TOKEN, ROLE, VALIDATED, api_errors
from eventcore.entrypoints.http.openapi import USER_AUTH
from eventcore.platform import Platform
from eventcore.tenancy import Principal


class Actor(msgspec.Struct):
    type: ActorType
    id: str | None


class Target(msgspec.Struct):
    type: str
    id: str


class AuditEntryView(msgspec.Struct):
    id: str
    action: AuditAction
    at: datetime
    actor: Actor
    target: Target | None
    details: dict[str, Detail]
    request_id: str | None
    client_address: str | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryView:
        target = (
            Target(entry.target_type, entry.target_id)
            if entry.target_type is not None and entry.target_id is not None
            else None
        )
        return cls(
            entry.id,
            entry.action,
            entry.at,
            Actor(entry.actor_type, entry.actor_id),
            target,
            entry.details,
            entry.request_id,
            entry.client_address,
        )


class AuditLogPage(msgspec.Struct):
    entries: list[AuditEntryView]
    next_cursor: str | None


@get(
    "/v1/audit-log",
    tags=["accounts"],
    security=USER_AUTH,
    summary="The workspace's audit log, newest first (owner, admin)",
    description=(
        "Every privileged action of the workspace, recorded in the transaction that carried it"
        " out: signups, logins (succeeded and failed), projects, API keys, members and"
        " invitations, dimension changes. Append-only: no route or database statement of the"
        " application changes or removes an entry."
    ),
    responses=api_errors(VALIDATED, ACCESS_TOKEN, ROLE, {400: ("invalid_cursor",)}),
)
async def audit_log(
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
    action: Annotated[
        str | None,
        QueryParameter(
            description="Only entries of this action (400 `invalid_query` for an unknown one)",
            schema_extra={"enum": [a.value for a in AuditAction]},
        ),
    ] = None,
    limit: Annotated[int, LIMIT] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        QueryParameter(
            description=(
                "The `next_cursor` of the previous page, as it came: good only for the same"
                " workspace and `action` filter (anything else: 400 `invalid_cursor`)."
            ),
            schema_extra={"pattern": f"^(?:{CURSOR_PATTERN})?$"},
        ),
    ] = None,
) -> AuditLogPage:
    page = await platform.audit.entries(principal, action=action, limit=limit, cursor=cursor)
    return AuditLogPage([AuditEntryView.of(e) for e in page.entries], page.next_cursor)


ROUTES: list[ControllerRouterHandler] = [audit_log]
