"""What the API says about each request: a request id, a server span and one access-log line.

:class:`RequestObservability` wraps the whole application (see ``create_app``), so requests
that match no route (404, 405) are seen too. For each HTTP request it

- takes the request id from ``X-Request-ID`` when the client sent a sane one, makes one
  otherwise, binds it to the structlog context and echoes it in the response's ``X-Request-ID``;
- continues the client's W3C trace (``traceparent``) or starts one, in a SERVER span named after
  the route template; the publish to the queue and the worker's commit are its descendants;
- writes one access-log line (method, route, status, duration, request id, workspace id when
  known) and clears the context it bound.

The workspace is bound by :func:`bind_workspace`, called where the API key or access token is
resolved (the HTTP dependency layer), never by the core.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

log = structlog.get_logger("eventcore.http")
_tracer = trace.get_tracer("eventcore.entrypoints.http")

REQUEST_ID_HEADER = "x-request-id"
# A client's id is kept only if it cannot forge log fields or flood them.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
# Scraped and probed every few seconds: their lines would drown the others at info.
_QUIET_ROUTES = frozenset({"/metrics", "/health/live", "/health/ready"})
# The W3C trace-context (and baggage) headers a client may continue its trace with.
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})


def bind_workspace(workspace_id: str) -> None:
    """From here on, the request's log lines and its span name the caller's workspace."""
    structlog.contextvars.bind_contextvars(workspace_id=workspace_id)
    trace.get_current_span().set_attribute("eventcore.workspace_id", workspace_id)


def read_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str, dict[str, str]]:
    """The request id (the client's ``X-Request-ID`` if it is a sane one, else a new one) and
    the trace-context headers, in one pass over the request's headers."""
    request_id: str | None = None
    carrier: dict[str, str] = {}
    for name, value in headers:
        if name == b"x-request-id" and request_id is None:
            candidate = value.decode("latin-1").strip()
            request_id = candidate if _SANE_REQUEST_ID.fullmatch(candidate) else ""
        elif name in _PROPAGATED:
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    return request_id or uuid.uuid4().hex, carrier


class RequestObservability:
    """Pure ASGI middleware around the whole app; see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id, carrier = read_headers(list(scope.get("headers") or []))
        method = str(scope.get("method", "GET"))
        status = 500
        echoed = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        before = structlog.contextvars.get_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            with _tracer.start_as_current_span(
                f"{method} {scope.get('path', '')}",
                context=propagate.extract(carrier),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "eventcore.request_id": request_id},
                record_exception=True,
                set_status_on_exception=True,
            ) as span:
                try:
                    await self.app(scope, receive, send_with_request_id)
                finally:
                    self._finish(span, scope, method, status, started)
        finally:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**before)

    def _finish(
        self, span: trace.Span, scope: Scope, method: str, status: int, started: float
    ) -> None:
        # The router sets the template while routing, inside the wrapped app.
        route: str | None = scope.get("path_template") or None
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        span.update_name(f"{method} {route}" if route else method)
        span.set_attribute("http.response.status_code", status)
        if route:
            span.set_attribute("http.route", route)
        if status >= 500:
            span.set_status(StatusCode.ERROR)
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
        }
        if route is None:
            # No route matched: the path is all there is to say what was asked (bounded).
            fields["path"] = str(scope.get("path", ""))[:200]
        quiet = route in _QUIET_ROUTES and status < 400
        (log.debug if quiet else log.info)("http.request", **fields)


def observe_requests(app: ASGIApp) -> ASGIApp:
    return RequestObservability(app)
