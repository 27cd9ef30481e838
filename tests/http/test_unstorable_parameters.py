"""Query and path parameters holding what no store can keep: 400 with the parameter's name.

NUL (no PostgreSQL text holds it) and bytes that are not UTF-8 (a lone surrogate `%ED%A0%80`, a
stray `%FF`) are refused at the edge, before any store sees them, on both profiles alike; the
request changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.support import Api, Tenant, assert_error

NUL = "(NUL)."
NOT_UTF8 = "(not UTF-8: a lone surrogate or a broken byte sequence)."
# (what is sent, the end of the message it gets)
BAD_VALUES = {
    "nul-inside": ("a%00b", NUL),
    "nul-alone": ("%00", NUL),
    "lone-surrogate": ("%ED%A0%80", NOT_UTF8),
    "broken-byte": ("x%FF", NOT_UTF8),
}

# Every route's query parameters, with values that are valid on their own.
QUERIES: dict[str, dict[str, str]] = {
    "/v1/analytics/counts": {
        "project_id": "{project}",
        "start": "2025-03-01T00:00:00Z",
        "end": "2025-03-03T00:00:00Z",
        "granularity": "hour",
        "event_type": "click",
    },
    "/v1/analytics/event-types": {
        "project_id": "{project}",
        "start": "2025-03-01T00:00:00Z",
        "end": "2025-03-03T00:00:00Z",
    },
    "/v1/events": {"project_id": "{project}", "event_type": "click", "limit": "10", "cursor": ""},
}
QUERY_CASES = [
    (path, name, kind)
    for path, names in QUERIES.items()
    for name in names
    for kind in ("nul-inside", "lone-surrogate")
] + [("/v1/events", "event_type", "nul-alone"), ("/v1/events", "cursor", "nul-alone")]


def query_string(tenant: Tenant, path: str, bad: str, value: str) -> str:
    params = {k: v.format(project=tenant.project_id) for k, v in QUERIES[path].items()}
    params[bad] = value
    return "&".join(f"{k}={v}" for k, v in params.items() if v or k == bad)


def stored_events(api: Api, tenant: Tenant) -> list[dict[str, Any]]:
    return api.all_events(tenant.owner, tenant.project_id)


def keys_of(api: Api, tenant: Tenant) -> list[dict[str, Any]]:
    response = api.client.get(f"/v1/projects/{tenant.project_id}/api-keys", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["api_keys"])


@pytest.fixture
def shop(either: Api) -> Tenant:
    tenant = either.tenant()
    response = either.ingest(tenant, {"id": "e1", "type": "click", "timestamp": 1740823200})
    assert response.status_code == 202, response.text
    return tenant


@pytest.mark.parametrize(("path", "name", "kind"), QUERY_CASES)
def test_a_query_parameter_that_cannot_be_stored_is_a_400_naming_it(
    either: Api, shop: Tenant, path: str, name: str, kind: str
) -> None:
    """Every query parameter of every read route: NUL or non-UTF-8 bytes get a 400
    `invalid_query` that names the parameter and says why, on either profile."""
    value, reason = BAD_VALUES[kind]
    url = f"{path}?{query_string(shop, path, name, value)}"

    response = either.client.get(url, headers=shop.headers)

    error = assert_error(response, 400, "invalid_query")
    assert error["message"] == f"`{name}` holds a character that cannot be stored {reason}"


@pytest.mark.parametrize("kind", list(BAD_VALUES))
def test_a_parameter_no_route_declares_is_refused_the_same(
    either: Api, shop: Tenant, kind: str
) -> None:
    """A query parameter the route does not read is refused too, even on ingest, whose body
    is then not stored; a name that cannot be stored is refused without repeating it."""
    value, reason = BAD_VALUES[kind]
    before = stored_events(either, shop)

    ingest = either.client.post(
        f"/v1/ingest?source={value}", json={"id": "e2", "type": "view"}, headers=shop.key_headers
    )
    named = either.client.get(f"/v1/projects?{value}=1", headers=shop.headers)

    error = assert_error(ingest, 400, "invalid_query")
    assert error["message"] == f"`source` holds a character that cannot be stored {reason}"
    error = assert_error(named, 400, "invalid_query")
    assert error["message"] == (
        f"A query parameter's name holds a character that cannot be stored {reason}"
    )
    assert stored_events(either, shop) == before


@pytest.mark.parametrize("kind", list(BAD_VALUES))
def test_a_path_parameter_that_cannot_be_stored_is_a_400_naming_it(
    either: Api, shop: Tenant, kind: str
) -> None:
    """The project and key ids in paths reach the stores too: the same refusal (`invalid_path`),
    and neither a key is made nor one revoked."""
    value, reason = BAD_VALUES[kind]
    before = keys_of(either, shop)

    answers = {
        "project_id": [
            either.client.get(f"/v1/projects/{value}/api-keys", headers=shop.headers),
            either.client.post(
                f"/v1/projects/{value}/api-keys", json={"name": "x"}, headers=shop.headers
            ),
        ],
        "key_id": [either.client.delete(f"/v1/api-keys/{value}", headers=shop.headers)],
    }

    for name, responses in answers.items():
        for response in responses:
            error = assert_error(response, 400, "invalid_path")
            assert error["message"] == f"`{name}` holds a character that cannot be stored {reason}"
    assert keys_of(either, shop) == before
    assert either.ingest(shop, {"id": "e3", "type": "view"}).status_code == 202


def test_storable_text_in_parameters_still_works(either: Api, shop: Tenant) -> None:
    """Characters outside ASCII, spaces and `+` are stored text: the route answers as usual."""
    for event_type in ("caf%C3%A9", "a+b", "%F0%9F%98%80", "a%20b"):
        response = either.client.get(
            f"/v1/events?project_id={shop.project_id}&event_type={event_type}",
            headers=shop.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["events"] == []
