"""The console over HTTP: its session cookie and CSRF rule, its page, files and headers."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventcore.adapters.security import JwtCodec
from eventcore.entrypoints.http.console import CONSOLE_DIR
from eventcore.entrypoints.settings import jwt_secret
from eventcore.tenancy import Principal, Role
from tests.http.support import PASSWORD, Account, Api, Tenant, assert_error, bearer

VENDOR = CONSOLE_DIR / "vendor"


def sign_in(api: Api, account: Account, **extra: Any) -> httpx.Response:
    """The console's login: the session cookies land in the test client's jar."""
    response = api.client.post(
        "/v1/auth/session", json={"email": account.email, "password": PASSWORD, **extra}
    )
    assert response.status_code == 200, response.text
    return response


def csrf(api: Api) -> dict[str, str]:
    return {"X-CSRF-Token": api.client.cookies["eventcore_csrf"]}


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header of the answer, by cookie name."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


def project_names(api: Api, account: Account) -> list[str]:
    listed = api.client.get("/v1/projects", headers=account.headers)
    return [p["name"] for p in listed.json()["projects"]]


# --- the session --------------------------------------------------------------------------


def test_signing_in_sets_an_httponly_strict_session_cookie_and_a_readable_csrf_one(
    api: Api, tenant: Tenant
) -> None:
    """The token goes in an HttpOnly, SameSite=Strict cookie for the whole site (not Secure over
    plain HTTP); the CSRF value, readable by script, is not the token."""
    answer = sign_in(api, tenant.owner)
    body = answer.json()
    assert body["user_id"] == tenant.owner.user_id
    assert body["workspace_id"] == tenant.owner.workspace_id
    assert body["role"] == "owner"
    assert body["workspaces"] == [
        {"workspace_id": tenant.owner.workspace_id, "name": "Acme", "role": "owner"}
    ]
    assert "access_token" not in answer.text
    cookies = set_cookies(answer)
    session, token_csrf = cookies["eventcore_session"], cookies["eventcore_csrf"]
    for line in (session, token_csrf):
        assert "Path=/" in line
        assert "SameSite=strict" in line
        assert "Secure" not in line
        assert re.search(r"Max-Age=\d+", line)
    assert "HttpOnly" in session
    assert "HttpOnly" not in token_csrf
    token = api.client.cookies["eventcore_session"]
    assert api.client.cookies["eventcore_csrf"] not in token
    assert answer.headers["cache-control"] == "no-store"


def test_over_https_the_session_cookies_are_secure(api: Api, tenant: Tenant) -> None:
    api.client.base_url = httpx.URL("https://testserver")
    cookies = set_cookies(sign_in(api, tenant.owner))
    assert "; Secure" in cookies["eventcore_session"]
    assert "; Secure" in cookies["eventcore_csrf"]


def test_the_cookie_reads_without_csrf(api: Api, tenant: Tenant) -> None:
    """A GET signed in by the cookie needs no CSRF value."""
    sign_in(api, tenant.owner)
    listed = api.client.get("/v1/projects")
    assert listed.status_code == 200, listed.text
    assert [p["id"] for p in listed.json()["projects"]] == [tenant.project_id]
    me = api.client.get("/v1/auth/session")
    assert me.status_code == 200
    assert me.json()["user_id"] == tenant.owner.user_id


@pytest.mark.parametrize(
    "header",
    [{}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": "not-the-value"}],
    ids=["missing", "empty", "wrong"],
)
def test_a_change_signed_in_by_the_cookie_without_its_csrf_value_is_refused(
    api: Api, tenant: Tenant, header: dict[str, str]
) -> None:
    """403 csrf_failed, and nothing is created."""
    sign_in(api, tenant.owner)
    refused = api.client.post("/v1/projects", json={"name": "Forged"}, headers=header)
    assert_error(refused, 403, "csrf_failed")
    assert project_names(api, tenant.owner) == ["Website"]
    deleted = api.client.delete(f"/v1/api-keys/{tenant.key_id}", headers=header)
    assert_error(deleted, 403, "csrf_failed")
    assert api.ingest(tenant, {"type": "still_works"}).status_code == 202


def test_a_change_signed_in_by_the_cookie_with_its_csrf_value_is_done(
    api: Api, tenant: Tenant
) -> None:
    sign_in(api, tenant.owner)
    created = api.client.post("/v1/projects", json={"name": "Console"}, headers=csrf(api))
    assert created.status_code == 201, created.text
    assert sorted(project_names(api, tenant.owner)) == ["Console", "Website"]


def test_the_csrf_value_of_another_session_is_refused(api: Api, tenant: Tenant) -> None:
    """The value is bound to the session's token: one user's cannot be sent with another's."""
    other = api.signup(workspace="Other")
    sign_in(api, other)
    foreign = api.client.cookies["eventcore_csrf"]
    api.client.cookies.clear()
    sign_in(api, tenant.owner)
    refused = api.client.post(
        "/v1/projects", json={"name": "Forged"}, headers={"X-CSRF-Token": foreign}
    )
    assert_error(refused, 403, "csrf_failed")


def test_bearer_requests_need_no_csrf_value(api: Api, tenant: Tenant) -> None:
    created = api.client.post("/v1/projects", json={"name": "Bearer"}, headers=tenant.headers)
    assert created.status_code == 201, created.text


def test_an_authorization_header_is_never_replaced_by_the_cookie(api: Api, tenant: Tenant) -> None:
    """A bad bearer token is refused even with a good session cookie beside it."""
    sign_in(api, tenant.owner)
    refused = api.client.get("/v1/projects", headers=bearer("not-a-token"))
    assert_error(refused, 401)


def test_ingest_never_takes_the_session_cookie(api: Api, tenant: Tenant) -> None:
    """The API key routes (ingest, Segment) authenticate by key only."""
    sign_in(api, tenant.owner)
    assert_error(api.client.post("/v1/ingest", json={"type": "x"}, headers=csrf(api)), 401)
    refused = api.client.post("/v1/track", json={"event": "x", "userId": "u"}, headers=csrf(api))
    assert refused.status_code == 401, refused.text
    assert api.all_events(tenant.owner, tenant.project_id) == []


def test_an_expired_token_in_the_cookie_is_refused(api: Api, tenant: Tenant) -> None:
    codec = JwtCodec(jwt_secret(api.settings))
    principal = Principal(tenant.owner.user_id, tenant.owner.workspace_id, Role.OWNER)
    expired, _ = codec.issue(principal, datetime.now(UTC) - timedelta(days=2))
    api.client.cookies.set("eventcore_session", expired)
    assert_error(api.client.get("/v1/projects"), 401, "token_expired")
    assert_error(api.client.get("/v1/auth/session"), 401, "token_expired")


def test_the_cookie_reaches_only_its_own_workspace(api: Api, tenant: Tenant) -> None:
    """Another workspace's project, events and keys answer 404 to the session."""
    other = api.tenant(workspace="Other")
    api.ingest(other, {"type": "secret"})
    sign_in(api, tenant.owner)
    assert_error(api.client.get("/v1/events", params={"project_id": other.project_id}), 404)
    assert_error(api.client.get(f"/v1/projects/{other.project_id}/api-keys"), 404)
    revoked = api.client.delete(f"/v1/api-keys/{other.key_id}", headers=csrf(api))
    assert_error(revoked, 404)
    assert api.ingest(other, {"type": "still_works"}).status_code == 202


def test_a_viewer_session_may_read_but_not_manage(api: Api, tenant: Tenant) -> None:
    viewer = api.member(tenant.owner, "viewer")
    sign_in(api, viewer, workspace_id=tenant.owner.workspace_id)
    assert api.client.get("/v1/projects").status_code == 200
    refused = api.client.post("/v1/projects", json={"name": "No"}, headers=csrf(api))
    assert_error(refused, 403, "forbidden")
    assert project_names(api, tenant.owner) == ["Website"]


def test_wrong_credentials_set_no_cookie(api: Api, tenant: Tenant) -> None:
    answer = api.client.post(
        "/v1/auth/session", json={"email": tenant.owner.email, "password": "wrong password!"}
    )
    assert_error(answer, 401, "invalid_credentials")
    assert answer.headers.get_list("set-cookie") == []


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'{"email": "a@example.com"}', b'{"email": 1, "password": "x"}'],
)
def test_a_malformed_sign_in_is_a_400(api: Api, body: bytes) -> None:
    answer = api.client.post(
        "/v1/auth/session", content=body, headers={"content-type": "application/json"}
    )
    assert_error(answer, 400)
    assert answer.headers.get_list("set-cookie") == []


def test_logging_out_clears_both_cookies(api: Api, tenant: Tenant) -> None:
    sign_in(api, tenant.owner)
    answer = api.client.delete("/v1/auth/session")
    assert answer.status_code == 204
    cookies = set_cookies(answer)
    assert set(cookies) == {"eventcore_session", "eventcore_csrf"}
    for line in cookies.values():
        assert "Max-Age=0" in line
        assert "Path=/" in line
    assert_error(api.client.get("/v1/projects"), 401)


# --- switching workspace -----------------------------------------------------------------------


def test_a_member_of_two_workspaces_switches_between_them(api: Api, tenant: Tenant) -> None:
    admin = api.member(tenant.owner, "admin")
    own_workspace = api.client.get("/v1/projects", headers=bearer(admin.token))
    assert own_workspace.status_code == 200
    sign_in(api, admin, workspace_id=tenant.owner.workspace_id)
    session = api.client.get("/v1/auth/session").json()
    assert {w["name"] for w in session["workspaces"]} == {"Acme", "Their own"}
    theirs = next(w for w in session["workspaces"] if w["name"] == "Their own")

    switched = api.client.post(
        "/v1/auth/session/workspace",
        json={"workspace_id": theirs["workspace_id"]},
        headers=csrf(api),
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["workspace_id"] == theirs["workspace_id"]
    assert switched.json()["role"] == "owner"
    assert api.client.get("/v1/projects").json()["projects"] == []


def test_switching_needs_csrf_and_membership(api: Api, tenant: Tenant) -> None:
    other = api.tenant(workspace="Other")
    sign_in(api, tenant.owner)
    target = {"workspace_id": other.owner.workspace_id}
    assert_error(api.client.post("/v1/auth/session/workspace", json=target), 403, "csrf_failed")
    refused = api.client.post("/v1/auth/session/workspace", json=target, headers=csrf(api))
    assert_error(refused, 404, "not_found")
    assert refused.headers.get_list("set-cookie") == []
    assert_error(api.client.get("/v1/events", params={"project_id": other.project_id}), 404)
    bad = api.client.post("/v1/auth/session/workspace", json={"workspace": 1}, headers=csrf(api))
    assert_error(bad, 400)
    assert_error(api.client.post("/v1/auth/session/workspace", json=target), 403)
    unsigned = httpx_free_post(api, "/v1/auth/session/workspace", target)
    assert_error(unsigned, 401)


def httpx_free_post(api: Api, path: str, body: dict[str, Any]) -> httpx.Response:
    """A POST without the client's cookies."""
    api.client.cookies.clear()
    return api.client.post(path, json=body)


# --- the page and its files ---------------------------------------------------------------------


def assert_console_headers(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy
    assert "http" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/", "/projects", "/projects/abc/live", "/invitations/a.b"])
def test_every_console_path_is_the_page(api: Api, path: str) -> None:
    page = api.client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.content == (CONSOLE_DIR / "index.html").read_bytes()
    assert_console_headers(page)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing"),
        ("GET", "/v2/projects"),
        ("GET", "/health/nothing"),
        ("GET", "/console/missing.js"),
        ("GET", "/favicon.ico"),
        ("DELETE", "/projects"),
        ("POST", "/v1/nothing"),
    ],
)
def test_an_unknown_api_path_or_file_stays_a_json_404(api: Api, method: str, path: str) -> None:
    assert_error(api.client.request(method, path), 404)


def test_the_page_takes_only_get_and_head(api: Api) -> None:
    assert api.client.head("/projects").status_code == 200
    assert_error(api.client.post("/"), 405)


def referenced(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/[^"]*)"', html)


def test_every_file_the_page_loads_is_served_with_the_console_headers(api: Api) -> None:
    """The page's scripts, styles and icon, and every module the scripts import, answer 200
    from the package with their types, their bytes and the CSP; none names another host."""
    html = api.client.get("/").text
    urls = [url for url in referenced(html) if url != "/"]
    modules = {f"/console/{p.name}" for p in CONSOLE_DIR.glob("*.js")}
    for module in sorted(modules):
        source = (CONSOLE_DIR / Path(module).name).read_text()
        for imported in re.findall(r"from '\./([^']+)'", source):
            assert f"/console/{imported}" in modules, (module, imported)
        assert not re.search(r"https?://", source), module
    assert not re.search(r"https?://", html)
    assert "style=" not in html
    assert "<script>" not in html
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for url in [*urls, *modules]:
        answer = api.client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].split(";")[0] == types[Path(url).suffix], url
        assert answer.content == (CONSOLE_DIR / url.removeprefix("/console/")).read_bytes()
        assert_console_headers(answer)
    assert {"/console/vendor/uPlot.iife.min.js", "/console/vendor/uPlot.min.css"} <= set(urls)


def test_the_vendored_chart_library_is_recorded_with_its_licence() -> None:
    """ASSETS.json lists exactly the vendored files, each with its npm package, version, licence
    and sha256, and the hashes are the files'."""
    entries = json.loads((VENDOR / "ASSETS.json").read_text())["assets"]
    for entry in entries:
        assert set(entry) == {"name", "package", "version", "source", "license", "sha256"}
        assert entry["package"] == "uplot"
        assert entry["license"] == "MIT"
        data = (VENDOR / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]
    files = {path.name for path in VENDOR.iterdir()} - {"ASSETS.json"}
    assert files == {entry["name"] for entry in entries}
    assert "uplot.LICENSE" in files
