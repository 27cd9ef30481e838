"""Logs: one access line per request, and every line of a request names it, its tenant and trace."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import structlog
from dependency_injector import providers
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.http.support import Api, ApiFactory, bearer
from tests.observability.conftest import LogLines

from eventcore.adapters.sqlite import SqliteStore
from eventcore.entrypoints.bootstrap import ApiContainer
from eventcore.entrypoints.http.observability import RequestObservability, bind_workspace
from eventcore.entrypoints.logs import configure_logging
from eventcore.entrypoints.settings import load_settings
from eventcore.tenancy import Project

SECRET_MARKER = "payload-marker-7c1d"


def access_lines(logs: LogLines) -> list[dict[str, Any]]:
    return logs.named("http.request")


def test_each_request_writes_one_access_line_with_its_request_id(api: Api, logs: LogLines) -> None:
    """Each request logs one line with method, route template, status, duration and request id,
    and the same id comes back in the X-Request-ID response header."""
    account = api.signup()
    project_id = api.create_project(account)
    before = len(access_lines(logs))

    response = api.client.get(f"/v1/projects/{project_id}/api-keys", headers=account.headers)

    assert response.status_code == 200
    lines = access_lines(logs)[before:]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "GET"
    assert line["route"] == "/v1/projects/{project_id}/api-keys"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float | int)
    assert line["duration_ms"] >= 0
    assert line["level"] == "info"
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["workspace_id"] == account.workspace_id
    assert len(line["trace_id"]) == 32


def test_a_sane_incoming_request_id_is_kept_and_an_insane_one_replaced(
    api: Api, logs: LogLines
) -> None:
    """A client's X-Request-ID is used and echoed; one that could forge log fields is replaced."""
    kept = api.client.get("/v1/projects", headers={"X-Request-ID": "client-req.42"})
    replaced = api.client.get("/v1/projects", headers={"X-Request-ID": 'x" injected="1'})

    assert kept.headers["x-request-id"] == "client-req.42"
    assert replaced.headers["x-request-id"] != 'x" injected="1'
    assert len(replaced.headers["x-request-id"]) == 32
    ids = [line["request_id"] for line in access_lines(logs)[-2:]]
    assert ids == ["client-req.42", replaced.headers["x-request-id"]]


def test_requests_that_match_no_route_are_logged_and_answered_with_a_request_id(
    api: Api, logs: LogLines
) -> None:
    """A 404 for an unknown path still gets its access line (with the path) and a request id.
    (Under /v1/: any other path is one of the console's, answered with its page.)"""
    response = api.client.get("/v1/no/such/route")

    assert response.status_code == 404
    line = access_lines(logs)[-1]
    assert line["status"] == 404
    assert line["route"] is None
    assert line["path"] == "/v1/no/such/route"
    assert line["request_id"] == response.headers["x-request-id"]
    assert "workspace_id" not in line


class FailingProjects(SqliteStore):
    """The embedded store, except that listing projects fails the way a bug would."""

    async def list_projects(self, workspace_id: str) -> list[Project]:
        raise RuntimeError("the projects table went away")


def test_a_line_logged_inside_a_request_carries_request_workspace_and_trace_ids(
    make_api: ApiFactory, logs: LogLines, spans: InMemorySpanExporter
) -> None:
    """A line logged while a request is handled (here: an unexpected error) names the request,
    the caller's workspace and the request's trace, like the access line."""

    def failing_store(container: ApiContainer) -> None:
        async def open_failing(settings: Any) -> Any:
            store = await FailingProjects.open(settings.sqlite_path)
            try:
                yield store
            finally:
                await store.close()

        container.gateways.store.override(
            providers.Resource(open_failing, container.gateways.settings)
        )

    api = make_api(configure=failing_store, refuse_500=False)
    account = api.signup()

    response = api.client.get("/v1/projects", headers=bearer(account.token))

    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    lines = [line for line in logs.all() if line.get("request_id") == request_id]
    assert [line["event"] for line in lines] == ["unhandled error", "http.request"]
    assert {line["workspace_id"] for line in lines} == {account.workspace_id}
    trace_ids = {line["trace_id"] for line in lines}
    assert len(trace_ids) == 1
    (server_span,) = [s for s in spans.get_finished_spans() if s.name == "GET /v1/projects"]
    assert server_span.context is not None
    assert trace_ids == {f"{server_span.context.trace_id:032x}"}
    assert server_span.attributes is not None
    assert server_span.attributes["eventcore.workspace_id"] == account.workspace_id
    assert server_span.attributes["http.response.status_code"] == 500


def test_the_request_context_is_cleared_after_the_request() -> None:
    """Whatever a request bound to the log context (request id, workspace) is gone after it."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        bind_workspace("ws-1")
        seen.update(structlog.contextvars.get_contextvars())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def run() -> dict[str, Any]:
        structlog.contextvars.bind_contextvars(process="kept")
        scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
        await RequestObservability(app)(scope, receive, send)
        return structlog.contextvars.get_contextvars()

    after = asyncio.run(run())

    assert seen["workspace_id"] == "ws-1"
    assert "request_id" in seen
    assert after == {"process": "kept"}
    assert (b"x-request-id", seen["request_id"].encode()) in sent[0]["headers"]


def test_no_secret_and_no_payload_is_logged_at_info(api: Api, logs: LogLines) -> None:
    """Ingesting with an API key logs neither the key, the access token nor event contents."""
    tenant = api.tenant()
    response = api.ingest(
        tenant, {"events": [{"type": "x", "properties": {"card": SECRET_MARKER}}, {"type": ""}]}
    )

    assert response.status_code == 202
    text = logs.text()
    for secret in (tenant.api_key, tenant.owner.token, SECRET_MARKER):
        assert secret not in text
    line = access_lines(logs)[-1]
    assert line["route"] == "/v1/ingest"
    assert line["workspace_id"] == tenant.owner.workspace_id


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_output_is_json_when_piped_and_readable_in_a_terminal() -> None:
    """`auto` writes JSON lines to a pipe or file and readable console lines to a terminal."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        piped, terminal = io.StringIO(), Terminal()
        configure_logging(load_settings({}), piped)
        structlog.configure(cache_logger_on_first_use=False)
        structlog.get_logger("eventcore.test").info("hello", answer=42)
        configure_logging(load_settings({}), terminal)
        structlog.configure(cache_logger_on_first_use=False)
        structlog.get_logger("eventcore.test").info("hello", answer=42)
    finally:
        structlog.reset_defaults()
        root.handlers[:], level = saved
        root.setLevel(level)

    line = json.loads(piped.getvalue())
    assert (line["event"], line["answer"], line["level"]) == ("hello", 42, "info")
    console = terminal.getvalue()
    assert "hello" in console
    assert "answer" in console
    assert not console.lstrip().startswith("{")


def test_a_clients_trace_is_continued(
    api: Api, logs: LogLines, spans: InMemorySpanExporter
) -> None:
    """A request sent with a W3C traceparent is served in a span of the client's trace, child
    of the client's span, and its log lines carry that trace id."""
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    response = api.client.get(
        "/v1/projects", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}
    )

    assert response.status_code == 401
    (server,) = [s for s in spans.get_finished_spans() if s.name == "GET /v1/projects"]
    assert server.context is not None
    assert f"{server.context.trace_id:032x}" == trace_id
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == parent_id
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/projects"
    assert access_lines(logs)[-1]["trace_id"] == trace_id
