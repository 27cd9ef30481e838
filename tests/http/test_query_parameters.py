"""A query parameter a route does not take is refused with a 400 naming it, never ignored (a
misspelt filter would otherwise answer for everything); the Segment routes stay lenient."""

from __future__ import annotations

import pytest

from tests.http.support import Api, Tenant, assert_error


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/v1/analytics/counts", "project_id={p}&evnt_type=view", "evnt_type"),
        ("/v1/events", "project_id={p}&limit=5&cursr=abc", "cursr"),
        ("/v1/events/export", "project_id={p}&since=2025-01-01T00:00:00Z", "since"),
        ("/v1/audit-log", "acton=signup", "acton"),
        ("/v1/members", "page=2", "page"),
        ("/v1/projects", "=x", "no name"),
    ],
)
def test_a_parameter_the_route_does_not_take_is_400(
    api: Api, tenant: Tenant, path: str, query: str, named: str
) -> None:
    answer = api.client.get(f"{path}?{query.format(p=tenant.project_id)}", headers=tenant.headers)

    assert named in assert_error(answer, 400, "invalid_query")["message"]


def test_the_message_lists_what_the_route_takes(api: Api, tenant: Tenant) -> None:
    answer = api.client.get("/v1/audit-log?acton=signup", headers=tenant.headers)

    assert "`action`, `cursor`, `limit`" in assert_error(answer, 400)["message"]


def test_the_segment_routes_take_any_parameter(api: Api, tenant: Tenant) -> None:
    """Segment's SDKs and proxies may add their own: the protocol's routes ignore them."""
    answer = api.client.post(
        "/v1/track?sdk=node",
        json={"writeKey": tenant.api_key, "event": "Signed Up", "userId": "ada"},
    )

    assert answer.status_code == 200, answer.text


def test_probes_may_add_their_own_parameters(api: Api) -> None:
    assert api.client.get("/health/live?probe=lb-1").status_code == 200
    assert api.client.get("/metrics?cache=0").status_code == 200
