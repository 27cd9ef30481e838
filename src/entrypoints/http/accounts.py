"""Routes for sign-up, login, projects, API keys and members."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from litestar.types import ControllerRouterHandler

from eventcore.entrypoints.http.errors import (
    ACCESS_TOKEN,
    CREATES,
    JSON_BODY,
    NAMED,
    NOT_FOUND,
    PATH_PARAMETERS,
    ROLE,
    STORE,
    Codes,
    api_errors,
)
from eventcore.entrypoints.http.openapi import USER_AUTH
from eventcore.entrypoints.http.schemas import (
    ApiKeyList,
    ApiKeyView,
    InvitationView,
    LoginRequest,
    LoginResponse,
    MemberEntry,
    MemberList,
    MemberRequest,
    MemberView,
    NameRequest,
    NewApiKey,
    ProjectChange,
    ProjectList,
    ProjectView,
    RoleRequest,
    SignupRequest,
    SignupResponse,
)
from eventcore.errors import InvalidRequest
from eventcore.platform import Platform
from eventcore.tenancy import Principal

log = structlog.get_logger("eventcore.accounts")

_EMAIL: Codes = {400: ("invalid_email",)}
# A change of a member that would leave the workspace without an owner.
_OWNERS: Codes = {409: ("last_owner",)}


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["accounts"]

    @post(
        "/signup",
        status_code=HTTP_201_CREATED,
        summary="Create a user and the workspace they own",
        responses=api_errors(
            JSON_BODY,
            CREATES,
            NAMED,
            _EMAIL,
            {
                400: ("weak_password",),
                409: ("email_taken",),
                429: ("too_many_signups",),
                503: ("busy",),
            },
        ),
    )
    async def signup(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SignupRequest],
        platform: NamedDependency[Platform],
    ) -> SignupResponse:
        result = await platform.accounts.signup(
            data.email,
            data.password,
            data.workspace,
            client_address=request.client.host if request.client else None,
        )
        return SignupResponse(
            result.user_id, result.workspace_id, result.access_token, result.expires_in
        )

    @post(
        "/login",
        status_code=HTTP_200_OK,
        summary="Get an access token",
        responses=api_errors(
            JSON_BODY,
            STORE,
            _EMAIL,
            {
                401: ("invalid_credentials",),
                429: ("too_many_login_attempts",),
                503: ("busy",),
            },
        ),
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
        platform: NamedDependency[Platform],
    ) -> LoginResponse:
        token = await platform.accounts.login(
            data.email,
            data.password,
            data.workspace_id,
            client_address=request.client.host if request.client else None,
        )
        return LoginResponse(token.access_token, token.expires_in)


class ProjectController(Controller):
    path = "/v1/projects"
    tags = ["projects"]
    security = USER_AUTH

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create a project (owner, admin)",
        responses=api_errors(JSON_BODY, ACCESS_TOKEN, ROLE, CREATES, NAMED),
    )
    async def create(
        self,
        data: JSONBody[NameRequest],
        platform: NamedDependency[Platform],
        principal: NamedDependency[Principal],
    ) -> ProjectView:
        return ProjectView.of(await platform.accounts.create_project(principal, data.name))

    @get("/", summary="List the workspace's projects", responses=api_errors(ACCESS_TOKEN))
    async def list(
        self, platform: NamedDependency[Platform], principal: NamedDependency[Principal]
    ) -> ProjectList:
        projects = await platform.accounts.list_projects(principal)
        return ProjectList([ProjectView.of(p) for p in projects])

    @patch(
        "/{project_id:str}",
        status_code=HTTP_200_OK,
        summary="Change a project: its retention of events, its allowed origins (owner, admin)",
        description="Only the fields given change. `retention_days` (1 to 3,650, or null to"
        " keep events for ever, the default): events whose time is older are removed within"
        " the hour by the retention run (with the counts, unique users and tallies of what"
        " remains kept exact), and an event already that old is not stored when it arrives."
        " `allowed_origins` (at most 100 origins as a browser sends them in `Origin`: scheme,"
        " host and port, no path; or null or `[]` for any origin, the default): a request with"
        " an `Origin` header naming another"
        " origin is refused on the write-key routes with 403 `origin_not_allowed`; a request"
        " without one (a server SDK) is not affected.",
        responses=api_errors(PATH_PARAMETERS, JSON_BODY, ACCESS_TOKEN, ROLE, NOT_FOUND),
    )
    async def change(
        self,
        request: Request[Any, Any, Any],
        project_id: FromPath[str],
        data: JSONBody[ProjectChange],
        platform: NamedDependency[Platform],
        principal: NamedDependency[Principal],
    ) -> ProjectView:
        # Litestar converts a body leniently ("30" and 30.0 pass as 30): read it again strictly,
        # so that a number of days is a JSON integer and nothing else.
        try:
            data = msgspec.json.decode(await request.body(), type=ProjectChange)
        except msgspec.DecodeError as exc:
            raise InvalidRequest(str(exc).replace("`$.", "`"), code="invalid_request") from exc
        if data.retention_days is msgspec.UNSET and data.allowed_origins is msgspec.UNSET:
            raise InvalidRequest(
                "Name what to change: `retention_days` or `allowed_origins`.",
                code="invalid_request",
            )
        if data.allowed_origins is not msgspec.UNSET:
            project = await platform.accounts.set_allowed_origins(
                principal, project_id, data.allowed_origins
            )
        if data.retention_days is not msgspec.UNSET:
            project = await platform.accounts.set_retention(
                principal, project_id, data.retention_days
            )
        return ProjectView.of(project)

    @delete(
        "/{project_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a project; its API keys stop working and its data is unreachable "
        "(owner, admin)",
        responses=api_errors(PATH_PARAMETERS, ACCESS_TOKEN, ROLE, NOT_FOUND),
    )
    async def delete_project(
        self,
        project_id: FromPath[str],
        platform: NamedDependency[Platform],
        principal: NamedDependency[Principal],
    ) -> None:
        await platform.accounts.delete_project(principal, project_id)

    @post(
        "/{project_id:str}/api-keys",
        status_code=HTTP_201_CREATED,
        summary="Create an API key; its secret is shown this once (owner, admin)",
        responses=api_errors(
            PATH_PARAMETERS, JSON_BODY, ACCESS_TOKEN, ROLE, NOT_FOUND, CREATES, NAMED
        ),
    )
    async def create_key(
        self,
        project_id: FromPath[str],
        data: JSONBody[NameRequest],
        platform: NamedDependency[Platform],
        principal: NamedDependency[Principal],
    ) -> NewApiKey:
        issued = await platform.accounts.create_api_key(principal, project_id, data.name)
        key = issued.record
        return NewApiKey(
            key.id, issued.secret, key.prefix, key.project_id, key.name, key.created_at
        )

    @get(
        "/{project_id:str}/api-keys",
        summary="List a project's API keys, without secrets",
        responses=api_errors(PATH_PARAMETERS, ACCESS_TOKEN, ROLE, NOT_FOUND),
    )
    async def list_keys(
        self,
        project_id: FromPath[str],
        platform: NamedDependency[Platform],
        principal: NamedDependency[Principal],
    ) -> ApiKeyList:
        keys = await platform.accounts.list_api_keys(principal, project_id)
        return ApiKeyList([ApiKeyView.of(k) for k in keys])


@delete(
    "/v1/api-keys/{key_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    tags=["projects"],
    security=USER_AUTH,
    summary="Revoke an API key; it stops working within one second (owner, admin)",
    responses=api_errors(PATH_PARAMETERS, ACCESS_TOKEN, ROLE, NOT_FOUND),
)
async def revoke_api_key(
    key_id: FromPath[str],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> None:
    await platform.accounts.revoke_api_key(principal, key_id)


class MemberController(Controller):
    path = "/v1/members"
    tags = ["accounts"]
    security = USER_AUTH

    @post(
        status_code=HTTP_201_CREATED,
        summary="Invite an email to a role (owner); the same answer for any well-formed email",
        description="Makes nobody a member: the invitee accepts the one-time `token` with "
        "`POST /v1/invitations/{token}/accept`, signed in as that email.",
        responses=api_errors(JSON_BODY, ACCESS_TOKEN, ROLE, CREATES, _EMAIL),
    )
    async def invite(
        self,
        data: JSONBody[MemberRequest],
        platform: NamedDependency[Platform],
        principal: NamedDependency[Principal],
    ) -> InvitationView:
        issued = await platform.accounts.invite(principal, data.email, data.role)
        invitation = issued.record
        return InvitationView(
            invitation.id, invitation.email, invitation.role, issued.token, invitation.expires_at
        )

    @get(summary="The workspace's members (any member)", responses=api_errors(ACCESS_TOKEN))
    async def list_members(
        self, platform: NamedDependency[Platform], principal: NamedDependency[Principal]
    ) -> MemberList:
        members = await platform.accounts.list_members(principal)
        return MemberList([MemberEntry(m.user_id, m.email, m.role, m.joined_at) for m in members])

    @patch(
        "/{user_id:str}",
        status_code=HTTP_200_OK,
        summary="Change a member's role (owner); the last owner cannot be demoted (409)",
        responses=api_errors(PATH_PARAMETERS, JSON_BODY, ACCESS_TOKEN, ROLE, NOT_FOUND, _OWNERS),
    )
    async def change_role(
        self,
        user_id: FromPath[str],
        data: JSONBody[RoleRequest],
        platform: NamedDependency[Platform],
        principal: NamedDependency[Principal],
    ) -> MemberView:
        membership = await platform.accounts.change_role(principal, user_id, data.role)
        return MemberView.of(membership)

    @delete(
        "/{user_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Remove a member (owner) or leave (yourself); the last owner cannot (409)",
        responses=api_errors(PATH_PARAMETERS, ACCESS_TOKEN, ROLE, NOT_FOUND, _OWNERS),
    )
    async def remove_member(
        self,
        user_id: FromPath[str],
        platform: NamedDependency[Platform],
        principal: NamedDependency[Principal],
    ) -> None:
        await platform.accounts.remove_member(principal, user_id)


@post(
    "/v1/invitations/{token:str}/accept",
    status_code=HTTP_200_OK,
    tags=["accounts"],
    security=USER_AUTH,
    summary="Accept an invitation, signed in as the email it was made for",
    # 403: signed in as another email than the invitation's.
    responses=api_errors(
        PATH_PARAMETERS, ACCESS_TOKEN, ROLE, NOT_FOUND, {409: ("already_member",)}
    ),
)
async def accept_invitation(
    token: FromPath[str],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> MemberView:
    membership = await platform.accounts.accept_invitation(principal, token)
    return MemberView.of(membership)


class WorkspaceDeletion(msgspec.Struct, forbid_unknown_fields=True):
    # The workspace's name, repeated as it is: the confirmation.
    name: str


@delete(
    "/v1/workspaces/{workspace_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    tags=["accounts"],
    security=USER_AUTH,
    summary="Delete the workspace and everything in it (owner; its name repeated in the body)",
    description=(
        'Body `{"name"}`: the workspace\'s name exactly, as confirmation (else 400'
        " `confirmation_mismatch`). Every row of the workspace goes in one transaction (events,"
        " counts, projects, keys, members, invitations, deletions, audit log); its API keys stop"
        " working, its batches still queued are dropped by the workers, and what Redis holds of"
        " it is removed. Its users keep their accounts (and their other workspaces)."
    ),
    responses=api_errors(
        JSON_BODY, ACCESS_TOKEN, ROLE, NOT_FOUND, PATH_PARAMETERS, {400: ("confirmation_mismatch",)}
    ),
)
async def delete_workspace(
    workspace_id: FromPath[str],
    data: JSONBody[WorkspaceDeletion],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> None:
    await platform.accounts.delete_workspace(principal, workspace_id, data.name)
    # Its audit log went with it: the deletion is on record in the server's log.
    log.info("workspace.deleted", workspace_id=workspace_id, user_id=principal.user_id)


ROUTES: list[ControllerRouterHandler] = [
    AuthController,
    ProjectController,
    revoke_api_key,
    MemberController,
    accept_invitation,
    delete_workspace,
]
