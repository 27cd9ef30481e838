"""Declared dimensions over HTTP: declaring them, breakdowns, `where` filters on counts, users,
breakdowns and funnel steps; roles, tenants and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.support import Account, Api, Tenant, assert_error

START, END = "2025-03-01T00:00:00Z", "2025-03-03T00:00:00Z"
PATHS = ["plan", "context.page.path"]


def visit(n: int, kind: str, user: str, plan: Any, path: str, day: int = 1) -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "type": kind,
        "timestamp": f"2025-03-0{day}T1{n % 10}:00:00Z",
        "user_id": user,
        "properties": {"plan": plan, "context": {"page": {"path": path}}},
    }


EVENTS = [
    visit(1, "view", "ada", "pro", "/"),
    visit(2, "view", "ada", "pro", "/pricing"),
    visit(3, "buy", "ada", "pro", "/checkout"),
    visit(4, "view", "bob", "free", "/"),
    visit(5, "view", "cy", "free", "/pricing"),
    visit(6, "view", "cy", None, "/", day=2),
    visit(7, "buy", "bob", 3, "/checkout", day=2),
]


def declare(api: Api, account: Account, project_id: str, paths: Any) -> Any:
    return api.client.put(
        f"/v1/projects/{project_id}/dimensions", json={"properties": paths}, headers=account.headers
    )


@pytest.fixture
def shop(api: Api, tenant: Tenant) -> Tenant:
    answer = declare(api, tenant.owner, tenant.project_id, PATHS)
    assert answer.status_code == 200, answer.text
    sent = api.ingest(tenant, {"events": EVENTS})
    assert sent.json()["accepted"] == len(EVENTS), sent.text
    return tenant


def get(api: Api, account: Account, route: str, **params: Any) -> Any:
    return api.client.get(
        f"/v1/analytics/{route}",
        params={"start": START, "end": END, **params},
        headers=account.headers,
    )


def test_declared_dimensions_are_read_back(api: Api, shop: Tenant) -> None:
    answer = api.client.get(
        f"/v1/projects/{shop.project_id}/dimensions", headers=shop.owner.headers
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"project_id": shop.project_id, "properties": PATHS}


def test_a_breakdown_counts_events_and_persons_per_value(api: Api, shop: Tenant) -> None:
    answer = get(api, shop.owner, "breakdown", project_id=shop.project_id, property="plan")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["values"] == [
        {"value": "pro", "count": 3, "users": 1},
        {"value": "free", "count": 2, "users": 2},
        {"value": "3", "count": 1, "users": 1},
        {"value": None, "count": 1, "users": 1},
    ]
    assert body["other"] == {"count": 0}
    assert body["relative_error"] == 0
    assert answer.headers["etag"]


def test_a_breakdown_of_a_nested_path_of_one_type_with_a_limit(api: Api, shop: Tenant) -> None:
    body = get(
        api,
        shop.owner,
        "breakdown",
        project_id=shop.project_id,
        property="context.page.path",
        event_type="view",
        limit=1,
    ).json()

    assert body["values"] == [{"value": "/", "count": 3, "users": 3}]
    assert body["other"] == {"count": 2}


def test_either_profile_lists_the_largest_values_with_their_persons(either: Api) -> None:
    """The database sums the tallies and reads only the listed values' sketches (SQLite and
    PostgreSQL): the same answers, ties by value in code point order, the rest in `other`."""
    tenant = either.tenant()
    assert declare(either, tenant.owner, tenant.project_id, PATHS).status_code == 200
    assert either.ingest(tenant, {"events": EVENTS}).json()["accepted"] == len(EVENTS)

    def breakdown(**params: Any) -> Any:
        answer = get(
            either,
            tenant.owner,
            "breakdown",
            project_id=tenant.project_id,
            property="context.page.path",
            **params,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    every = breakdown()
    assert every["values"] == [
        {"value": "/", "count": 3, "users": 3},
        {"value": "/checkout", "count": 2, "users": 2},
        {"value": "/pricing", "count": 2, "users": 2},
    ]
    assert every["other"] == {"count": 0}
    assert every["relative_error"] == 0
    two = breakdown(limit=2)
    assert two["values"] == every["values"][:2]
    assert two["other"] == {"count": 2}
    bought = breakdown(event_type="buy", limit=1)
    assert bought["values"] == [{"value": "/checkout", "count": 2, "users": 2}]
    assert bought["other"] == {"count": 0}


def test_where_filters_counts_users_and_breakdowns_exactly(api: Api, shop: Tenant) -> None:
    counts = get(
        api, shop.owner, "counts", project_id=shop.project_id, where="plan:free", granularity="day"
    ).json()
    assert counts["total"] == 2
    users = api.client.get(
        "/v1/analytics/users",
        params=[
            ("project_id", shop.project_id),
            ("start", START),
            ("end", END),
            ("where", "plan:pro"),
            ("where", "context.page.path:/pricing"),
        ],
        headers=shop.owner.headers,
    ).json()
    assert users["total"] == 1
    assert users["relative_error"] == 0
    pages = get(
        api,
        shop.owner,
        "breakdown",
        project_id=shop.project_id,
        property="context.page.path",
        where="plan:free",
    ).json()
    assert pages["values"] == [
        {"value": "/", "count": 1, "users": 1},
        {"value": "/pricing", "count": 1, "users": 1},
    ]


def test_a_funnel_step_may_filter_on_dimensions(api: Api, shop: Tenant) -> None:
    body = {
        "project_id": shop.project_id,
        "steps": [
            {"event_type": "view", "where": ["plan:pro"]},
            {"event_type": "buy"},
        ],
        "window_seconds": 86400,
        "start": START,
        "end": END,
    }
    answer = api.client.post("/v1/analytics/funnel", json=body, headers=shop.owner.headers)

    assert answer.status_code == 200, answer.text
    assert [s["users"] for s in answer.json()["steps"]] == [1, 1]


def test_a_dimension_declared_late_counts_from_then_on(api: Api, tenant: Tenant) -> None:
    """Events stored before the declaration are in no breakdown (until `rollup rebuild`)."""
    assert api.ingest(tenant, {"events": EVENTS[:3]}).status_code == 202
    declare(api, tenant.owner, tenant.project_id, ["plan"])
    assert api.ingest(tenant, {"events": EVENTS[3:]}).status_code == 202

    body = get(api, tenant.owner, "breakdown", project_id=tenant.project_id, property="plan")
    assert sum(v["count"] for v in body.json()["values"]) == len(EVENTS) - 3


def test_owner_and_admin_declare_viewers_read(api: Api, shop: Tenant) -> None:
    admin = api.member(shop.owner, "admin")
    viewer = api.member(shop.owner, "viewer")

    assert declare(api, admin, shop.project_id, ["plan"]).status_code == 200
    assert_error(declare(api, viewer, shop.project_id, ["plan"]), 403)
    read = api.client.get(f"/v1/projects/{shop.project_id}/dimensions", headers=viewer.headers)
    assert read.json()["properties"] == ["plan"]
    answer = get(api, viewer, "breakdown", project_id=shop.project_id, property="plan")
    assert answer.status_code == 200


def test_another_tenant_can_neither_declare_nor_read(api: Api, shop: Tenant) -> None:
    stranger = api.tenant(workspace="Globex")

    assert_error(declare(api, stranger.owner, shop.project_id, ["plan"]), 404, "not_found")
    read = api.client.get(
        f"/v1/projects/{shop.project_id}/dimensions", headers=stranger.owner.headers
    )
    assert_error(read, 404, "not_found")
    answer = get(api, stranger.owner, "breakdown", project_id=shop.project_id, property="plan")
    assert_error(answer, 404, "not_found")
    filtered = get(api, stranger.owner, "counts", project_id=shop.project_id, where="plan:pro")
    assert_error(filtered, 404, "not_found")


@pytest.mark.parametrize(
    ("paths", "named"),
    [
        ([f"p{n}" for n in range(11)], "at most 10"),
        (["plan", "plan"], "twice"),
        (["plan..x"], "plan..x"),
        (["a b"], "a b"),
        ([""], "path"),
        (["x" * 201], "200"),
        ([7], "properties"),
        ("plan", "properties"),
    ],
)
def test_bad_declarations_are_400_and_change_nothing(
    api: Api, shop: Tenant, paths: Any, named: str
) -> None:
    error = assert_error(declare(api, shop.owner, shop.project_id, paths), 400)

    assert named in error["message"]
    read = api.client.get(f"/v1/projects/{shop.project_id}/dimensions", headers=shop.owner.headers)
    assert read.json()["properties"] == PATHS


@pytest.mark.parametrize(
    ("route", "params", "named"),
    [
        ("breakdown", {"property": "country"}, "country"),
        ("breakdown", {}, "property"),
        ("breakdown", {"property": "plan", "limit": 0}, "limit"),
        ("breakdown", {"property": "plan", "limit": 101}, "limit"),
        ("breakdown", {"property": "plan", "where": "plan"}, "colon"),
        ("counts", {"where": "country:fr"}, "country"),
        ("users", {"where": "nocolon"}, "colon"),
    ],
)
def test_bad_dimension_queries_are_400_naming_the_parameter(
    api: Api, shop: Tenant, route: str, params: dict[str, Any], named: str
) -> None:
    error = assert_error(get(api, shop.owner, route, project_id=shop.project_id, **params), 400)

    assert named in error["message"]


def test_more_than_ten_filters_are_400(api: Api, shop: Tenant) -> None:
    params = [("project_id", shop.project_id)] + [("where", "plan:pro")] * 11
    answer = api.client.get("/v1/analytics/counts", params=params, headers=shop.owner.headers)

    assert "10" in assert_error(answer, 400, "invalid_query")["message"]


def test_no_other_parameter_may_repeat(api: Api, shop: Tenant) -> None:
    params = [("project_id", shop.project_id), ("property", "plan"), ("property", "plan")]
    answer = api.client.get("/v1/analytics/breakdown", params=params, headers=shop.owner.headers)

    assert_error(answer, 400, "invalid_query")


def test_a_filtered_breakdown_leaves_out_events_stored_before_its_dimension(
    api: Api, shop: Tenant
) -> None:
    """Events stored before `country` was declared have no value of it kept: a filtered
    breakdown by it counts them nowhere, as the unfiltered one does (until a rebuild)."""
    declare(api, shop.owner, shop.project_id, [*PATHS, "country"])

    filtered = get(
        api,
        shop.owner,
        "breakdown",
        project_id=shop.project_id,
        property="country",
        where="plan:pro",
    ).json()
    plain = get(api, shop.owner, "breakdown", project_id=shop.project_id, property="country")

    assert (filtered["values"], filtered["other"]) == ([], {"count": 0})
    assert (plain.json()["values"], plain.json()["other"]) == ([], {"count": 0})
