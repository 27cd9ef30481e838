"""What the browser SDKs ask of eventcore over HTTP, in both profiles: analytics.js's settings
and short paths with text/plain bodies, RudderStack's source configuration, Basic-auth routes
and beacon; the CORS answers of the write-key routes, and none on the others."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from eventcore.entrypoints.http.segment.protocol import SHORT_PATHS
from tests.http.support import Api, Tenant
from tests.segment.support import assert_protocol_error, basic, message, stored, total

PAGE = "http://127.0.0.1:5173"


def text_plain(api: Api, path: str, body: Any, **headers: str) -> httpx.Response:
    """A POST as analytics.js sends it: JSON text as `text/plain`, from a page of another origin."""
    sent = {"Content-Type": "text/plain", "Origin": PAGE, **headers}
    return api.client.post(path, content=json.dumps(body).encode(), headers=sent)


def test_analytics_js_settings_send_to_eventcore_only(either: Api) -> None:
    """The settings enable the Segment.io destination at this server's /v1, and nothing else."""
    tenant = either.tenant()

    response = either.client.get(
        f"/v1/projects/{tenant.api_key}/settings", headers={"Origin": PAGE}
    )

    assert response.status_code == 200, response.text
    settings = response.json()
    assert list(settings["integrations"]) == ["Segment.io"]
    segment = settings["integrations"]["Segment.io"]
    assert segment["apiKey"] == tenant.api_key
    assert segment["apiHost"] == "testserver.local/v1"
    assert segment["protocol"] == "http"
    assert settings["remotePlugins"] == []
    assert settings["metrics"]["sampleRate"] == 0
    assert response.headers["access-control-allow-origin"] == "*"


def test_analytics_js_settings_refuse_an_unknown_or_revoked_key(api: Api, tenant: Tenant) -> None:
    """The settings of an unknown key are a 401, and so are those of a revoked one."""
    unknown = api.client.get("/v1/projects/ek_nope/settings")
    assert_protocol_error(unknown, 401, "invalid_api_key")
    api.client.delete(f"/v1/api-keys/{tenant.key_id}", headers=tenant.headers)

    revoked = api.client.get(f"/v1/projects/{tenant.api_key}/settings")

    assert_protocol_error(revoked, 401, "revoked_api_key")


def test_analytics_js_settings_refuse_a_host_that_is_no_host(api: Api, tenant: Tenant) -> None:
    """A Host header that cannot be an address is a 400, not settings pointing at it."""
    response = api.client.get(
        f"/v1/projects/{tenant.api_key}/settings", headers={"Host": "user@example.com"}
    )

    assert_protocol_error(response, 400, "invalid_host")


@pytest.mark.parametrize("short", sorted(SHORT_PATHS))
def test_each_short_path_takes_its_message_as_text_plain(either: Api, short: str) -> None:
    """/v1/t, /v1/i, ... take one message of their type, as text/plain, key in the body."""
    tenant = either.tenant()
    sent = {**message(SHORT_PATHS[short]), "writeKey": tenant.api_key}
    del sent["type"]

    response = text_plain(either, f"/v1/{short}", sent)

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert response.headers["access-control-allow-origin"] == "*"
    assert list(stored(either, tenant)) == [sent["messageId"]]


def test_a_batch_of_the_batching_mode_is_stored_once_when_sent_again(either: Api) -> None:
    """/v1/b takes analytics.js's batch; sent again (a retry), each message is stored once."""
    tenant = either.tenant()
    body = {
        "batch": [message("page"), message("track"), message("identify")],
        "writeKey": tenant.api_key,
        "sentAt": "2026-01-01T00:00:00Z",
    }
    for message_body in body["batch"]:
        message_body["sentAt"] = None
        message_body["timestamp"] = "2026-01-01T00:00:00Z"

    first = text_plain(either, "/v1/b", body, **basic(tenant.api_key))
    again = text_plain(either, "/v1/b", body, **basic(tenant.api_key))

    assert first.status_code == 200, first.text
    assert again.json()["duplicates"] == 3
    events = stored(either, tenant)
    assert len(events) == 3
    # Clock-skew correction: sent at 2026-01-01, received now, so stamped now.
    assert all(not e["timestamp"].startswith("2026-01-01") for e in events.values())
    assert total(either, tenant) == 3


def test_rudderstack_source_config_is_an_enabled_source_without_destinations(either: Api) -> None:
    """/sourceConfig/ answers an enabled source of the key's project, with no destinations."""
    tenant = either.tenant()

    response = either.client.get(
        "/sourceConfig/",
        params={"p": "npm", "v": "3.34.1", "writeKey": tenant.api_key},
        headers={**basic(tenant.api_key), "Origin": PAGE},
    )

    assert response.status_code == 200, response.text
    source = response.json()["source"]
    assert source["id"] == tenant.project_id
    assert source["enabled"] is True
    assert source["destinations"] == []
    assert source["config"]["statsCollection"]["errors"]["enabled"] is False
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("key", ["ek_nope", None])
def test_rudderstack_source_config_refuses_a_bad_or_missing_key(api: Api, key: str | None) -> None:
    """An unknown key, or none, is a 401 in the protocol's shape."""
    params = {"writeKey": key} if key else {}

    response = api.client.get("/sourceConfig", params=params)

    assert_protocol_error(response, 401)


def test_rudderstack_track_and_beacon_are_stored_once(either: Api) -> None:
    """A message to /v1/track with Basic auth and a beacon batch with the key in the query are
    stored; the beacon sent again stores nothing more."""
    tenant = either.tenant()
    tracked = message("track", anonymousId="anon-1", userId=None)
    response = either.client.post(
        "/v1/track",
        content=json.dumps(tracked),
        headers={
            "Content-Type": "application/json;charset=UTF-8",
            "AnonymousId": base64.b64encode(b"anon-1").decode(),
            "Origin": PAGE,
            **basic(tenant.api_key),
        },
    )
    assert response.status_code == 200, response.text
    beacon = {"batch": [message("page", anonymousId="anon-1")], "sentAt": tracked["timestamp"]}

    for _ in range(2):
        sent = either.client.post(
            "/beacon/v1/batch",
            params={"writeKey": tenant.api_key},
            content=json.dumps(beacon),
            headers={"Content-Type": "text/plain", "Origin": PAGE},
        )
        assert sent.status_code == 200, sent.text

    assert set(stored(either, tenant)) == {tracked["messageId"], beacon["batch"][0]["messageId"]}


def test_the_query_key_is_the_beacons_alone(api: Api, tenant: Tenant) -> None:
    """`?writeKey=` is no way to send the key to the other Segment routes (their schema does not
    name it): there it is a 401."""
    response = api.client.post(
        "/v1/batch", params={"writeKey": tenant.api_key}, json={"batch": [message("page")]}
    )

    assert_protocol_error(response, 401, "unauthorized")


def test_a_beacon_with_a_revoked_key_is_refused(api: Api, tenant: Tenant) -> None:
    """The beacon's query key is checked like any other."""
    api.client.delete(f"/v1/api-keys/{tenant.key_id}", headers=tenant.headers)

    response = api.client.post(
        "/beacon/v1/batch",
        params={"writeKey": tenant.api_key},
        content=json.dumps({"batch": [message("page")]}),
        headers={"Content-Type": "text/plain"},
    )

    assert_protocol_error(response, 401, "revoked_api_key")


# --- CORS --------------------------------------------------------------------------------------

WRITE_KEY_ROUTES = [
    "/v1/ingest",
    "/v1/batch",
    "/v1/track",
    "/v1/t",
    "/v1/b",
    "/beacon/v1/batch",
    "/sourceConfig/",
    "/v1/projects/ek_any/settings",
]


@pytest.mark.parametrize("path", WRITE_KEY_ROUTES)
def test_a_preflight_of_a_write_key_route_is_answered_without_credentials(
    api: Api, path: str
) -> None:
    """The preflight names any origin, the methods and the headers asked for; no credentials."""
    response = api.client.options(
        path,
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
        },
    )

    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == (
        "authorization,content-type,x-retry-count"
    )
    assert "access-control-allow-credentials" not in response.headers


def test_a_refusal_of_a_write_key_route_is_readable_by_the_page(api: Api) -> None:
    """A 401 carries the CORS header too, so that the SDK reads its status (no network error),
    and Retry-After is exposed for a 429."""
    response = text_plain(api, "/v1/t", {**message("track"), "writeKey": "ek_nope"})

    assert_protocol_error(response, 401)
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Retry-After" in response.headers["access-control-expose-headers"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/auth/login",
        "/v1/projects",
        "/v1/events",
        "/v1/analytics/counts",
        "/v1/projects/x/api-keys",
        "/",
    ],
)
def test_account_analytics_and_console_routes_send_no_cors_headers(api: Api, path: str) -> None:
    """Neither a preflight nor a request of the account, analytics or console routes gets a
    CORS header: a browser keeps them same-origin."""
    preflight = api.client.options(
        path,
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    plain = api.client.get(path, headers={"Origin": PAGE})

    for response in (preflight, plain):
        cors = [h for h in response.headers if h.lower().startswith("access-control-")]
        assert cors == [], (response.status_code, cors)


# --- allowed origins ---------------------------------------------------------------------------

OTHER = "https://evil.example"


def allow(api: Api, tenant: Tenant, origins: Any, account: Any = None) -> httpx.Response:
    return api.client.patch(
        f"/v1/projects/{tenant.project_id}",
        json={"allowed_origins": origins},
        headers=(account or tenant.owner).headers,
    )


def test_allowed_origins_are_set_shown_audited_and_cleared(either: Api) -> None:
    """A project allows any origin by default; the list set is shown lower-cased, audited, and
    cleared by null."""
    tenant = either.tenant()
    listed = either.client.get("/v1/projects", headers=tenant.headers).json()["projects"]
    assert [p["allowed_origins"] for p in listed] == [[]]

    answer = allow(either, tenant, [PAGE, "HTTPS://WWW.Example.com", PAGE])

    assert answer.status_code == 200, answer.text
    assert answer.json()["allowed_origins"] == [PAGE, "https://www.example.com"]
    assert answer.json()["retention_days"] is None
    cleared = allow(either, tenant, None)
    assert cleared.json()["allowed_origins"] == []
    log = either.client.get(
        "/v1/audit-log", params={"action": "project.origins_changed"}, headers=tenant.headers
    ).json()["entries"]
    assert [e["details"] for e in log] == [
        {"allowed_origins": []},
        {"allowed_origins": [PAGE, "https://www.example.com"]},
    ]


def test_an_origin_outside_the_list_is_refused_on_every_write_key_route(either: Api) -> None:
    """With a list, a page of another origin is refused (403 origin_not_allowed, readable by
    the page) on the SDKs' routes and on /v1/ingest; the allowed origin and a request with no
    Origin (a server SDK) still go through."""
    tenant = either.tenant()
    assert allow(either, tenant, [PAGE]).status_code == 200
    key = tenant.api_key
    sent = {**message("track"), "writeKey": key}

    refused = [
        text_plain(either, "/v1/t", sent, Origin=OTHER),
        either.client.get(f"/v1/projects/{key}/settings", headers={"Origin": OTHER}),
        either.client.get("/sourceConfig/", params={"writeKey": key}, headers={"Origin": OTHER}),
        either.client.post(
            "/beacon/v1/batch",
            params={"writeKey": key},
            content=json.dumps({"batch": [message("page")]}),
            headers={"Origin": OTHER, "Content-Type": "text/plain"},
        ),
    ]
    for response in refused:
        body = assert_protocol_error(response, 403, "origin_not_allowed")
        assert OTHER in body["message"]
        assert response.headers["access-control-allow-origin"] == "*"
    native = either.client.post(
        "/v1/ingest", json={"type": "x"}, headers={"X-API-Key": key, "Origin": OTHER}
    )
    assert native.status_code == 403, native.text
    assert native.json()["error"]["code"] == "origin_not_allowed"
    assert stored(either, tenant) == {}

    assert text_plain(either, "/v1/t", sent).status_code == 200
    plain = either.client.post("/v1/batch", json={"batch": [message()]}, headers=basic(key))
    assert plain.status_code == 200, plain.text
    assert len(stored(either, tenant)) == 2


def test_allowed_origins_are_owner_and_admin_only(api: Api, tenant: Tenant) -> None:
    """An admin sets them; a viewer is refused and changes nothing."""
    admin = api.member(tenant.owner, "admin")
    assert allow(api, tenant, [PAGE], admin).status_code == 200
    refused = allow(api, tenant, [OTHER], api.member(tenant.owner, "viewer"))
    assert refused.status_code == 403, refused.text
    listed = api.client.get("/v1/projects", headers=tenant.headers).json()["projects"]
    assert [p["allowed_origins"] for p in listed] == [[PAGE]]


def test_another_workspaces_project_is_not_found(api: Api, tenant: Tenant) -> None:
    """Another workspace's owner cannot set them: 404, nothing changed."""
    stranger = api.tenant(workspace="Theirs")

    response = allow(api, tenant, [OTHER], stranger.owner)

    assert response.status_code == 404, response.text
    listed = api.client.get("/v1/projects", headers=tenant.headers).json()["projects"]
    assert [p["allowed_origins"] for p in listed] == [[]]


@pytest.mark.parametrize(
    "origins",
    [
        ["https://www.example.com/"],
        ["https://www.example.com/path"],
        ["ftp://example.com"],
        ["example.com"],
        ["https://user@example.com"],
        ["https://exa mple.com"],
        "https://www.example.com",
        [1],
        ["https://a.example"] * 101,
    ],
)
def test_a_list_that_is_not_of_origins_is_refused(api: Api, tenant: Tenant, origins: Any) -> None:
    """Anything but a list of at most 100 origins (scheme, host, port; no path) is a 400 that
    changes nothing."""
    response = allow(api, tenant, origins)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in ("invalid_request", "invalid_body")
    listed = api.client.get("/v1/projects", headers=tenant.headers).json()["projects"]
    assert [p["allowed_origins"] for p in listed] == [[]]
