"""Deletion requests: ask for one (owner, admin), follow it, list a project's; and the
suppressions a request with ``suppress`` makes: list a project's, lift one.

A request is answered 202 as soon as it is stored; this process then carries it out right after
the answer, and every API process sweeps for open ones (``schedules``), so that one left by a
process that stopped is finished by another.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

import msgspec
import structlog
from litestar import Request, Response, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT
from litestar.types import ControllerRouterHandler
from msgspec import Meta

from eventcore.defaults import (
    DEFAULT_PAGE,
    MAX_DELETION_EVENT_IDS,
    MAX_DELETION_REQUEST_BYTES,
    MAX_DELETION_USER_IDS,
    MAX_PAGE,
    MAX_PERSON_LENGTH,
    MAX_SUPPRESSIONS,
)
from eventcore.deletions import Deletion, DeletionStatus
from eventcore.entrypoints.http.errors import (
    ACCESS_TOKEN,
    JSON_BODY,
    NOT_FOUND,
    PATH_PARAMETERS,
    ROLE,
    VALIDATED,
    api_errors,
)
from eventcore.entrypoints.http.openapi import USER_AUTH
from eventcore.platform import Platform
from eventcore.suppressions import Suppression
from eventcore.tenancy import Principal

log = structlog.get_logger("eventcore.deletions")


class DeletionRequestBody(msgspec.Struct, forbid_unknown_fields=True):
    project_id: str
    user_ids: Annotated[list[str], Meta(max_length=MAX_DELETION_USER_IDS)] | None = None
    event_ids: Annotated[list[str], Meta(max_length=MAX_DELETION_EVENT_IDS)] | None = None
    start: Annotated[datetime, Meta(tz=True)] | None = None
    end: Annotated[datetime, Meta(tz=True)] | None = None
    suppress: bool = False


class DeletionView(msgspec.Struct):
    id: str
    project_id: str
    status: DeletionStatus
    events_deleted: int
    requested_at: datetime
    completed_at: datetime | None
    user_ids: list[str]
    event_ids: list[str]
    start: datetime | None
    end: datetime | None
    error: str | None
    suppress: bool

    @classmethod
    def of(cls, deletion: Deletion) -> DeletionView:
        selector = deletion.selector
        return cls(
            deletion.id,
            deletion.project_id,
            deletion.status,
            deletion.events_deleted,
            deletion.requested_at,
            deletion.completed_at,
            list(selector.user_ids),
            list(selector.event_ids),
            selector.start,
            selector.end,
            deletion.error,
            deletion.suppress,
        )


class DeletionList(msgspec.Struct):
    deletions: list[DeletionView]


async def run_deletion(platform: Platform, workspace_id: str, deletion_id: str) -> None:
    """Carry a deletion out after its answer; one that fails is logged (a sweep retries one
    the database could not be reached for)."""
    try:
        await platform.deletions.run(workspace_id, deletion_id)
    except Exception as exc:
        log.warning(
            "deletion.failed", deletion_id=deletion_id, error=f"{type(exc).__name__}: {exc}"
        )


@post(
    "/v1/deletions",
    tags=["data"],
    security=USER_AUTH,
    status_code=HTTP_202_ACCEPTED,
    # Room for the most ids a request may name (10,000 of each, up to 128 characters).
    request_max_body_size=MAX_DELETION_REQUEST_BYTES,
    summary="Ask for the deletion of a project's events (owner, admin)",
    description=(
        "Deletes every stored event of the project that matches all the criteria given:"
        " `user_ids` (an event's `user_id` or `anonymous_id`), `event_ids`, and a time range"
        " [`start`, `end`) of the events' timestamps; at least one is required. Answered as soon"
        " as it is stored (`pending`); follow it with `GET /v1/deletions/{id}`. A deleted"
        " event's id stays known: sent again, it is a duplicate and is never stored again."
        " With `suppress: true` (which needs `user_ids`) those persons are also suppressed in"
        " the project, whatever the other criteria: their later events are refused at ingest"
        " (per event, code `suppressed`) and never stored, until"
        " `DELETE /v1/suppressions/{user_id}` lifts it; a project holds at most"
        f" {MAX_SUPPRESSIONS:,} suppressed persons (409 `too_many_suppressions`)."
    ),
    responses=api_errors(
        JSON_BODY,
        ACCESS_TOKEN,
        ROLE,
        NOT_FOUND,
        {400: ("invalid_deletion",), 409: ("too_many_suppressions",)},
    ),
)
async def request_deletion(
    data: JSONBody[DeletionRequestBody],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> Response[DeletionView]:
    deletion = await platform.deletions.request(
        principal,
        data.project_id,
        user_ids=data.user_ids,
        event_ids=data.event_ids,
        start=data.start,
        end=data.end,
        suppress=data.suppress,
    )
    return Response(
        DeletionView.of(deletion),
        status_code=HTTP_202_ACCEPTED,
        background=BackgroundTask(run_deletion, platform, deletion.workspace_id, deletion.id),
    )


@get(
    "/v1/deletions/{deletion_id:str}",
    tags=["data"],
    security=USER_AUTH,
    summary="A deletion request and how far it has got (owner, admin)",
    responses=api_errors(PATH_PARAMETERS, ACCESS_TOKEN, ROLE, NOT_FOUND),
)
async def get_deletion(
    deletion_id: FromPath[str],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> DeletionView:
    return DeletionView.of(await platform.deletions.get(principal, deletion_id))


@get(
    "/v1/deletions",
    tags=["data"],
    security=USER_AUTH,
    summary="A project's deletion requests, newest first (owner, admin)",
    responses=api_errors(VALIDATED, ACCESS_TOKEN, ROLE, NOT_FOUND),
)
async def list_deletions(
    project_id: FromQuery[str],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> DeletionList:
    found = await platform.deletions.list(principal, project_id)
    return DeletionList([DeletionView.of(d) for d in found])


class SuppressionView(msgspec.Struct):
    user_id: str
    suppressed_at: datetime
    deletion_id: str

    @classmethod
    def of(cls, suppression: Suppression) -> SuppressionView:
        return cls(suppression.user_id, suppression.suppressed_at, suppression.deletion_id)


class SuppressionList(msgspec.Struct):
    suppressions: list[SuppressionView]
    next_after: str | None


@get(
    "/v1/suppressions",
    tags=["data"],
    security=USER_AUTH,
    summary="A project's suppressed persons, by id (owner, admin)",
    description=(
        "The persons whose events the project refuses, in the order of their ids (as UTF-8"
        " bytes), at most `limit` a page. `next_after` is the last id of a page that has more"
        " after it: pass it as `after` for the next one (null on the last page)."
    ),
    responses=api_errors(VALIDATED, ACCESS_TOKEN, ROLE, NOT_FOUND),
)
async def list_suppressions(
    project_id: FromQuery[str],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
    limit: Annotated[
        int,
        QueryParameter(
            description=f"Persons per page, 1 to {MAX_PAGE} (else 400 `invalid_query`).",
            schema_extra={"minimum": 1, "maximum": MAX_PAGE},
        ),
    ] = DEFAULT_PAGE,
    after: Annotated[
        str | None,
        QueryParameter(
            description="The previous page's `next_after`: list the persons after this id.",
            schema_extra={"minLength": 1, "maxLength": MAX_PERSON_LENGTH},
        ),
    ] = None,
) -> SuppressionList:
    page = await platform.deletions.suppressions(principal, project_id, limit=limit, after=after)
    return SuppressionList([SuppressionView.of(s) for s in page.suppressions], page.next_after)


_LIFT_PREFIX = b"/v1/suppressions/"


def person_in_path(request: Request[Any, Any, Any], matched: str) -> str:
    """The ``user_id`` segment as the client sent it, percent-decoded once.

    A person's id is any text of 1 to 128 characters, ``/`` and ``%`` included; the router
    decodes a path's escapes (twice, for a parameter) and drops a parameter's edge slashes, so
    the id is read from the raw path instead (the route matches any rest of the path). Without
    the raw path, the router's reading."""
    raw: bytes | None = request.scope.get("raw_path")
    if raw is None or not raw.startswith(_LIFT_PREFIX):
        return matched.lstrip("/")
    # Some servers (the test client's) leave the query string on the raw path; a `?` of the id
    # itself is escaped.
    segment = raw[len(_LIFT_PREFIX) :].split(b"?", 1)[0]
    return unquote_to_bytes(segment).decode()


@delete(
    "/v1/suppressions/{user_id:path}",
    tags=["data"],
    security=USER_AUTH,
    status_code=HTTP_204_NO_CONTENT,
    summary="Lift a person's suppression in a project (owner, admin)",
    description=(
        "The person's events received from now on are accepted again (an API process that read"
        " the project's suppressions within the last second may still refuse them for that"
        " second). 404 when the person is not suppressed in that project. `user_id` is the"
        " rest of the path, percent-encoded (`/` as `%2F`, `%` as `%25`) and decoded once."
    ),
    responses=api_errors(PATH_PARAMETERS, VALIDATED, ACCESS_TOKEN, ROLE, NOT_FOUND),
)
async def lift_suppression(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    project_id: FromQuery[str],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> None:
    person = person_in_path(request, user_id)
    await platform.deletions.lift(principal, project_id, person)


ROUTES: list[ControllerRouterHandler] = [
    request_deletion,
    get_deletion,
    list_deletions,
    list_suppressions,
    lift_suppression,
]
