"""What the API says about each request: a request id, its trace, its metrics and one access line.

:class:`RequestObservability` wraps the whole application (see ``create_app``), so requests
that match no route (404, 405) are seen too. For each HTTP request it

- takes the request id from ``X-Request-ID`` when the client sent a sane one, makes one
  otherwise, binds it to the structlog context and echoes it in the response's ``X-Request-ID``;
- continues the client's W3C trace (``traceparent``) or starts one. While spans are recorded
  (an exporter is configured) that is a SERVER span named after the route template, whose
  descendants are the publish to the queue and the worker's commit. While nothing records them,
  no span object is made: the request gets a trace id and span id of its own (the client's trace
  id if it sent one), carried to the logs and, through the queue's headers, to the worker;
- counts it in the request metrics (``eventcore_requests_total``,
  ``eventcore_request_duration_seconds``, ``eventcore_requests_in_progress``,
  ``eventcore_requests_error_total``) by method, route template and status, for requests that
  matched a route. A client that went away before the answer started (the server saw
  ``http.disconnect`` while reading the body) is counted under status 499, "client closed
  request", whatever the app made of the missing body: it is not a server error;
- writes one access-log line (method, route, status, duration, request id, workspace id when
  known) and clears the context it bound.

The workspace is bound by :func:`bind_workspace`, called where the API key or access token is
resolved (the HTTP dependency layer), never by the core.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from prometheus_client import Counter, Gauge, Histogram

from eventcore.audit import RequestOrigin
from eventcore.entrypoints.origin import REQUEST_ORIGIN
from eventcore.entrypoints.telemetry import recording

log = structlog.get_logger("eventcore.http")
_tracer = trace.get_tracer("eventcore.entrypoints.http")

REQUEST_ID_HEADER = "x-request-id"
# nginx's "client closed request": the client left before the answer started.
CLIENT_CLOSED = 499
APP_NAME = "eventcore"
# A client's id is kept only if it cannot forge log fields or flood them.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
# Scraped and probed every few seconds: their lines would drown the others at info.
_QUIET_ROUTES = frozenset({"/metrics", "/health/live", "/health/ready"})
# The W3C trace-context (and baggage) headers a client may continue its trace with.
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})

_LABELS = ("method", "path", "status_code", "app_name")
REQUESTS = Counter("eventcore_requests_total", "Total requests", _LABELS)
REQUEST_SECONDS = Histogram(
    "eventcore_request_duration_seconds", "Request duration, in seconds", _LABELS
)
REQUEST_ERRORS = Counter("eventcore_requests_error_total", "Total errors in requests", _LABELS)
IN_PROGRESS = Gauge(
    "eventcore_requests_in_progress",
    "Total requests currently in progress",
    ("method", "app_name"),
    multiprocess_mode="livesum",
)


def bind_workspace(workspace_id: str) -> None:
    """From here on, the request's log lines and its span name the caller's workspace."""
    structlog.contextvars.bind_contextvars(workspace_id=workspace_id)
    trace.get_current_span().set_attribute("eventcore.workspace_id", workspace_id)


def read_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, dict[str, str]]:
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


def unrecorded_span(carrier: dict[str, str]) -> NonRecordingSpan:
    """The request's place in a trace when no span is recorded: the client's trace id if its
    ``traceparent`` is valid, else a new one, and a span id of its own (never sampled)."""
    trace_id = 0
    match = _TRACEPARENT.fullmatch(carrier.get("traceparent", "").strip())
    if match is not None:
        trace_id = int(match[1], 16)
    if trace_id == 0:
        trace_id = random.getrandbits(128) or 1  # an id, not a secret
    span_id = random.getrandbits(64) or 1
    return NonRecordingSpan(SpanContext(trace_id, span_id, False, TraceFlags(0)))


class _Metrics:
    """The request metrics' children by labels, looked up once each (``labels()`` takes a lock)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._in_progress: dict[str, Any] = {}

    def started(self, method: str) -> None:
        gauge = self._in_progress.get(method)
        if gauge is None:
            gauge = self._in_progress[method] = IN_PROGRESS.labels(method, APP_NAME)
        gauge.inc()

    def finished(self, method: str, route: str | None, status: int, seconds: float) -> None:
        self._in_progress[method].dec()
        if route is None:
            return
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status), APP_NAME)
            children = self._children[key] = (
                REQUESTS.labels(*labels),
                REQUEST_SECONDS.labels(*labels),
                REQUEST_ERRORS.labels(*labels) if status >= 500 else None,
            )
        requests, duration, errors = children
        requests.inc()
        duration.observe(seconds)
        if errors is not None:
            errors.inc()


class _Answer:
    """What the app answered so far: the status of its response start (500 until then), or
    499 once the client has gone before it started."""

    __slots__ = ("started", "status")

    def __init__(self) -> None:
        self.status = 500
        self.started = False


class RequestObservability:
    """Pure ASGI middleware around the whole app; see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._metrics = _Metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id, carrier = read_headers(scope["headers"])
        method: str = scope["method"]
        answer = _Answer()
        echoed = (b"x-request-id", request_id.encode())

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start" and not answer.started:
                answer.started = True
                answer.status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        async def receive_noting_disconnect() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.disconnect" and not answer.started:
                # Whatever the app answers now (Litestar makes a 500 of a body cut short)
                # reaches nobody and is the client's doing.
                answer.started = True
                answer.status = CLIENT_CLOSED
            return message

        before = structlog.contextvars.get_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        client = scope.get("client")
        # What the audit log records of the request an action came in.
        origin = REQUEST_ORIGIN.set(RequestOrigin(request_id, client[0] if client else None))
        started = time.perf_counter()
        self._metrics.started(method)
        try:
            if recording():
                await self._traced(
                    scope,
                    receive_noting_disconnect,
                    send_with_request_id,
                    carrier,
                    request_id,
                    answer,
                    started,
                )
                return
            token = otel_context.attach(trace.set_span_in_context(unrecorded_span(carrier)))
            try:
                await self.app(scope, receive_noting_disconnect, send_with_request_id)
            finally:
                self._finish(scope, method, answer.status, started)
                otel_context.detach(token)
        finally:
            REQUEST_ORIGIN.reset(origin)
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**before)

    async def _traced(
        self,
        scope: HTTPScope,
        receive: Receive,
        send: Send,
        carrier: dict[str, str],
        request_id: str,
        answer: _Answer,
        started: float,
    ) -> None:
        method: str = scope["method"]
        with _tracer.start_as_current_span(
            f"{method} {scope.get('path', '')}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "eventcore.request_id": request_id},
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            try:
                await self.app(scope, receive, send)
            finally:
                # The router sets the template while routing, inside the wrapped app.
                route: str | None = scope.get("path_template") or None
                span.update_name(f"{method} {route}" if route else method)
                span.set_attribute("http.response.status_code", answer.status)
                if route:
                    span.set_attribute("http.route", route)
                if answer.status >= 500:
                    span.set_status(StatusCode.ERROR)
                self._finish(scope, method, answer.status, started)

    def _finish(self, scope: Scope, method: str, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        route: str | None = scope.get("path_template") or None
        self._metrics.finished(method, route, status, seconds)
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        if route is None:
            # No route matched: the path is all there is to say what was asked (bounded).
            fields["path"] = str(scope.get("path", ""))[:200]
        quiet = route in _QUIET_ROUTES and status < 400
        (log.debug if quiet else log.info)("http.request", **fields)


def observe_requests(app: ASGIApp) -> ASGIApp:
    return RequestObservability(app)
