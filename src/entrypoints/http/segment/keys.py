"""Where the Segment routes and the browser SDKs' configuration find the write key, and its
check: the key's record, or the request refused."""

from __future__ import annotations

from typing import Any

from litestar import Request

from eventcore.entrypoints.http.deps import bearer_token, resolve_api_key
from eventcore.entrypoints.http.segment.protocol import basic_write_key
from eventcore.platform import Platform
from eventcore.tenancy import ApiKey


def header_write_key(request: Request[Any, Any, Any]) -> str | None:
    """The write key from the headers, if the client sent one there."""
    key = request.headers.get("x-write-key", "").strip()
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and credentials.strip():
        return basic_write_key(credentials) or None
    return bearer_token(request) or request.headers.get("x-api-key") or None


def query_write_key(request: Request[Any, Any, Any]) -> str | None:
    """The write key from the headers, else the query's ``writeKey``: where RudderStack's
    beacon, which can send no header, and its configuration request give it."""
    return header_write_key(request) or request.query_params.get("writeKey") or None


async def check_key(request: Request[Any, Any, Any], platform: Platform, key: str | None) -> ApiKey:
    """The key's record: AuthenticationFailed if it is missing, unknown or revoked,
    OriginNotAllowed if the request comes from a page its project does not allow."""
    record = await resolve_api_key(platform, key)
    await platform.keys.check_origin(record, request.headers.get("origin"))
    return record
