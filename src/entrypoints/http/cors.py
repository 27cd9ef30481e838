"""Cross-origin requests to the write-key routes, and to no other.

A browser SDK runs on a page of another origin and sends with a write key, which is public by
nature: the routes that take one (``/v1/ingest``, the Segment routes, the browser SDKs'
configuration and RudderStack's beacon) answer its preflight and give every answer
``Access-Control-Allow-Origin: *``, never with credentials (no cookie or session is read
there). Which origins a project accepts is the handlers' rule (``eventcore.origins``): a refusal
is an answer the page can read, so that the SDK sees its status rather than a network error.
The account, analytics and console routes send no CORS header: a browser keeps them same-origin.

Litestar's ``CORSConfig`` applies to the whole application, so this small ASGI wrapper stands in
for it on the routes above only.
"""

from __future__ import annotations

import re

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from eventcore.entrypoints.http.segment.protocol import MESSAGE_TYPES, SHORT_PATHS

_WRITE_KEY_PATHS = frozenset(
    [
        "/v1/ingest",
        "/v1/batch",
        "/v1/b",
        *(f"/v1/{kind}" for kind in MESSAGE_TYPES),
        *(f"/v1/{short}" for short in SHORT_PATHS),
        "/sourceConfig",
        "/sourceConfig/",
        "/beacon/v1/batch",
    ]
)
_SETTINGS = re.compile(r"^/v1/projects/[^/]+/settings$")
# A header list as the preflight names it (RFC 9110 tokens, comma separated).
_HEADER_LIST = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$")
ALLOWED_METHODS = b"GET, POST"
# How long a browser may keep a preflight's answer (Chromium caps it at two hours).
MAX_AGE_SECONDS = b"7200"
# Read by analytics.js to wait out a 429 (a cross-origin page reads no other header unless told).
EXPOSED = b"Retry-After, X-Request-Id"


def takes_write_key(path: str) -> bool:
    """Whether ``path`` is one of the routes a page of another origin may call."""
    return path in _WRITE_KEY_PATHS or _SETTINGS.match(path) is not None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


class CrossOrigin:
    """Pure ASGI wrapper: preflights of the write-key routes answered here, and their answers
    marked readable by any origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not takes_write_key(scope["path"]):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await self._preflight(scope, send)
            return

        async def send_readable(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-expose-headers", EXPOSED),
                ]
            await send(message)

        await self.app(scope, receive, send_readable)

    async def _preflight(self, scope: Scope, send: Send) -> None:
        headers = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-max-age", MAX_AGE_SECONDS),
            (b"content-length", b"0"),
        ]
        requested = (_header(scope, b"access-control-request-headers") or b"").strip()
        if requested and _HEADER_LIST.match(requested):
            # Any request header may come: the key is checked by the handler, not by the browser.
            headers.append((b"access-control-allow-headers", requested))
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 204,
            "headers": headers,
        }
        await send(start)
        end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(end)


def cross_origin(app: ASGIApp) -> ASGIApp:
    return CrossOrigin(app)
