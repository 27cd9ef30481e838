"""Suppressions over HTTP, in both profiles: a deletion request with ``suppress`` refuses the
persons' later events per event (``suppressed``, native and Segment ingest alike, counted in the
metrics) until ``DELETE /v1/suppressions/{user_id}`` lifts it; the listing; roles, tenants and
bad input."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.http.support import Account, Api, Tenant, assert_error
from tests.http.test_deletions import EVENTS, ask, finished, listed_ids
from tests.segment.support import basic, message, post


def suppress(api: Api, tenant: Tenant, *persons: str, account: Account | None = None) -> Any:
    answer = ask(
        api,
        account or tenant.owner,
        {"project_id": tenant.project_id, "user_ids": list(persons), "suppress": True},
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def lift(api: Api, account: Account, project_id: str, person: str, **params: str) -> httpx.Response:
    return api.client.delete(
        f"/v1/suppressions/{person}",
        params={"project_id": project_id, **params},
        headers=account.headers,
    )


def listing(api: Api, account: Account, project_id: str, **params: Any) -> httpx.Response:
    return api.client.get(
        "/v1/suppressions", params={"project_id": project_id, **params}, headers=account.headers
    )


def suppressed_count(api: Api) -> float:
    text = api.client.get("/metrics").text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "eventcore_ingest_events_total"
        and s.labels == {"outcome": "rejected", "reason": "suppressed"}
    )


def test_suppressed_persons_are_deleted_refused_per_event_and_accepted_again_once_lifted(
    either: Api,
) -> None:
    api = either
    tenant = api.tenant()
    assert api.ingest(tenant, {"events": EVENTS}).json()["accepted"] == len(EVENTS)

    made = suppress(api, tenant, "ada")

    assert made["suppress"] is True
    assert finished(api, tenant.owner, made["id"])["events_deleted"] == 4
    counted = suppressed_count(api)
    answer = api.ingest(
        tenant,
        {
            "events": [
                {"id": "n1", "type": "view", "user_id": "ada"},
                {"id": "n2", "type": "view", "user_id": "bob"},
                {"id": "n3", "type": ""},
                {"id": "n4", "type": "view", "anonymous_id": "ada"},
            ]
        },
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (0, "suppressed"),
        (2, "invalid_event"),
        (3, "suppressed"),
    ]
    assert suppressed_count(api) == counted + 2
    # Only suppressed events: a 202 that accepts nothing, not an error.
    alone = api.ingest(tenant, {"id": "n5", "type": "view", "user_id": "ada"})
    assert alone.status_code == 202, alone.text
    assert (alone.json()["accepted"], alone.json()["rejected"][0]["code"]) == (0, "suppressed")
    assert listed_ids(api, tenant) == {"e3", "e5", "n2"}
    listed = listing(api, tenant.owner, tenant.project_id).json()
    assert [(s["user_id"], s["deletion_id"]) for s in listed["suppressions"]] == [
        ("ada", made["id"])
    ]
    assert listed["next_after"] is None

    lifted = lift(api, tenant.owner, tenant.project_id, "ada")

    assert lifted.status_code == 204, lifted.text
    assert lifted.content == b""
    again = api.ingest(tenant, {"id": "n6", "type": "view", "user_id": "ada"}).json()
    assert (again["accepted"], again["rejected"]) == (1, [])
    assert listed_ids(api, tenant) == {"e3", "e5", "n2", "n6"}
    assert listing(api, tenant.owner, tenant.project_id).json()["suppressions"] == []
    assert_error(lift(api, tenant.owner, tenant.project_id, "ada"), 404, "not_found")
    log = api.client.get("/v1/audit-log", headers=tenant.headers).json()["entries"]
    actions = [e["action"] for e in log]
    assert {"suppression.added", "suppression.lifted"} <= set(actions)
    lifted_entry = next(e for e in log if e["action"] == "suppression.lifted")
    assert lifted_entry["target"] == {"type": "project", "id": tenant.project_id}
    assert lifted_entry["details"] == {"user_id": "ada"}


def test_segment_messages_of_a_suppressed_person_are_rejected_by_message_index(
    either: Api,
) -> None:
    api = either
    tenant = api.tenant()
    suppress(api, tenant, "ada")
    sent = [
        message(userId="bob"),
        message(userId="ada"),
        message(userId=None, anonymousId=None),
        message(userId=None, anonymousId="ada"),
    ]

    answer = post(api, {"batch": sent}, headers=basic(tenant.api_key))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["success"], body["accepted"]) == (True, 1)
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (1, "suppressed"),
        (2, "missing_identity"),
        (3, "suppressed"),
    ]
    single = post(
        api, message(userId="ada"), headers=basic(tenant.api_key), path="/v1/track"
    ).json()
    assert (single["accepted"], single["rejected"][0]["code"]) == (0, "suppressed")


def test_admins_may_suppress_list_and_lift_viewers_may_not(api: Api, tenant: Tenant) -> None:
    admin = api.member(tenant.owner, "admin")
    viewer = api.member(tenant.owner, "viewer")
    body = {"project_id": tenant.project_id, "user_ids": ["ada"], "suppress": True}

    assert_error(ask(api, viewer, body), 403, "forbidden")
    assert listing(api, tenant.owner, tenant.project_id).json()["suppressions"] == []
    assert ask(api, admin, body).status_code == 202
    assert_error(listing(api, viewer, tenant.project_id), 403, "forbidden")
    assert_error(lift(api, viewer, tenant.project_id, "ada"), 403, "forbidden")
    assert listing(api, admin, tenant.project_id).json()["suppressions"][0]["user_id"] == "ada"
    assert_error(api.client.get("/v1/suppressions", params={"project_id": tenant.project_id}), 401)
    assert_error(api.client.delete(f"/v1/suppressions/ada?project_id={tenant.project_id}"), 401)
    assert lift(api, admin, tenant.project_id, "ada").status_code == 204


def test_another_workspace_can_neither_suppress_list_nor_lift(either: Api) -> None:
    api = either
    acme, globex = api.tenant("Acme"), api.tenant("Globex")
    suppress(api, acme, "ada")

    assert_error(
        ask(
            api,
            globex.owner,
            {"project_id": acme.project_id, "user_ids": ["bob"], "suppress": True},
        ),
        404,
        "not_found",
    )
    assert_error(listing(api, globex.owner, acme.project_id), 404, "not_found")
    assert_error(lift(api, globex.owner, acme.project_id, "ada"), 404, "not_found")
    # Ada is suppressed in Acme's project only, and still is.
    theirs = api.ingest(globex, {"id": "g1", "type": "view", "user_id": "ada"}).json()
    assert (theirs["accepted"], theirs["rejected"]) == (1, [])
    ours = api.ingest(acme, {"id": "a1", "type": "view", "user_id": "ada"}).json()
    assert ours["rejected"][0]["code"] == "suppressed"
    assert [
        s["user_id"] for s in listing(api, acme.owner, acme.project_id).json()["suppressions"]
    ] == ["ada"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"suppress": True}, "user_ids"),
        ({"suppress": True, "event_ids": ["e1"]}, "user_ids"),
        ({"suppress": True, "start": "2025-03-01T00:00:00Z"}, "user_ids"),
        ({"suppress": True, "user_ids": []}, "user_ids"),
        ({"suppress": "yes", "user_ids": ["ada"]}, "suppress"),
        ({"suppress": True, "user_ids": ["x" * 129]}, "user_ids"),
    ],
)
def test_bad_suppressions_are_400_naming_the_field_and_change_nothing(
    either: Api, change: dict[str, Any], named: str
) -> None:
    api = either
    tenant = api.tenant()
    api.ingest(tenant, {"events": EVENTS})

    body = assert_error(ask(api, tenant.owner, {"project_id": tenant.project_id, **change}), 400)

    assert named in body["message"]
    assert listing(api, tenant.owner, tenant.project_id).json()["suppressions"] == []
    deletions = api.client.get(
        "/v1/deletions", params={"project_id": tenant.project_id}, headers=tenant.headers
    )
    assert deletions.json()["deletions"] == []
    assert len(listed_ids(api, tenant)) == len(EVENTS)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"after": "x" * 129}, "after"),
        ({"cursor": "x"}, "cursor"),
    ],
)
def test_bad_listing_queries_are_400_naming_the_parameter(
    api: Api, tenant: Tenant, params: dict[str, str], named: str
) -> None:
    body = assert_error(listing(api, tenant.owner, tenant.project_id, **params), 400)
    assert named in body["message"]


def test_the_listing_pages_by_person_and_lifting_needs_its_project(
    api: Api, tenant: Tenant
) -> None:
    suppress(api, tenant, *(f"p{n}" for n in range(5)), "with space")
    pages = []
    after: str | None = None
    while True:
        page = listing(
            api, tenant.owner, tenant.project_id, limit=2, **({"after": after} if after else {})
        ).json()
        pages.append([s["user_id"] for s in page["suppressions"]])
        after = page["next_after"]
        if after is None:
            break

    assert pages == [["p0", "p1"], ["p2", "p3"], ["p4", "with space"]]
    assert_error(lift(api, tenant.owner, "no-such-project", "p0"), 404, "not_found")
    missing = api.client.delete("/v1/suppressions/p0", headers=tenant.headers)
    assert "project_id" in assert_error(missing, 400, "invalid_request")["message"]
    assert_error(lift(api, tenant.owner, tenant.project_id, "p0", extra="1"), 400, "invalid_query")
    assert lift(api, tenant.owner, tenant.project_id, "with space").status_code == 204
    assert lift(api, tenant.owner, tenant.project_id, "nobody").status_code == 404


def test_past_the_projects_bound_a_request_is_409_and_stores_nothing(
    api: Api, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound on a project's suppressed persons (100,000; 3 here) is a 409 naming it."""
    monkeypatch.setattr("eventcore.usecases.deletions.MAX_SUPPRESSIONS", 3)
    suppress(api, tenant, "a", "b")

    refused = ask(
        api,
        tenant.owner,
        {"project_id": tenant.project_id, "user_ids": ["c", "d"], "suppress": True},
    )

    assert "3" in assert_error(refused, 409, "too_many_suppressions")["message"]
    listed = listing(api, tenant.owner, tenant.project_id).json()["suppressions"]
    assert [s["user_id"] for s in listed] == ["a", "b"]
    deletions = api.client.get(
        "/v1/deletions", params={"project_id": tenant.project_id}, headers=tenant.headers
    )
    assert len(deletions.json()["deletions"]) == 1


@pytest.mark.parametrize("person", ["a/b", "/edge/", "100%", "a%2Fb", "%2E%2E", "é ?#&=+"])
def test_any_persons_id_can_be_lifted_percent_encoded_in_the_path(
    api: Api, tenant: Tenant, person: str
) -> None:
    """An id is any text: `/`, `%` and the rest are sent percent-encoded and decoded once."""
    suppress(api, tenant, person, "other")

    lifted = lift(api, tenant.owner, tenant.project_id, quote(person, safe=""))

    assert lifted.status_code == 204, lifted.text
    listed = listing(api, tenant.owner, tenant.project_id).json()["suppressions"]
    assert [s["user_id"] for s in listed] == ["other"]
