"""Dependencies the route handlers ask for: the platform and the caller's identity."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from eventcore.errors import AuthenticationFailed
from eventcore.platform import Platform
from eventcore.tenancy import Principal


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
    return platform.accounts.authenticate(token)


DEPENDENCIES = {
    "platform": Provide(provide_platform, sync_to_thread=False),
    "principal": Provide(provide_principal),
}
