"""The audit log: who did what to which part of a workspace, when, and from where.

Every privileged action is recorded as one :class:`AuditEntry` by the store, in the transaction
that carries the action out (a failed or refused action records nothing; a login, which changes
nothing, is an entry of its own). Entries are append-only: no port updates or deletes one, and
each store refuses it at the database (PostgreSQL: the application role holds no UPDATE or DELETE
privilege on the table; SQLite: triggers abort the statement).

Where a request came from (its request id and the client's address) reaches the use cases
through the :class:`~eventcore.ports.RequestContext` port, which the HTTP layer answers for the
request being served: the use cases' signatures stay those of the library API, where an entry
simply has no origin.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import msgspec

from eventcore.tenancy import Principal


class AuditAction(enum.StrEnum):
    SIGNUP = "signup"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    PROJECT_CREATED = "project.created"
    PROJECT_DELETED = "project.deleted"
    DIMENSIONS_CHANGED = "project.dimensions_changed"
    RETENTION_CHANGED = "project.retention_changed"
    ORIGINS_CHANGED = "project.origins_changed"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    MEMBER_INVITED = "member.invited"
    INVITATION_ACCEPTED = "member.joined"
    ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    DELETION_REQUESTED = "deletion.requested"
    DELETION_COMPLETED = "deletion.completed"
    SUPPRESSION_ADDED = "suppression.added"
    SUPPRESSION_LIFTED = "suppression.lifted"


class ActorType(enum.StrEnum):
    """Who acted: a user (signed in, or signing up or in), or eventcore itself carrying out
    what a user asked for (a deletion's completion names the user who requested it)."""

    USER = "user"
    SYSTEM = "system"


class RequestOrigin(msgspec.Struct, frozen=True):
    """The request an action came in: its id (as echoed in ``X-Request-ID``) and the client's
    address as the server saw it."""

    request_id: str | None = None
    client_address: str | None = None


# The details an entry may carry: flat values, never a secret.
Detail = str | int | bool | None | list[str]


class AuditEntry(msgspec.Struct, frozen=True):
    """One recorded action. ``seq`` is the store's order of insertion (0 until stored)."""

    id: str
    workspace_id: str
    at: datetime
    action: AuditAction
    actor_type: ActorType
    actor_id: str | None
    target_type: str | None = None
    target_id: str | None = None
    details: dict[str, Detail] = msgspec.field(default_factory=dict)
    request_id: str | None = None
    client_address: str | None = None
    seq: int = 0


def entry(
    action: AuditAction,
    workspace_id: str,
    at: datetime,
    *,
    origin: RequestOrigin,
    actor: Principal | None = None,
    user_id: str | None = None,
    actor_type: ActorType = ActorType.USER,
    target: tuple[str, str] | None = None,
    details: dict[str, Detail] | None = None,
) -> AuditEntry:
    """An entry of ``action`` by ``actor`` (or by the user ``user_id``, for one acting before it
    has a principal: a signup, a login), made in the request ``origin``."""
    return AuditEntry(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id,
        at=at,
        action=action,
        actor_type=actor_type,
        actor_id=actor.user_id if actor is not None else user_id,
        target_type=target[0] if target else None,
        target_id=target[1] if target else None,
        details=details or {},
        request_id=origin.request_id,
        client_address=origin.client_address,
    )


class NoRequest:
    """The request context outside any request (the library API): entries have no origin."""

    def origin(self) -> RequestOrigin:
        return RequestOrigin()
