"""Persons over HTTP: events with persons, unique users and funnels; roles, tenants, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.support import Account, Api, Tenant, assert_error

START, END = "2025-03-01T00:00:00Z", "2025-03-03T00:00:00Z"

# Ada signs up and buys; Bob signs up; Cy (anonymous) only views; one event has nobody.
EVENTS: list[dict[str, Any]] = [
    {"id": "e1", "type": "view", "timestamp": "2025-03-01T10:00:00Z", "user_id": "ada"},
    {"id": "e2", "type": "signup", "timestamp": "2025-03-01T10:05:00Z", "user_id": "ada"},
    {"id": "e3", "type": "buy", "timestamp": "2025-03-01T10:30:00Z", "user_id": "ada"},
    {"id": "e4", "type": "view", "timestamp": "2025-03-01T11:00:00Z", "user_id": "bob"},
    {"id": "e5", "type": "signup", "timestamp": "2025-03-01T11:10:00Z", "user_id": "bob"},
    {"id": "e6", "type": "view", "timestamp": "2025-03-01T11:20:00Z", "anonymous_id": "cy"},
    {"id": "e7", "type": "view", "timestamp": "2025-03-02T09:00:00Z", "user_id": "ada"},
    {"id": "e8", "type": "view", "timestamp": "2025-03-02T09:30:00Z"},
    # Bob buys, but two days after signing up.
    {"id": "e9", "type": "buy", "timestamp": "2025-03-02T23:00:00Z", "user_id": "bob"},
]
FUNNEL = {
    "steps": [{"event_type": "view"}, {"event_type": "signup"}, {"event_type": "buy"}],
    "window_seconds": 3600,
    "start": START,
    "end": END,
}


@pytest.fixture
def loaded(api: Api, tenant: Tenant) -> Tenant:
    response = api.ingest(tenant, {"events": EVENTS})
    assert response.json()["accepted"] == len(EVENTS), response.text
    return tenant


def users(api: Api, account: Account, project_id: str, **params: Any) -> Any:
    return api.client.get(
        "/v1/analytics/users",
        params={"project_id": project_id, "start": START, "end": END, **params},
        headers=account.headers,
    )


def funnel(api: Api, account: Account, body: dict[str, Any]) -> Any:
    return api.client.post("/v1/analytics/funnel", json=body, headers=account.headers)


def test_events_keep_their_persons(api: Api, loaded: Tenant) -> None:
    """`user_id` and `anonymous_id` come back in /v1/events, absent as null."""
    listed = {
        e["id"]: (e["user_id"], e["anonymous_id"])
        for e in api.all_events(loaded.owner, loaded.project_id)
    }

    assert listed == {e["id"]: (e.get("user_id"), e.get("anonymous_id")) for e in EVENTS}


def test_unique_users_per_hour_and_over_the_window(api: Api, loaded: Tenant) -> None:
    """Each bucket counts its distinct persons; the total counts each person once, however many
    buckets they appear in; few persons are counted exactly (relative_error 0)."""
    response = users(api, loaded.owner, loaded.project_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 3
    assert body["relative_error"] == 0
    assert [(p["bucket"], p["users"]) for p in body["series"]] == [
        ("2025-03-01T10:00:00Z", 1),
        ("2025-03-01T11:00:00Z", 2),
        ("2025-03-02T09:00:00Z", 1),
        ("2025-03-02T23:00:00Z", 1),
    ]
    assert response.headers["etag"]


def test_unique_users_per_day_and_of_one_event_type(api: Api, loaded: Tenant) -> None:
    """Day buckets merge their hours; an event type counts the persons of that type only."""
    days = users(api, loaded.owner, loaded.project_id, granularity="day").json()
    assert [(p["bucket"], p["users"]) for p in days["series"]] == [
        ("2025-03-01T00:00:00Z", 3),
        ("2025-03-02T00:00:00Z", 2),
    ]
    buyers = users(api, loaded.owner, loaded.project_id, event_type="buy").json()
    assert buyers["total"] == 2


def test_a_resent_event_changes_no_unique_count(api: Api, loaded: Tenant) -> None:
    """The same ids again, even naming other persons, are duplicates: nobody new is counted."""
    before = users(api, loaded.owner, loaded.project_id).json()
    resent = [{**e, "user_id": "mallory"} for e in EVENTS]
    assert api.ingest(loaded, {"events": resent}).json()["duplicates"] == len(EVENTS)

    assert users(api, loaded.owner, loaded.project_id).json() == before


def test_a_funnel_counts_persons_in_order_within_the_window(api: Api, loaded: Tenant) -> None:
    """Ada did view → signup → buy within an hour; Bob bought too late; Cy only viewed."""
    response = funnel(api, loaded.owner, {"project_id": loaded.project_id, **FUNNEL})

    assert response.status_code == 200, response.text
    assert response.json() == {
        "steps": [
            {"event_type": "view", "users": 3, "conversion": 1.0},
            {"event_type": "signup", "users": 2, "conversion": 0.6667},
            {"event_type": "buy", "users": 1, "conversion": 0.3333},
        ]
    }
    wide = funnel(
        api, loaded.owner, {"project_id": loaded.project_id, **FUNNEL, "window_seconds": 172800}
    )
    assert [s["users"] for s in wide.json()["steps"]] == [3, 2, 2]


def test_every_role_reads_unique_users_and_funnels(api: Api, loaded: Tenant) -> None:
    for role in ("admin", "viewer"):
        member = api.member(loaded.owner, role)
        assert users(api, member, loaded.project_id).json()["total"] == 3
        body = {"project_id": loaded.project_id, **FUNNEL}
        assert funnel(api, member, body).status_code == 200


def test_another_workspaces_project_is_not_found(api: Api, loaded: Tenant) -> None:
    """Another tenant asking about this project is answered 404, as for any unknown project."""
    stranger = api.tenant(workspace="Globex")

    assert_error(users(api, stranger.owner, loaded.project_id), 404, "not_found")
    assert_error(
        funnel(api, stranger.owner, {"project_id": loaded.project_id, **FUNNEL}), 404, "not_found"
    )
    # And their own project knows none of this tenant's persons.
    assert users(api, stranger.owner, stranger.project_id).json()["total"] == 0


def test_without_an_access_token_both_are_401(api: Api, loaded: Tenant) -> None:
    answer = api.client.get("/v1/analytics/users", params={"project_id": loaded.project_id})
    assert_error(answer, 401)
    answer = api.client.post(
        "/v1/analytics/funnel", json={"project_id": loaded.project_id, **FUNNEL}
    )
    assert_error(answer, 401)
    key = api.client.get(
        "/v1/analytics/users", params={"project_id": loaded.project_id}, headers=loaded.key_headers
    )
    assert_error(key, 401)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"granularity": "minute"}, "granularity"),
        ({"granularity": "week"}, "granularity"),
        ({"start": "yesterday"}, "start"),
        ({"start": END, "end": START}, "start"),
    ],
)
def test_bad_unique_user_queries_are_400(
    api: Api, loaded: Tenant, params: dict[str, str], named: str
) -> None:
    body = assert_error(users(api, loaded.owner, loaded.project_id, **params), 400)
    assert named in body["message"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"steps": [{"event_type": "view"}]}, "steps"),
        ({"steps": [{"event_type": "view"}] * 11}, "steps"),
        ({"steps": [{"event_type": ""}, {"event_type": "buy"}]}, "event_type"),
        ({"steps": [{"event_type": "view", "color": "red"}] * 2}, "color"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"window_seconds": 90 * 24 * 3600 + 1}, "window_seconds"),
        ({"window_seconds": "hour"}, "window_seconds"),
        ({"start": "2025-03-01T00:00:00"}, "start"),
        ({"start": END, "end": START}, "start"),
        ({"project_id": 7}, "project_id"),
        ({"extra": True}, "extra"),
    ],
)
def test_bad_funnels_are_400_naming_the_field(
    api: Api, loaded: Tenant, change: dict[str, Any], named: str
) -> None:
    body = assert_error(
        funnel(api, loaded.owner, {"project_id": loaded.project_id, **FUNNEL, **change}), 400
    )
    assert named in body["message"]


def test_a_funnel_without_a_body_is_400(api: Api, loaded: Tenant) -> None:
    answer = api.client.post(
        "/v1/analytics/funnel", content=b"not json", headers=loaded.owner.headers
    )
    assert_error(answer, 400)


@pytest.mark.parametrize("value", ["x" * 129, ""])
def test_an_event_with_an_unusable_person_is_rejected_alone(
    api: Api, tenant: Tenant, value: str
) -> None:
    """A `user_id` of 0 or more than 128 characters rejects that event, not its batch."""
    response = api.ingest(
        tenant,
        {"events": [{"type": "view", "user_id": value}, {"type": "view", "user_id": "ok"}]},
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0]


@pytest.mark.parametrize("route", ["counts", "event-types", "users", "breakdown"])
def test_a_query_without_its_project_is_400_naming_it(api: Api, tenant: Tenant, route: str) -> None:
    answer = api.client.get(f"/v1/analytics/{route}", headers=tenant.headers)

    assert "`project_id` is required" in assert_error(answer, 400)["message"]


def test_an_event_type_cannot_pass_for_a_filter_in_the_cache(api: Api, tenant: Tenant) -> None:
    """An event type spelled like a type with `where` filters is its own query, not a cached
    answer of the filtered one (cache keys are one JSON text)."""
    declared = api.client.put(
        f"/v1/projects/{tenant.project_id}/dimensions",
        json={"properties": ["plan"]},
        headers=tenant.headers,
    )
    assert declared.status_code == 200, declared.text
    odd = 'x|[["plan","pro"]]'
    events = [
        {"id": "p1", "type": "x", "user_id": "a", "properties": {"plan": "pro"}},
        {"id": "p2", "type": "x", "user_id": "b", "properties": {"plan": "pro"}},
        {"id": "o1", "type": odd, "user_id": "c"},
    ]
    assert api.ingest(tenant, {"events": events}).json()["accepted"] == 3

    def recent(**params: str) -> Any:
        return api.client.get(
            "/v1/analytics/users",
            params={"project_id": tenant.project_id, **params},
            headers=tenant.headers,
        ).json()["total"]

    assert recent(event_type=odd) == 1
    assert recent(event_type="x", where="plan:pro") == 2
    assert recent(event_type=odd) == 1


def test_an_empty_event_type_is_400(api: Api, tenant: Tenant) -> None:
    answer = users(api, tenant.owner, tenant.project_id, event_type="")

    assert "event_type" in assert_error(answer, 400, "invalid_query")["message"]


def test_a_funnel_ending_at_the_last_representable_time_is_answered(
    api: Api, loaded: Tenant
) -> None:
    body = {
        "project_id": loaded.project_id,
        **FUNNEL,
        "start": "9999-12-31T21:00:00Z",
        "end": "9999-12-31T22:00:00Z",
        "window_seconds": 7776000,
    }
    answer = funnel(api, loaded.owner, body)

    assert answer.status_code == 200, answer.text
    assert [s["users"] for s in answer.json()["steps"]] == [0, 0, 0]


def test_nul_in_a_funnel_is_400_on_every_profile(api: Api, loaded: Tenant) -> None:
    body = {**FUNNEL, "project_id": loaded.project_id, "steps": [{"event_type": "a\x00"}] * 2}

    assert_error(funnel(api, loaded.owner, body), 400, "invalid_request")


def test_an_answer_that_would_read_too_many_events_is_400_and_cached_as_nothing(
    api: Api, loaded: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A funnel, and a filtered count, read the window's stored events; past MAX_RAW_EVENTS
    (lowered here to 5: the window holds 9) the answer is refused with a 400 that says what to
    do, and once the bound allows it the same request is answered (nothing was cached)."""
    monkeypatch.setattr("eventcore.usecases.analytics.MAX_RAW_EVENTS", 5)
    body = {"project_id": loaded.project_id, **FUNNEL}
    refused = funnel(api, loaded.owner, body)
    assert_error(refused, 400, "window_too_large")
    assert "more than 5" in refused.json()["error"]["message"]
    declared = api.client.put(
        f"/v1/projects/{loaded.project_id}/dimensions",
        json={"properties": ["plan"]},
        headers=loaded.owner.headers,
    )
    assert declared.status_code == 200, declared.text
    pro = [
        {
            "id": f"p{n}",
            "type": "view",
            "timestamp": "2025-03-01T12:00:00Z",
            "properties": {"plan": "pro"},
        }
        for n in range(6)
    ]
    assert api.ingest(loaded, {"events": pro}).json()["accepted"] == 6
    filtered = api.client.get(
        "/v1/analytics/counts",
        params={
            "project_id": loaded.project_id,
            "start": START,
            "end": END,
            "granularity": "day",
            "where": "plan:pro",
        },
        headers=loaded.owner.headers,
    )
    assert_error(filtered, 400, "window_too_large")

    monkeypatch.setattr("eventcore.usecases.analytics.MAX_RAW_EVENTS", 9)
    assert funnel(api, loaded.owner, body).status_code == 200
