"""Dependencies the route handlers ask for: the platform and the caller's identity.

A user's access token comes as ``Authorization: Bearer <token>`` or, from the console, in the
HttpOnly session cookie (``console.py`` sets it). A request authenticated by the cookie with an
unsafe method must also carry ``X-CSRF-Token``: the token's CSRF value (a hash of the access
token, also in a cookie that the console's script can read), which a page of another origin can
neither read nor compute. Bearer requests need no CSRF value: no browser adds that header by
itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from eventcore.entrypoints.http.observability import bind_workspace
from eventcore.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from eventcore.platform import Platform
from eventcore.tenancy import ApiKey, Principal


def provide_platform(state: State) -> Platform:
    platform: Platform = state.platform
    return platform


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


# The console's session: the access token (HttpOnly) and its CSRF value (readable by script).
SESSION_COOKIE = "eventcore_session"
CSRF_COOKIE = "eventcore_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_value(access_token: str) -> str:
    """The CSRF value of a session: bound to its access token (a new login, a new value), and
    telling nothing of the token (a one-way hash of it)."""
    digest = hashlib.sha256(b"eventcore csrf\x00" + access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_token(request: Request[Any, Any, Any]) -> str | None:
    """The access token of the session cookie, once the request has shown the session's CSRF
    value if its method is unsafe (PermissionDenied ``csrf_failed`` if not)."""
    token = request.cookies.get(SESSION_COOKIE, "").strip()
    if not token:
        return None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_value(token).encode()):
            raise PermissionDenied(
                f"A request signed in by the session cookie must send the `{CSRF_COOKIE}` "
                "cookie's value as `X-CSRF-Token`.",
                code="csrf_failed",
            )
    return token


def access_token(request: Request[Any, Any, Any]) -> str | None:
    """The access token the request signs in with: its bearer token, else (with no
    Authorization header at all) the session cookie's, as ``session_token`` checks it."""
    token = bearer_token(request)
    if token is None and request.headers.get("authorization") is None:
        token = session_token(request)
    return token


async def provide_principal(
    request: Request[Any, Any, Any], platform: NamedDependency[Platform]
) -> Principal:
    token = access_token(request)
    if token is None:
        raise AuthenticationFailed(
            "Send an access token as `Authorization: Bearer <token>`, or sign in to the console."
        )
    # Signature and expiry, then the membership as it is now (removed or demoted members lose
    # the rights within the membership cache's TTL).
    principal = await platform.accounts.principal(token)
    bind_workspace(principal.workspace_id)
    return principal


async def resolve_api_key(platform: Platform, secret: str | None) -> ApiKey:
    """The API key's record (AuthenticationFailed if unknown or revoked); from here on the
    request's log lines and span name its workspace."""
    record = await platform.keys.resolve(secret)
    bind_workspace(record.workspace_id)
    return record


def unstorable(raw: bytes) -> str | None:
    """Why percent-encoded ``raw`` cannot be stored as text (no store holds NUL, and a lone
    surrogate or a broken byte sequence is no UTF-8 text), or None when it can."""
    decoded = unquote_to_bytes(raw)
    if b"\x00" in decoded:
        return "NUL"
    try:
        decoded.decode()
    except UnicodeDecodeError:
        return "not UTF-8: a lone surrogate or a broken byte sequence"
    return None


def _refuse(where: str, reason: str, *, code: str) -> InvalidRequest:
    return InvalidRequest(f"{where} holds a character that cannot be stored ({reason}).", code=code)


def _check_query_string(query: bytes) -> None:
    for field in query.split(b"&"):
        raw_name, _, raw_value = field.replace(b"+", b" ").partition(b"=")
        reason = unstorable(raw_name)
        if reason is not None:
            raise _refuse("A query parameter's name", reason, code="invalid_query")
        reason = unstorable(raw_value)
        if reason is not None:
            name = unquote_to_bytes(raw_name).decode()
            raise _refuse(
                f"`{name}`" if name else "A query parameter", reason, code="invalid_query"
            )


def _check_path(request: Request[Any, Any, Any]) -> None:
    """The path parameters reach the stores as the query's do: the same characters are refused.
    The route's fixed segments are ASCII, so a fault in the raw path is in a parameter."""
    raw_path: bytes | None = request.scope.get("raw_path")
    reason = unstorable(raw_path if raw_path is not None else request.url.path.encode())
    if reason is None:
        return
    # The server decoded the path leniently: NUL as is, other faults as U+FFFD.
    mark = "\x00" if reason == "NUL" else "\ufffd"
    names = [name for name, value in request.path_params.items() if mark in str(value)]
    raise _refuse(f"`{names[0]}`" if names else "The path", reason, code="invalid_path")


# async on purpose: Litestar runs a sync before_request hook in a worker thread, which would
# cost every request a thread hop.
# The query parameters that take several values (each a filter, ANDed).
REPEATABLE = frozenset({"where"})
# Routes that take any query parameter: the Segment protocol's, lenient as its SDKs expect, and
# the operations routes (health, metrics), which probes and scrapers may call with their own.
_LENIENT_TAGS = frozenset({"segment", "operations"})
_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def _declared_query(request: Request[Any, Any, Any]) -> frozenset[str] | None:
    """The query parameters the OpenAPI document gives the matched route (None: any, for a
    route it does not document or a lenient one). A parameter no route takes is refused rather
    than ignored: a misspelt `evnt_type` would otherwise answer for every type."""
    table: dict[tuple[str, str], frozenset[str] | None] | None = request.app.state.get(
        "declared_query"
    )
    if table is None:
        table = {}
        for path, item in (request.app.openapi_schema.paths or {}).items():
            for method in ("get", "post", "put", "patch", "delete"):
                operation = getattr(item, method, None)
                if operation is None:
                    continue
                lenient = _LENIENT_TAGS & set(operation.tags or ())
                names = frozenset(
                    p.name
                    for p in operation.parameters or ()
                    if getattr(p, "param_in", "") == "query"
                )
                table[(method.upper(), path)] = None if lenient else names
        request.app.state["declared_query"] = table
    template = _PARAMETER.sub(r"{\1}", str(request.scope.get("path_template", "")))
    return table.get((request.method, template))


def _unknown(name: str, declared: frozenset[str]) -> str:
    if not name:
        return "A query parameter has no name."
    takes = ", ".join(f"`{d}`" for d in sorted(declared)) or "no query parameters"
    return f"`{name[:60]}` is not a parameter of this route (it takes {takes})."


async def refuse_unusable_parameters(request: Request[Any, Any, Any]) -> None:
    """No query parameter of this API but ``where`` takes several values: one given twice is an error, not
    a silent choice of one of them. No parameter, in the query or the path, may hold what no
    store can keep (NUL, a lone surrogate, bytes that are not UTF-8): refused here, at the
    edge, with the parameter's name, for every route and both profiles alike."""
    query: bytes = request.scope.get("query_string", b"")
    if query:
        _check_query_string(query)
        declared = _declared_query(request)
        seen: set[str] = set()
        for name, _ in request.query_params.multi_items():
            if name in seen and name not in REPEATABLE:
                raise InvalidRequest(f"`{name}` is given more than once.", code="invalid_query")
            if declared is not None and name not in declared:
                raise InvalidRequest(_unknown(name, declared), code="invalid_query")
            seen.add(name)
    if request.path_params:
        _check_path(request)


DEPENDENCIES = {
    "platform": Provide(provide_platform, sync_to_thread=False),
    "principal": Provide(provide_principal),
}
