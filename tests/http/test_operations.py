"""Operations endpoints, the OpenAPI document, and errors outside the routes, over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from eventcore.adapters.sqlite import SqliteStore
from eventcore.entrypoints.settings import Settings
from tests.http.support import Api, ApiFactory, Tenant, assert_error
from tests.support.processes import free_port

README = Path(__file__).resolve().parents[2] / "README.md"

# Every route of the public contract (the README's API table), as (method, OpenAPI path template).
CONTRACT_ROUTES = [
    ("post", "/v1/auth/signup"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/session"),
    ("get", "/v1/auth/session"),
    ("post", "/v1/auth/session/workspace"),
    ("delete", "/v1/auth/session"),
    ("post", "/v1/projects"),
    ("get", "/v1/projects"),
    ("patch", "/v1/projects/{project_id}"),
    ("post", "/v1/projects/{project_id}/api-keys"),
    ("get", "/v1/projects/{project_id}/api-keys"),
    ("delete", "/v1/api-keys/{id}"),
    ("delete", "/v1/projects/{project_id}"),
    ("post", "/v1/members"),
    ("post", "/v1/invitations/{token}/accept"),
    ("get", "/v1/members"),
    ("patch", "/v1/members/{user_id}"),
    ("delete", "/v1/members/{user_id}"),
    ("get", "/v1/audit-log"),
    ("delete", "/v1/workspaces/{workspace_id}"),
    ("post", "/v1/ingest"),
    ("post", "/v1/batch"),
    ("post", "/v1/track"),
    ("post", "/v1/identify"),
    ("post", "/v1/page"),
    ("post", "/v1/screen"),
    ("post", "/v1/group"),
    ("post", "/v1/alias"),
    ("post", "/v1/t"),
    ("post", "/v1/i"),
    ("post", "/v1/p"),
    ("post", "/v1/s"),
    ("post", "/v1/g"),
    ("post", "/v1/a"),
    ("post", "/v1/b"),
    ("post", "/beacon/v1/batch"),
    ("get", "/v1/projects/{write_key}/settings"),
    ("get", "/sourceConfig"),
    ("get", "/v1/analytics/counts"),
    ("get", "/v1/analytics/event-types"),
    ("get", "/v1/analytics/users"),
    ("get", "/v1/analytics/breakdown"),
    ("put", "/v1/projects/{project_id}/dimensions"),
    ("get", "/v1/projects/{project_id}/dimensions"),
    ("post", "/v1/analytics/funnel"),
    ("get", "/v1/events"),
    ("get", "/v1/events/export"),
    ("get", "/v1/events/live"),
    ("post", "/v1/events/live/tickets"),
    ("post", "/v1/deletions"),
    ("get", "/v1/deletions/{id}"),
    ("get", "/v1/deletions"),
    ("get", "/v1/suppressions"),
    ("delete", "/v1/suppressions/{user_id}"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/metrics"),
]
# The document itself, which it does not list among its paths.
SCHEMA_ROUTE = ("get", "/schema/openapi.json")


def template(path: str) -> str:
    """A path with its parameter names erased, so `{id}` and `{key_id}` compare equal."""
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def test_the_app_under_test_runs_the_embedded_profile(api: Api, tenant: Tenant) -> None:
    """The suite's app keeps its data in SQLite inside its own data dir, as `serve` would."""
    assert isinstance(api.resolve(api.container.gateways.store), SqliteStore)
    assert api.settings.sqlite_path == api.data_dir / "eventcore.sqlite3"
    assert api.settings.sqlite_path.is_file()
    assert not api.settings.distributed


def test_liveness(api: Api) -> None:
    """/health/live answers 200 while the process runs."""
    response = api.client.get("/health/live")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readiness_checks_the_database(api: Api) -> None:
    """/health/ready answers 200 and reports the database check as ok."""
    response = api.client.get("/health/ready")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"].get("database") == "ok", body


UNREACHABLE = "connection to server at 10.9.8.7, port 6543 failed: the database does not answer"


class UnreachableStore(SqliteStore):
    """The embedded store whose health probe fails, as a database that stopped answering."""

    async def ping(self) -> None:
        raise ConnectionError(UNREACHABLE)


async def open_unreachable_store(settings: Settings) -> AsyncIterator[SqliteStore]:
    store = await UnreachableStore.open(settings.sqlite_path)
    try:
        yield store
    finally:
        await store.close()


def assert_reveals_nothing_of(body: str, *secrets: str) -> None:
    """An anonymous caller learns each dependency's state, never an address or an error text."""
    for text in ("://", "127.0.0.1", "Error", "refused", "does not answer", *secrets):
        assert text not in body, (text, body)


def test_readiness_names_a_database_that_is_down(make_api: ApiFactory) -> None:
    """/health/ready answers 503 naming the database when its probe fails, saying only that it
    is down (where and why go to the log); liveness stays 200."""
    api = make_api(
        configure=lambda container: container.gateways.store.override(
            providers.Resource(open_unreachable_store, container.settings)
        )
    )

    with capture_logs() as logs:
        response = api.client.get("/health/ready")

    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["checks"] == {"database": "down"}, body
    assert body["error"] == {"code": "unavailable", "message": "Down: database."}
    assert_reveals_nothing_of(response.text, "10.9.8.7", "6543", "ConnectionError")
    (down,) = [entry for entry in logs if entry["event"] == "health.dependency_down"]
    assert down["dependency"] == "database"
    assert down["error"] == f"ConnectionError: {UNREACHABLE}"
    assert api.client.get("/health/live").status_code == 200


def test_readiness_is_degraded_without_revealing_where_redis_is(make_api: ApiFactory) -> None:
    """With Redis unreachable, /health/ready answers 200 `degraded` with `redis` down, and
    neither Redis's address nor the driver's error text."""
    port = free_port()
    api = make_api(env={"EVENTCORE_REDIS_URL": f"redis://127.0.0.1:{port}/0"})

    response = api.client.get("/health/ready")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "redis": "down"},
    }
    assert_reveals_nothing_of(response.text, str(port), "redis://")


def test_metrics_are_prometheus_text_with_ingest_counts(api: Api, tenant: Tenant) -> None:
    """/metrics parses as Prometheus text and counts ingested events by outcome."""
    api.ingest(tenant, {"events": [{"id": "m1", "type": "t"}, {"id": "m2"}]})
    api.ingest(tenant, {"id": "m1", "type": "t"})

    response = api.client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = [
        s
        for family in families.values()
        for s in family.samples
        if s.name == "eventcore_ingest_events_total"
    ]
    outcomes = {s.labels["outcome"]: s.value for s in samples}
    assert outcomes["accepted"] >= 1
    assert outcomes["duplicate"] >= 1
    assert outcomes["rejected"] >= 1
    assert any(
        name.startswith("eventcore_") and name != "eventcore_ingest_events" for name in families
    ), "the request metrics of the middleware are there too"


def test_metrics_grow_with_each_ingest(api: Api, tenant: Tenant) -> None:
    """The accepted-events counter grows by exactly the events accepted."""

    def accepted() -> float:
        text = api.client.get("/metrics").text
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "eventcore_ingest_events_total" and s.labels["outcome"] == "accepted"
        )

    before = accepted()
    api.ingest(tenant, {"events": [{"type": "t"} for _ in range(7)]})

    assert accepted() == before + 7


@pytest.fixture
def openapi(api: Api) -> dict[str, Any]:
    response = api.client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def test_the_openapi_document_is_valid(openapi: dict[str, Any]) -> None:
    """/schema/openapi.json is a valid OpenAPI 3 document."""
    assert openapi["openapi"].startswith("3.")
    validate(openapi)


@pytest.mark.parametrize(("method", "path"), CONTRACT_ROUTES, ids=lambda v: str(v))
def test_every_contract_route_is_documented(
    openapi: dict[str, Any], method: str, path: str
) -> None:
    """Each route of the public contract is in the OpenAPI document with its method."""
    paths = {template(p): operations for p, operations in openapi["paths"].items()}
    assert template(path) in paths, sorted(openapi["paths"])
    assert method in paths[template(path)], paths[template(path)].keys()


def test_every_429_and_503_documents_retry_after(openapi: dict[str, Any]) -> None:
    """Each operation's 429 and 503 answers state the `Retry-After` header they carry."""
    documented = 0
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for status in ("429", "503"):
                response = operation.get("responses", {}).get(status)
                if response is None:
                    continue
                documented += 1
                header = response.get("headers", {}).get("Retry-After")
                assert header is not None, (method, path, status)
                assert header["required"] is True
                assert header["schema"] == {"type": "integer", "minimum": 1}
    assert documented > 40


def test_the_route_list_matches_the_readme() -> None:
    """The routes tested above are the ones the README's API table lists (a new row needs a test)."""
    text = README.read_text()
    documented = {
        (method.lower(), template(path.split("?")[0]))
        for method, path in re.findall(r"`(GET|POST|DELETE|PUT|PATCH) (/[^` ]*)", text)
    }
    assert documented == {(m, template(p)) for m, p in [*CONTRACT_ROUTES, SCHEMA_ROUTE]}


def test_an_unknown_route_is_not_found(api: Api) -> None:
    """A path no route serves answers 404 in the JSON error shape."""
    assert_error(api.client.get("/v1/nothing-here"), 404)
    assert_error(api.client.post("/v2/ingest", json={}), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/v1/projects"),
        ("get", "/v1/ingest"),
        ("delete", "/v1/events"),
        ("get", "/v1/auth/signup"),
        ("post", "/health/live"),
    ],
)
def test_a_wrong_method_is_not_allowed(api: Api, method: str, path: str) -> None:
    """A known path called with a method it does not serve answers 405 in the JSON error shape."""
    response = api.client.request(method.upper(), path)
    assert_error(response, 405)


def test_an_unsupported_body_type_is_a_client_error(api: Api) -> None:
    """A sign-up sent as a form instead of JSON is refused with a 4xx in the JSON error shape."""
    response = api.client.post(
        "/v1/auth/signup", content=b"email=a", headers={"Content-Type": "text/plain"}
    )
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
