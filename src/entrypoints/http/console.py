"""The web console at ``/``, and the browser session it signs in with.

The console is a page of plain JavaScript modules, HTML and CSS in ``static/console`` (uPlot,
its one library, vendored in ``static/console/vendor``; ``ASSETS.json`` there records it), served
from the package: no build step, no other host, a Content-Security-Policy that allows only this
origin. Any path that is not the API's is the console's page, so that its links can be opened
directly; a path under an API prefix that no route serves stays a JSON 404.

The session routes under ``/v1/auth/session`` keep the access token in an HttpOnly cookie
(never where a script can read it) beside the CSRF value the console's script sends back
(``deps.session_token`` checks it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import CacheControlHeader, Cookie
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from litestar.types import ControllerRouterHandler

from eventcore.entrypoints.http.deps import CSRF_COOKIE, SESSION_COOKIE, csrf_value
from eventcore.entrypoints.http.errors import (
    ACCESS_TOKEN,
    JSON_BODY,
    NOT_FOUND,
    STORE,
    Codes,
    api_errors,
    http_error,
)
from eventcore.entrypoints.http.openapi import USER_AUTH
from eventcore.entrypoints.http.schemas import LoginRequest, Text
from eventcore.platform import Platform
from eventcore.tenancy import Principal

CONSOLE_DIR = Path(__file__).resolve().parent / "static" / "console"
ASSETS_PATH = "/console"
# The first path segments that are the API's (or its docs', probes' and the console's own
# files'): an unknown path under one is a JSON 404, never the console's page.
API_PREFIXES = frozenset({"console", "health", "metrics", "schema"})

# Only this origin, for everything; no inline script or style, no framing, no plugins.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

# A path naming a file (a script, a style, an icon): a 404 when missing, not the page.
_FILE = re.compile(r"\.(?:css|gif|html?|ico|jpe?g|js|json|map|mjs|png|svg|txt|webp|xml)$")

_LOGIN: Codes = {
    400: ("invalid_email",),
    401: ("invalid_credentials",),
    429: ("too_many_login_attempts",),
    503: ("busy",),
}


async def secure_console(response: Response[Any]) -> Response[Any]:
    """The console's page and files answer with its security headers."""
    response.headers.update(SECURITY_HEADERS)
    return response


class WorkspaceEntry(msgspec.Struct):
    workspace_id: str
    name: str
    role: str


class SessionView(msgspec.Struct):
    """Who the session is: the user, the workspace it acts in with its role there, and the
    other workspaces it may switch to."""

    user_id: str
    workspace_id: str
    role: str
    workspaces: list[WorkspaceEntry]


class WorkspaceChoice(msgspec.Struct):
    workspace_id: Text


async def _view(platform: Platform, principal: Principal) -> SessionView:
    workspaces = await platform.accounts.workspaces(principal)
    return SessionView(
        principal.user_id,
        principal.workspace_id,
        principal.role.value,
        [WorkspaceEntry(w.id, w.name, role.value) for w, role in workspaces],
    )


def _session_cookies(request: Request[Any, Any, Any], token: str, seconds: int) -> list[Cookie]:
    """The session's two cookies: the token (HttpOnly) and its CSRF value (readable)."""
    secure = request.url.scheme == "https"
    return [
        Cookie(
            key=name,
            value=value,
            path="/",
            max_age=seconds,
            httponly=only,
            secure=secure,
            samesite="strict",
        )
        for name, value, only in (
            (SESSION_COOKIE, token, True),
            (CSRF_COOKIE, csrf_value(token), False),
        )
    ]


async def _signed_in(
    request: Request[Any, Any, Any], platform: Platform, token: str, seconds: int
) -> Response[SessionView]:
    principal = await platform.accounts.principal(token)
    return Response(
        await _view(platform, principal),
        status_code=HTTP_200_OK,
        cookies=_session_cookies(request, token, seconds),
        headers={"Cache-Control": "no-store"},
    )


class SessionController(Controller):
    path = "/v1/auth/session"
    tags = ["accounts"]

    @post(
        "/",
        status_code=HTTP_200_OK,
        summary="Sign in to the console: the access token in an HttpOnly session cookie",
        description="Takes the body of `POST /v1/auth/login`. Sets the `eventcore_session`"
        " cookie (HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS) holding the access"
        " token, and the `eventcore_csrf` cookie (readable by script), whose value a request"
        " signed in by the session sends as `X-CSRF-Token` with any method but GET and HEAD.",
        responses=api_errors(JSON_BODY, STORE, _LOGIN),
    )
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
        platform: NamedDependency[Platform],
    ) -> Response[SessionView]:
        token = await platform.accounts.login(
            data.email,
            data.password,
            data.workspace_id,
            client_address=request.client.host if request.client else None,
        )
        return await _signed_in(request, platform, token.access_token, token.expires_in)

    @get(
        "/",
        summary="The signed-in user, its workspace and role, and its other workspaces",
        responses=api_errors(ACCESS_TOKEN),
        security=USER_AUTH,
    )
    async def show(
        self, platform: NamedDependency[Platform], principal: NamedDependency[Principal]
    ) -> SessionView:
        return await _view(platform, principal)

    @post(
        "/workspace",
        status_code=HTTP_200_OK,
        summary="Switch the session to another of the user's workspaces",
        description="A new access token for the same user in `workspace_id`, set in the"
        " session cookies as `POST /v1/auth/session` sets them; 404 for a workspace the user"
        " is not a member of.",
        responses=api_errors(JSON_BODY, ACCESS_TOKEN, NOT_FOUND),
        security=USER_AUTH,
    )
    async def switch(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[WorkspaceChoice],
        platform: NamedDependency[Platform],
        principal: NamedDependency[Principal],
    ) -> Response[SessionView]:
        token = await platform.accounts.switch_workspace(principal, data.workspace_id)
        return await _signed_in(request, platform, token.access_token, token.expires_in)

    @delete(
        "/",
        status_code=HTTP_204_NO_CONTENT,
        summary="Sign out of the console: both session cookies cleared",
        responses=api_errors(),
        # Cleared whatever the scheme: a cookie is named by its name, path and domain alone.
        response_cookies=[
            Cookie(key=name, value="", path="/", max_age=0, httponly=only, samesite="strict")
            for name, only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False))
        ],
    )
    async def sign_out(self) -> None:
        return None


def _page() -> Response[bytes]:
    return Response(
        (CONSOLE_DIR / "index.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@get("/", include_in_schema=False, sync_to_thread=False)
def console_page() -> Response[bytes]:
    """The console's one page."""
    return _page()


def console_paths(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
    """A path no route serves: the console's page for a GET or HEAD of one of its own (its
    script shows the view the path names), else the API's JSON 404. Routing is left as it is:
    no route matches these paths, so methods, 405s and access logs stay those of the API."""
    first = request.url.path.lstrip("/").split("/", 1)[0]
    api = first in API_PREFIXES or (first[:1] == "v" and first[1:].isdigit())
    if request.method in ("GET", "HEAD") and not api and not _FILE.search(request.url.path):
        return _page()
    return http_error(request, exc)


# Installed beside the app's own handlers (app.py): the one for a 404 with no route.
EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {NotFoundException: console_paths}

ROUTES: list[ControllerRouterHandler] = [
    SessionController,
    create_static_files_router(
        ASSETS_PATH,
        directories=[CONSOLE_DIR],
        name="console_assets",
        # Revalidated on each load (by ETag): the page names its files without a version.
        cache_control=CacheControlHeader(no_cache=True),
        after_request=secure_console,
        include_in_schema=False,
    ),
    console_page,
]
