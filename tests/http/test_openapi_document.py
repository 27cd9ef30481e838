"""The OpenAPI document says what the server does: the credentials each route takes, every
parameter's bounds, the `Content-Encoding` of an ingest body, and the codes of each error answer.

Each test reads the document and holds it to the code's own constants, or sends what the document
declares and checks that the server answers as it says, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from jsonschema import Draft202012Validator

from eventcore.aggregation import Granularity
from eventcore.cursors import CURSOR_PATTERN
from eventcore.defaults import DEFAULT_PAGE, MAX_BUCKETS, MAX_PAGE
from eventcore.entrypoints.http.body import GZIP, IDENTITY
from eventcore.entrypoints.http.errors import _HTTP_CODES, STATUS
from eventcore.entrypoints.http.segment.protocol import (
    _REQUIRED_IDS,
    MESSAGE_TYPES,
    SHORT_PATHS,
    _snake,
)
from eventcore.errors import EventcoreError
from eventcore.suppressions import SUPPRESSED
from tests.http.support import Api, Tenant, embedded_app
from tests.segment.support import batch, message

ROOT = Path(__file__).resolve().parents[2]
BATCH_PATHS = ["/v1/batch", "/v1/b", "/beacon/v1/batch"]
SEGMENT_PATHS = [
    *BATCH_PATHS,
    *(f"/v1/{kind}" for kind in MESSAGE_TYPES),
    *(f"/v1/{short}" for short in SHORT_PATHS),
]
INGEST_PATHS = ["/v1/ingest", *SEGMENT_PATHS]
# The browser SDKs' configuration: a write key checked, refusals in the protocol's shape.
CONFIG_PATHS = ["/v1/projects/{write_key}/settings", "/sourceConfig"]


def _document() -> dict[str, Any]:
    app, _, _ = embedded_app(Path(tempfile.gettempdir()) / "eventcore-openapi-never-started")
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


DOCUMENT = _document()


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def operation(path: str, method: str = "post") -> dict[str, Any]:
    found: dict[str, Any] = DOCUMENT["paths"][path][method]
    return found


def parameter(path: str, name: str, method: str = "get") -> dict[str, Any]:
    (found,) = [p for p in operation(path, method)["parameters"] if p["name"] == name]
    return dict(found)


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of a parameter's schema, formats included."""
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


# --- credentials -------------------------------------------------------------------------------


def credential(name: str, key: str) -> dict[str, str]:
    """The headers that carry ``key`` as the security scheme ``name`` says."""
    scheme = DOCUMENT["components"]["securitySchemes"][name]
    if scheme["type"] == "apiKey":
        assert scheme["in"] == "header", scheme
        return {scheme["name"]: key}
    assert scheme["type"] == "http", scheme
    if scheme["scheme"] == "bearer":
        return {"Authorization": f"Bearer {key}"}
    assert scheme["scheme"] == "basic", scheme
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def alternatives(path: str) -> list[str]:
    """The operation's security requirements, each one scheme ('' for the empty one)."""
    names = []
    for requirement in operation(path)["security"]:
        assert len(requirement) <= 1, f"{path}: {requirement} is one requirement of two schemes"
        names.extend(requirement or [""])
    return names


def segment_body(path: str, **fields: Any) -> dict[str, Any]:
    if path in BATCH_PATHS:
        return batch(message(), **fields)
    kind = path.removeprefix("/v1/")
    return message(SHORT_PATHS.get(kind, kind), **fields)


def test_the_segment_routes_declare_every_way_the_write_key_comes() -> None:
    """A header of its own, Basic, bearer, the native header, and the body (the empty one)."""
    for path in SEGMENT_PATHS:
        assert sorted(alternatives(path)) == sorted(
            ["WriteKey", "WriteKeyBasic", "ApiKeyBearer", "ApiKey", ""]
        ), path
    assert sorted(alternatives("/v1/ingest")) == ["ApiKey", "ApiKeyBearer"]


@pytest.mark.parametrize("path", SEGMENT_PATHS)
def test_each_declared_write_key_form_is_accepted(api: Api, tenant: Tenant, path: str) -> None:
    """The key sent as each requirement says is taken; the empty one is the body's `writeKey`."""
    for name in alternatives(path):
        if name:
            response = api.client.post(
                path, json=segment_body(path), headers=credential(name, tenant.api_key)
            )
        else:
            response = api.client.post(path, json=segment_body(path, writeKey=tenant.api_key))
        assert response.status_code == 200, (name, response.text)


@pytest.mark.parametrize("path", SEGMENT_PATHS)
def test_without_any_declared_form_the_answer_is_401(api: Api, path: str) -> None:
    """The empty requirement is the key in the body, not a route open to anyone."""
    response = api.client.post(path, json=segment_body(path))
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"


def test_the_ingest_route_takes_exactly_the_forms_it_declares(api: Api, tenant: Tenant) -> None:
    """Each declared scheme is taken on /v1/ingest; the others (the Segment ones) are not."""
    declared = set(alternatives("/v1/ingest"))
    for name in DOCUMENT["components"]["securitySchemes"]:
        if name == "AccessToken":
            continue
        response = api.client.post(
            "/v1/ingest", json={"type": "t"}, headers=credential(name, tenant.api_key)
        )
        assert response.status_code == (202 if name in declared else 401), (name, response.text)


def test_every_requirement_names_a_declared_scheme() -> None:
    schemes = set(DOCUMENT["components"]["securitySchemes"])
    for method, path, definition in operations():
        for requirement in definition.get("security", []):
            assert set(requirement) <= schemes, (method, path, requirement)


# --- parameters --------------------------------------------------------------------------------


def refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code, response.text


def test_the_page_size_is_documented_as_the_use_case_bounds_it(api: Api, tenant: Tenant) -> None:
    """`limit` is 1 to MAX_PAGE, by default DEFAULT_PAGE; just outside, 400 `invalid_query`."""
    schema = parameter("/v1/events", "limit")["schema"]
    assert (schema["minimum"], schema["maximum"], schema["default"]) == (1, MAX_PAGE, DEFAULT_PAGE)
    for limit in (schema["minimum"], schema["maximum"]):
        assert api.events(tenant.owner, tenant.project_id, limit=limit).status_code == 200
    for limit in (schema["minimum"] - 1, schema["maximum"] + 1):
        refused(api.events(tenant.owner, tenant.project_id, limit=limit), "invalid_query")


def test_the_cursor_is_documented_as_the_codec_makes_it(api: Api, tenant: Tenant) -> None:
    """A real cursor matches the pattern and so does empty (the first page); a text of the right
    shape that is no cursor is still refused, as the description says."""
    schema = parameter("/v1/events", "cursor")["schema"]
    assert schema["pattern"] == f"^(?:{CURSOR_PATTERN})?$"
    assert api.ingest(tenant, {"events": [{"type": "a"}, {"type": "b"}]}).status_code == 202
    page = api.events(tenant.owner, tenant.project_id, limit=1).json()
    assert validator(schema).is_valid(page["next_cursor"])
    assert validator(schema).is_valid("")
    first = api.events(tenant.owner, tenant.project_id, limit=1, cursor="")
    assert first.status_code == 200
    assert first.json() == page
    forged = "A" * len(page["next_cursor"])
    assert validator(schema).is_valid(forged)
    refused(api.events(tenant.owner, tenant.project_id, cursor=forged), "invalid_cursor")
    refused(api.events(tenant.owner, tenant.project_id, cursor=forged[1:]), "invalid_cursor")


WINDOWED = ["/v1/analytics/counts", "/v1/analytics/event-types"]


@pytest.mark.parametrize("path", WINDOWED)
def test_the_window_bounds_are_rfc_3339_times(api: Api, tenant: Tenant, path: str) -> None:
    """`start` and `end` are date-times (with an offset); what the format refuses, the server
    refuses with `invalid_query`, and the window's bucket limit is the one it applies."""
    now = datetime.now(UTC)
    for name in ("start", "end"):
        schema = parameter(path, name)["schema"]
        assert schema["format"] == "date-time"
        for text in ("yesterday", "2026-01-31T12:00:00", "2026-01-31"):
            assert not validator(schema).is_valid(text)
            refused(get(api, tenant, path, {name: text}), "invalid_query")
    start, end = (now - timedelta(hours=2)).isoformat(), now.isoformat()
    assert validator(parameter(path, "start")["schema"]).is_valid(start)
    assert get(api, tenant, path, {"start": start, "end": end}).status_code == 200
    assert (
        f"at most {MAX_BUCKETS} buckets (400 `window_too_large`)"
        in (parameter(path, "start")["description"])
    )
    too_wide = (now - timedelta(hours=MAX_BUCKETS + 2)).isoformat()
    refused(get(api, tenant, path, {"start": too_wide, "end": end}), "window_too_large")


def get(api: Api, tenant: Tenant, path: str, params: dict[str, Any]) -> httpx.Response:
    return api.client.get(
        path, params={"project_id": tenant.project_id, **params}, headers=tenant.headers
    )


def test_granularity_is_the_enum_of_the_core(api: Api, tenant: Tenant) -> None:
    schema = parameter("/v1/analytics/counts", "granularity")["schema"]
    name = schema["$ref"].rpartition("/")[2]
    values = DOCUMENT["components"]["schemas"][name]["enum"]
    assert values == [g.value for g in Granularity]
    for value in values:
        assert api.counts(tenant.owner, tenant.project_id, granularity=value).status_code == 200
    refused(api.counts(tenant.owner, tenant.project_id, granularity="week"), "invalid_request")


def test_no_text_parameter_admits_what_the_edge_refuses() -> None:
    """Every query and path parameter refuses NUL, as `refuse_unusable_parameters` does (its
    answers are tested in test_unstorable_parameters)."""
    checked = 0
    for method, path, definition in operations():
        for found in definition.get("parameters", []):
            if found["in"] not in ("query", "path") or "$ref" in found["schema"]:
                continue
            if not validator(found["schema"]).is_valid("x"):
                continue  # not text (an integer), or text of a shape of its own (a cursor)
            checked += 1
            assert not validator(found["schema"]).is_valid("x\x00y"), (method, path, found)
    assert checked >= 10


# --- Content-Encoding --------------------------------------------------------------------------


def test_every_ingest_route_and_only_those_declare_the_content_encoding() -> None:
    """The routes that read their body raw (`body.read_body`) declare the header, with the
    codings `read_body` takes, and the 415 it answers for any other."""
    declaring = set()
    for method, path, definition in operations():
        headers = [p for p in definition.get("parameters", []) if p["in"] == "header"]
        encoding = [p for p in headers if p["name"].lower() == "content-encoding"]
        if not encoding:
            assert "415" not in definition["responses"], (method, path)
            continue
        declaring.add(path)
        (header,) = encoding
        assert header["required"] is False
        assert header["schema"]["enum"] == [*GZIP, *IDENTITY]
        assert "unsupported_encoding" in codes(definition, "415"), (method, path)
    assert declaring == set(INGEST_PATHS)


def encoded(body: dict[str, Any], coding: str) -> bytes:
    data = json.dumps(body).encode()
    return gzip.compress(data) if coding.lower() in GZIP else data


@pytest.mark.parametrize("path", ["/v1/ingest", "/v1/batch", "/v1/track"])
def test_the_declared_codings_are_read_and_no_other(api: Api, tenant: Tenant, path: str) -> None:
    """Each coding of the enum is read, in any case, as the description says; another is a 415."""
    body = segment_body(path) if path in SEGMENT_PATHS else {"type": "t"}
    ok = 202 if path == "/v1/ingest" else 200
    (header,) = [p for p in operation(path)["parameters"] if p["name"] == "Content-Encoding"]
    assert "in any case" in header["description"]
    for coding in header["schema"]["enum"]:
        for sent in (coding, coding.upper()):
            response = api.client.post(
                path,
                content=encoded(body, sent),
                headers={"Content-Encoding": sent, **tenant.key_headers},
            )
            assert response.status_code == ok, (sent, response.text)
    for sent in ("br", "deflate", "gzip, gzip"):
        response = api.client.post(
            path,
            content=encoded(body, ""),
            headers={"Content-Encoding": sent, **tenant.key_headers},
        )
        assert response.status_code == 415, (sent, response.text)
        error = response.json()["error"] if path == "/v1/ingest" else response.json()
        assert error["code"] == "unsupported_encoding"


# --- error codes -------------------------------------------------------------------------------

_NAMED = re.compile(r"Codes: ((?:`[a-z][a-z0-9_]*`(?:, )?)+)\.")
_REJECTED = re.compile(r"`rejected` lists .*?: ((?:`[a-z][a-z0-9_]*`(?:, )?)+)\.")


def codes(definition: dict[str, Any], status: str) -> list[str]:
    """The codes the operation's answer of ``status`` names in its description."""
    response = definition["responses"].get(status, {})
    found = _NAMED.search(response.get("description", ""))
    return re.findall(r"`([a-z0-9_]+)`", found.group(1)) if found else []


def rejection_codes(definition: dict[str, Any]) -> list[str]:
    """The codes of `rejected` the operation's success answer names."""
    (success,) = [s for s in definition["responses"] if s.startswith("2")]
    found = _REJECTED.search(definition["responses"][success]["description"])
    return re.findall(r"`([a-z0-9_]+)`", found.group(1)) if found else []


def named_codes() -> dict[str, set[str]]:
    """Every code an error answer of the document names, with the statuses it is named for."""
    named: dict[str, set[str]] = {}
    for _, _, definition in operations():
        for status in definition["responses"]:
            for code in codes(definition, status):
                named.setdefault(code, set()).add(status)
    return named


# Codes passed to an error (`code="..."`, a class's `code = "..."`, an answer's `"code": ...`),
# and the codes of an event or message refused alone (`return "code", "message"`).
_RAISED = re.compile(r'\bcode\s*=\s*"([a-z][a-z0-9_]*)"|"code":\s*"([a-z][a-z0-9_]*)"')
_REFUSED_ALONE = re.compile(r'(?:return|=)\s*\(?\s*"([a-z][a-z0-9_]*)",\s*f?"[A-Z`{]')
# Codes in the source that no HTTP answer carries, and why.
NEVER_ANSWERED = {
    "error": "the base class's, never raised itself",
    "conflict": "the base class's: each conflict raised has a code of its own",
    "cache_unavailable": "readiness reports the cache as `down`; every other use fails open",
}
# Files whose codes no HTTP answer carries: the queue's own messages, read by the workers.
NOT_HTTP = {"src/adapters/rabbitmq/_message.py"}


def source_codes(pattern: re.Pattern[str]) -> dict[str, set[str]]:
    """The codes ``pattern`` finds in the source, with the files that hold them."""
    found: dict[str, set[str]] = {}
    for file in sorted((ROOT / "src").rglob("*.py")):
        where = str(file.relative_to(ROOT))
        if where in NOT_HTTP:
            continue
        for match in pattern.finditer(file.read_text()):
            code = next(group for group in match.groups() if group)
            if code not in NEVER_ANSWERED:
                found.setdefault(code, set()).add(where)
    return found


def refused_alone() -> dict[str, set[str]]:
    """The codes of an event or a message refused alone, with the files that hold them."""
    alone = source_codes(_REFUSED_ALONE)
    # Named from the field a group or alias message lacks (`missing_group_id`).
    for field in _REQUIRED_IDS.values():
        alone[f"missing_{_snake(field)}"] = {"src/entrypoints/http/segment/protocol.py"}
    # A valid event of a suppressed person, refused by the ingestor (its code is a constant).
    alone[SUPPRESSED] = {"src/eventcore/suppressions.py"}
    return alone


def test_every_error_code_the_source_raises_is_named_by_an_operation() -> None:
    """A code added to the source must be named in the error answers of the routes that meet
    it (their `api_errors(...)` groups, or the Segment routes' `error_responses`)."""
    named = named_codes()
    missing = {code: files for code, files in source_codes(_RAISED).items() if code not in named}
    assert not missing, f"raised but named by no operation's error answers: {missing}"


def test_every_code_of_an_event_refused_alone_is_named_by_the_ingest_routes() -> None:
    """`rejected` codes: the core's on every ingest route, the protocol's too on the Segment ones."""
    alone = refused_alone()
    core = {
        code
        for code, files in alone.items()
        if files & {"src/eventcore/events.py", "src/eventcore/suppressions.py"}
    }
    for path in INGEST_PATHS:
        expected = set(alone) if path in SEGMENT_PATHS else core
        assert set(rejection_codes(operation(path))) == expected, path


def test_every_code_named_is_one_the_server_answers() -> None:
    """No description names a code that nothing raises (a typo, a code since removed)."""
    alone = set(refused_alone())
    # A whole /v1/<type> request is refused with a message's code (`duplicate_key`).
    known = set(source_codes(_RAISED)) | set(_HTTP_CODES.values()) | alone
    for code in named_codes():
        assert code in known, code
    for path in INGEST_PATHS:
        assert set(rejection_codes(operation(path))) <= alone, path


def _error_classes(kind: type[EventcoreError]) -> Iterator[type[EventcoreError]]:
    for sub in kind.__subclasses__():
        yield sub
        yield from _error_classes(sub)


def test_a_class_code_is_named_under_the_status_its_class_answers() -> None:
    """`last_owner` under 409, `queue_full` under 503, ...: the status of `errors.STATUS`."""
    named = named_codes()
    for kind in _error_classes(EventcoreError):
        status = next(STATUS[k] for k in kind.__mro__ if k in STATUS)
        if kind.code in named:
            assert named[kind.code] == {str(status)}, kind
    for status, code in _HTTP_CODES.items():
        if code in named:
            assert str(status) in named[code], code


def test_every_api_error_answer_has_the_error_body() -> None:
    """Each 4xx and 5xx of an operation is documented with a JSON body of the error shape."""
    for method, path, definition in operations():
        for status, response in definition["responses"].items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                segment = path in SEGMENT_PATHS or path in CONFIG_PATHS
                shape = "SegmentError" if segment else "ErrorBody"
                if path == "/health/ready" and status == "503":
                    shape = "Health"
                assert schema == {"$ref": f"#/components/schemas/{shape}"}, (method, path)


class Call(NamedTuple):
    """A request sent for real, the operation it calls and the code it is answered."""

    method: str
    path: str
    code: str
    template: str = ""
    params: dict[str, str] = {}
    body: Any = None
    # Whose credentials: the tenant's (its token, or its key on an ingest route), none, or bad.
    auth: str = "tenant"
    headers: dict[str, str] = {}

    @property
    def label(self) -> str:
        return f"{self.method} {self.path} {self.code}"


ANSWERS = [
    Call("GET", "/v1/events", "invalid_query", params={"limit": "0"}),
    Call("GET", "/v1/events", "invalid_request", params={"limit": "ten"}),
    Call("GET", "/v1/events", "invalid_cursor", params={"cursor": "nope"}),
    Call(
        "GET",
        "/v1/analytics/counts",
        "window_too_large",
        params={"start": "2020-01-01T00:00:00Z", "granularity": "minute"},
    ),
    Call("GET", "/v1/analytics/event-types", "not_found", params={"project_id": "nope"}),
    Call("GET", "/v1/projects", "unauthorized", auth="none"),
    Call("GET", "/v1/projects", "invalid_token", auth="bad"),
    Call("GET", "/health/live?a=1&a=2", "invalid_query", "/health/live", auth="none"),
    Call("DELETE", "/v1/projects/nope", "not_found", "/v1/projects/{project_id}"),
    Call("DELETE", "/v1/projects/a%00b", "invalid_path", "/v1/projects/{project_id}"),
    Call("POST", "/v1/projects", "invalid_name", body={"name": "  "}),
    Call(
        "POST",
        "/v1/auth/signup",
        "weak_password",
        body={"email": "a@example.com", "password": "short", "workspace": "w"},
        auth="none",
    ),
    Call(
        "POST",
        "/v1/auth/login",
        "invalid_credentials",
        body={"email": "nobody@example.com", "password": "x"},
        auth="none",
    ),
    Call("POST", "/v1/ingest", "unauthorized", body={"type": "t"}, auth="none"),
    Call("POST", "/v1/ingest", "invalid_api_key", body={"type": "t"}, auth="bad"),
    Call("POST", "/v1/ingest", "invalid_body", body={"events": []}),
    Call("POST", "/v1/ingest", "invalid_events", body={"type": " "}),
    Call("POST", "/v1/ingest", "malformed_body", body={}, headers={"Content-Encoding": "gzip"}),
    Call("POST", "/v1/batch", "invalid_body", body={"batch": []}),
    Call("POST", "/v1/batch", "invalid_sent_at", body={"batch": [{}], "sentAt": "now"}),
    Call("POST", "/v1/batch", "invalid_api_key", body={"batch": [{}], "writeKey": 1}, auth="none"),
    Call("POST", "/v1/track", "type_mismatch", body={"type": "page"}),
    Call("POST", "/v1/track", "invalid_events", body={"userId": "u"}),
]


def send(api: Api, tenant: Tenant, call: Call) -> httpx.Response:
    """The call, on the tenant's project where it takes one."""
    ingesting = call.path in INGEST_PATHS
    headers = {
        "tenant": tenant.key_headers if ingesting else tenant.headers,
        "none": {},
        "bad": credential("ApiKey" if ingesting else "AccessToken", "bad"),
    }[call.auth]
    params = dict(call.params)
    if call.path.startswith("/v1/analytics/") or call.path == "/v1/events":
        params.setdefault("project_id", tenant.project_id)
    return api.client.request(
        call.method,
        call.path,
        params=params or None,
        content=None if call.body is None else json.dumps(call.body).encode(),
        headers={"Content-Type": "application/json", **headers, **call.headers},
    )


@pytest.mark.parametrize("call", ANSWERS, ids=[call.label for call in ANSWERS])
def test_an_answer_s_code_is_named_for_its_status(api: Api, tenant: Tenant, call: Call) -> None:
    """Sent for real, each answer carries a code its operation names for that status."""
    response = send(api, tenant, call)
    body = response.json()
    error = body.get("error", body)
    assert error["code"] == call.code, (response.status_code, body)
    named = codes(
        operation(call.template or call.path, call.method.lower()), str(response.status_code)
    )
    assert call.code in named, (response.status_code, named)
