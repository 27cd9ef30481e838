"""Export over HTTP: every stored event as NDJSON in time order, in both profiles; roles,
tenants and bad input."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from eventcore.defaults import EXPORT_PAGE
from tests.http.support import Account, Api, Tenant, assert_error

START, END = "2025-03-01T00:00:00Z", "2025-03-03T00:00:00Z"

EVENTS: list[dict[str, Any]] = [
    {"id": "e3", "type": "buy", "timestamp": "2025-03-01T10:30:00Z", "user_id": "ada"},
    {"id": "e1", "type": "view", "timestamp": "2025-03-01T10:00:00Z", "user_id": "ada"},
    {
        "id": "e2",
        "type": "signup",
        "timestamp": "2025-03-01T10:05:00Z",
        "properties": {"plan": "pro", "n": 1.5e300, "nested": {"ü": [1, None]}},
    },
    {"id": "e4", "type": "view", "timestamp": "2025-03-02T11:00:00Z", "anonymous_id": "cy"},
    # Two events at one instant: the one stored first comes first.
    {"id": "t1", "type": "view", "timestamp": "2025-03-02T12:00:00Z"},
    {"id": "t2", "type": "view", "timestamp": "2025-03-02T12:00:00Z"},
    # Outside the window below.
    {"id": "late", "type": "view", "timestamp": "2025-03-04T00:00:00Z"},
]


@pytest.fixture
def loaded(api: Api, tenant: Tenant) -> Tenant:
    response = api.ingest(tenant, {"events": EVENTS})
    assert response.json()["accepted"] == len(EVENTS), response.text
    return tenant


def export(api: Api, account: Account, project_id: str, **params: Any) -> httpx.Response:
    return api.client.get(
        "/v1/events/export", params={"project_id": project_id, **params}, headers=account.headers
    )


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    text = response.text
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_an_export_is_the_listing_in_time_order(either: Api) -> None:
    """Each line is an event exactly as /v1/events shows it; the order is oldest first, ties in
    the order they were stored; in both profiles."""
    tenant = either.tenant()
    assert either.ingest(tenant, {"events": EVENTS}).json()["accepted"] == len(EVENTS)

    exported = lines(export(either, tenant.owner, tenant.project_id))

    listed = either.all_events(tenant.owner, tenant.project_id)
    assert exported == list(reversed(listed))
    assert [e["id"] for e in exported] == ["e1", "e2", "e3", "e4", "t1", "t2", "late"]
    assert exported[1]["properties"] == EVENTS[2]["properties"]


def test_the_window_and_the_event_type_select_the_events(api: Api, loaded: Tenant) -> None:
    """`start` is included, `end` excluded; `event_type` keeps that type alone."""
    windowed = lines(export(api, loaded.owner, loaded.project_id, start=START, end=END))
    assert [e["id"] for e in windowed] == ["e1", "e2", "e3", "e4", "t1", "t2"]

    from_e2 = lines(export(api, loaded.owner, loaded.project_id, start="2025-03-01T10:05:00Z"))
    assert [e["id"] for e in from_e2][:2] == ["e2", "e3"]

    until_e4 = lines(export(api, loaded.owner, loaded.project_id, end="2025-03-02T11:00:00Z"))
    assert [e["id"] for e in until_e4] == ["e1", "e2", "e3"]

    views = lines(export(api, loaded.owner, loaded.project_id, event_type="view"))
    assert [e["id"] for e in views] == ["e1", "e4", "t1", "t2", "late"]

    assert lines(export(api, loaded.owner, loaded.project_id, event_type="nope")) == []


def test_an_export_longer_than_a_page_holds_every_event_once(api: Api, tenant: Tenant) -> None:
    """More events than one page (read a page at a time) come out each once, in order, across
    page boundaries that fall between events sharing a timestamp."""
    total = EXPORT_PAGE + 700
    for first in range(0, total, 1000):
        batch = [
            # Ten events per instant, so pages end inside a run of equal timestamps.
            {
                "id": f"x{n:05d}",
                "type": "view",
                "timestamp": f"2025-03-01T10:{n // 600:02d}:{(n // 10) % 60:02d}Z",
            }
            for n in range(first, min(first + 1000, total))
        ]
        assert api.ingest(tenant, {"events": batch}).json()["accepted"] == len(batch)

    exported = lines(export(api, tenant.owner, tenant.project_id))

    assert [e["id"] for e in exported] == [f"x{n:05d}" for n in range(total)]


def test_every_role_exports(api: Api, loaded: Tenant) -> None:
    for role in ("admin", "viewer"):
        member = api.member(loaded.owner, role)
        assert len(lines(export(api, member, loaded.project_id))) == len(EVENTS)


def test_another_workspaces_project_is_not_found(api: Api, loaded: Tenant) -> None:
    """Another tenant naming this project gets 404, and its own export holds none of these."""
    stranger = api.tenant(workspace="Globex")

    assert_error(export(api, stranger.owner, loaded.project_id), 404, "not_found")
    assert lines(export(api, stranger.owner, stranger.project_id)) == []


def test_without_an_access_token_it_is_401(api: Api, loaded: Tenant) -> None:
    answer = api.client.get("/v1/events/export", params={"project_id": loaded.project_id})
    assert_error(answer, 401)
    with_key = api.client.get(
        "/v1/events/export", params={"project_id": loaded.project_id}, headers=loaded.key_headers
    )
    assert_error(with_key, 401)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2025-03-01T00:00:00"}, "end"),
        ({"start": END, "end": START}, "start"),
        ({"start": START, "end": START}, "start"),
        ({"event_type": ""}, "event_type"),
    ],
)
def test_bad_exports_are_400_naming_the_parameter(
    api: Api, loaded: Tenant, params: dict[str, str], named: str
) -> None:
    body = assert_error(export(api, loaded.owner, loaded.project_id, **params), 400)
    assert named in body["message"]


def test_an_export_without_its_project_is_400_and_an_unknown_one_404(
    api: Api, tenant: Tenant
) -> None:
    answer = api.client.get("/v1/events/export", headers=tenant.headers)
    assert "`project_id` is required" in assert_error(answer, 400)["message"]
    assert_error(export(api, tenant.owner, "prj_nope"), 404, "not_found")
