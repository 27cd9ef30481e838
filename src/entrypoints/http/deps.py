"""Dependencies the route handlers ask for: the platform and the caller's identity."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from eventcore.entrypoints.http.observability import bind_workspace
from eventcore.errors import AuthenticationFailed, InvalidRequest
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


async def provide_principal(
    request: Request[Any, Any, Any], platform: NamedDependency[Platform]
) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("Send an access token as `Authorization: Bearer <token>`.")
    principal = platform.accounts.authenticate(token)
    bind_workspace(principal.workspace_id)
    return principal


async def resolve_api_key(platform: Platform, secret: str | None) -> ApiKey:
    """The API key's record (AuthenticationFailed if unknown or revoked); from here on the
    request's log lines and span name its workspace."""
    record = await platform.keys.resolve(secret)
    bind_workspace(record.workspace_id)
    return record


# async on purpose: Litestar runs a sync before_request hook in a worker thread, which would
# cost every request a thread hop.
async def refuse_repeated_query_parameters(request: Request[Any, Any, Any]) -> None:
    """No query parameter of this API takes several values: one given twice is an error, not
    a silent choice of one of them."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            raise InvalidRequest(f"`{name}` is given more than once.", code="invalid_query")
        seen.add(name)


DEPENDENCIES = {
    "platform": Provide(provide_platform, sync_to_thread=False),
    "principal": Provide(provide_principal),
}
