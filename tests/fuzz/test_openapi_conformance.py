"""schemathesis over the app's own OpenAPI document: no 5xx, every answer as documented.

The app runs in process (ASGI) on the embedded profile. Before the run, a workspace with two
projects, API keys and events is created (and a second workspace beside it), so that generated
path and query parameters hit real ids of the caller's workspace and of the other one, not only
random strings. Every operation is called with valid credentials for its security scheme.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response
from schemathesis.generation.meta import ParameterLocation
from schemathesis.python import asgi
from schemathesis.specs.openapi import checks

from tests.fuzz.conftest import embedded_app, start_api
from tests.http.support import Tenant

pytestmark = pytest.mark.fuzz

# Bounded so that the whole run stays within a few minutes on a 2-core machine.
MAX_EXAMPLES = 100


@dataclass
class World:
    """What exists before the run: credentials and the ids parameters are drawn from."""

    access_token: str
    api_key: str
    project_ids: list[str]
    key_ids: list[str]
    data_dir: Path


def _seed(data_dir: Path) -> World:
    """Create the tenants and data over HTTP on a first app, then stop it."""
    api = start_api(data_dir)
    try:
        owner = api.signup(workspace="Fuzzed")
        website = api.create_project(owner, "Website")
        ingest_key = api.create_key(owner, website, "ingest")
        app_project = api.create_project(owner, "App")
        # Keys the run may revoke; the key it ingests with is not among them.
        spare_keys = [api.create_key(owner, app_project, f"spare {i}")["id"] for i in range(3)]
        other = api.tenant("Other")
        start = datetime.now(UTC) - timedelta(hours=30)
        tenant = Tenant(owner, website, ingest_key["id"], ingest_key["key"])
        events = [
            {
                "id": f"seed-{i}",
                "type": ["click", "view", "buy"][i % 3],
                "timestamp": (start + timedelta(minutes=37 * i)).isoformat(),
                "properties": {"n": i},
            }
            for i in range(60)
        ]
        assert api.ingest(tenant, {"events": events}).status_code == 202
        assert api.ingest(other, {"type": "click"}).status_code == 202
    finally:
        api.stop()
    return World(
        access_token=owner.token,
        api_key=ingest_key["key"],
        project_ids=[website, app_project, other.project_id],
        key_ids=[*spare_keys, other.key_id],
        data_dir=data_dir,
    )


# Ids of the seeded data that generated parameters are drawn from, filled in by `world`.
REAL_IDS: dict[str, list[str]] = {}


def _document() -> dict[str, Any]:
    """The app's own OpenAPI document; building it starts nothing and touches no disk."""
    app, _, _ = embedded_app(Path(tempfile.gettempdir()) / "eventcore-fuzz-never-started")
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


schema = schemathesis.openapi.from_dict(_document())
# A body over the route's size bound is refused (413) before it is read: a rejection of invalid
# data too (the bound is the README's, and a route's largest valid body fits under it).
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses,
    "413",
]


@schema.hook("flatmap_path_parameters")
def real_ids(context: Any, path_parameters: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """Most path ids are real ones (the caller's or another workspace's), some generated."""
    strategy: st.SearchStrategy[Any] = st.just(path_parameters)
    for name in ("project_id", "key_id"):
        pool = REAL_IDS.get(name)
        if pool and path_parameters and name in path_parameters:
            real = st.sampled_from(pool).map(lambda v, n=name: {**path_parameters, n: v})
            strategy = real | strategy
    return strategy


@schema.hook("flatmap_query")
def real_projects(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """Analytics queries mostly name a real project, so that answers carry data."""
    pool = REAL_IDS.get("project_id")
    if not pool or not query or "project_id" not in query:
        return st.just(query)
    return st.sampled_from(pool).map(lambda v: {**query, "project_id": v}) | st.just(query)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The seeded data dir, and the ids that generated parameters are drawn from."""
    world = _seed(tmp_path_factory.mktemp("fuzz") / "eventcore-data")
    REAL_IDS.update(project_id=world.project_ids, key_id=world.key_ids)
    yield world
    REAL_IDS.clear()


@pytest.fixture
def app(world: World) -> Iterator[Any]:
    """A fresh app on the seeded data, as after a restart, that the cases are sent to.

    One per test: schemathesis starts an app's lifespan on its first call and ends it when the
    test ends, and an app is started only once in its life, as a server does.
    """
    served, _, _ = embedded_app(world.data_dir)
    yield served
    asgi.shutdown_lifespans()


def test_the_fuzzed_document_is_the_one_served(app: Any) -> None:
    """The document the cases come from is the one /schema/openapi.json serves."""
    with asgi.get_client(app) as client:
        served = client.get("/schema/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(schema.raw_schema))


ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
ERROR_STATUSES = ["400", "401", "403", "404", "409", "413", "429", "503"]
# Routes that speak another protocol's error shape on purpose (the Segment-compatible ones).
OWN_PROTOCOL_TAGS = {"segment"}


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema.raw_schema["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_api_operation_documents_its_errors() -> None:
    """Each /v1 operation documents 400-503 with the JSON error body, so clients can rely on it."""
    native = [
        (method, path, operation)
        for method, path, operation in _operations()
        if path.startswith("/v1/") and not OWN_PROTOCOL_TAGS & set(operation.get("tags", []))
    ]
    assert len(native) >= 12
    for method, path, operation in native:
        for status in ERROR_STATUSES:
            documented = operation["responses"].get(status)
            assert documented, f"{method.upper()} {path} does not document {status}"
            assert documented["content"]["application/json"]["schema"] == ERROR_BODY


def credentials(case: Case, world: World) -> dict[str, str]:
    """Valid credentials for the operation's security scheme (none for public operations)."""
    security = _definition(case).get("security") or []
    schemes = {name for requirement in security for name in requirement}
    if "AccessToken" in schemes:
        return {"Authorization": f"Bearer {world.access_token}"}
    if "ApiKey" in schemes:
        return {"X-API-Key": world.api_key}
    if "ApiKeyBearer" in schemes:
        return {"Authorization": f"Bearer {world.api_key}"}
    return {}


def _negative_headers(case: Case) -> bool:
    meta = case.meta
    if meta is None:
        return False
    header = meta.components.get(ParameterLocation.HEADER)
    return header is not None and header.mode.is_negative


def _definition(case: Case) -> dict[str, Any]:
    operation = case.operation
    definition: dict[str, Any] = schema.raw_schema["paths"][operation.path][operation.method]
    return definition


def error_shape(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every error answer is JSON `{"error": {"code": snake_case, "message": text}}`."""
    if response.status_code < 400:
        return None
    documented = _definition(case)["responses"].get(str(response.status_code), {})
    body_schema = documented.get("content", {}).get("application/json", {}).get("schema")
    if body_schema is not None and body_schema != ERROR_BODY:
        # An error shape of another protocol: the schema conformance check holds it to it.
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"error as {content_type!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str), body
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), body
    assert isinstance(error.get("message"), str), body
    assert error["message"].strip(), body
    return True


# Rules JSON Schema cannot state (a window of at most so many buckets, a timestamp at most 24 h
# ahead, an email already taken) make some schema-valid requests 4xx, so "valid data must be
# accepted" is not checked. Litestar's automatic OPTIONS answer lists only the methods of the
# first handler registered on a path (`Allow: OPTIONS, POST` on /v1/projects, which serves GET
# too), a Litestar bug outside the documented operations, so `Allow` is not checked either.
NOT_CHECKED = [checks.positive_data_acceptance, checks.allow_header_conformance]
# Ingest answers 202 for a batch with some invalid events (rejected one by one, as documented),
# and the Segment routes are lenient as that protocol's SDKs expect: for both, "invalid data
# must be refused" does not hold by design.
PER_EVENT_REJECTION_TAGS = {"ingest", "segment"}
# The live view's Server-Sent Events stream (see the test).
LIVE_STREAM = ("GET", "/v1/events/live")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: Case, world: World, app: Any) -> None:
    """Any request schemathesis makes gets a documented status, body and error shape, never a 5xx."""
    not_checked = list(NOT_CHECKED)
    if PER_EVENT_REJECTION_TAGS & set(_definition(case).get("tags", [])):
        not_checked.append(checks.negative_data_rejection)
    headers = credentials(case, world)
    if (case.operation.method.upper(), case.operation.path) == LIVE_STREAM:
        # A stream the credentials would open never ends: the route is fuzzed without them,
        # every answer a refusal (tests/http/test_live.py opens real streams).
        headers = {}
    if headers and _negative_headers(case):
        # The case's mutation was (or included) the credentials' header, which the test puts
        # back as valid: the request is no longer the negative one schemathesis made.
        not_checked.append(checks.negative_data_rejection)
    # Where the checks send their own probes too (the same call without credentials, say).
    case.operation.schema.app = app
    case.call_and_validate(
        headers=headers,
        app=app,
        additional_checks=[error_shape],
        excluded_checks=not_checked,
    )
