"""The audit log over HTTP, in both profiles: every privileged action recorded once with its
actor, target and request; refused actions recorded not at all; roles, tenants, bad input."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.http.support import PASSWORD, Account, Api, assert_error


def audit_log(api: Api, account: Account, **params: Any) -> httpx.Response:
    return api.client.get("/v1/audit-log", params=params, headers=account.headers)


def entries(api: Api, account: Account, **params: Any) -> list[dict[str, Any]]:
    response = audit_log(api, account, limit=1000, **params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["entries"]
    return found


def eventually_entries(api: Api, account: Account, action: str, count: int) -> list[dict[str, Any]]:
    """The entries of ``action`` once there are ``count`` (a failed login is recorded just
    after its answer)."""
    deadline = time.monotonic() + 10
    while True:
        found = entries(api, account, action=action)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_every_privileged_action_is_recorded_with_who_what_and_where(either: Api) -> None:
    api = either
    owner = api.signup(workspace="Acme")
    project_id = api.create_project(owner, "Website")
    key = api.create_key(owner, project_id, "server")
    dimensions = api.client.put(
        f"/v1/projects/{project_id}/dimensions",
        json={"properties": ["plan"]},
        headers={**owner.headers, "X-Request-ID": "dims-1"},
    )
    assert dimensions.status_code == 200
    member = api.member(owner, "viewer")
    changed = api.client.patch(
        f"/v1/members/{member.user_id}", json={"role": "admin"}, headers=owner.headers
    )
    assert changed.status_code == 200
    assert api.client.delete(f"/v1/api-keys/{key['id']}", headers=owner.headers).status_code == 204
    removed = api.client.delete(f"/v1/members/{member.user_id}", headers=owner.headers)
    assert removed.status_code == 204
    assert api.client.delete(f"/v1/projects/{project_id}", headers=owner.headers).status_code == 204
    assert api.login(owner.email, owner.workspace_id).status_code == 200
    wrong = api.client.post("/v1/auth/login", json={"email": owner.email, "password": "nope" * 3})
    assert wrong.status_code == 401

    assert len(eventually_entries(api, owner, "login.failed", 1)) == 1
    log = entries(api, owner)
    actions = [e["action"] for e in reversed(log)]
    assert actions == [
        "signup",
        "project.created",
        "api_key.created",
        "project.dimensions_changed",
        "member.invited",
        "member.joined",
        # The member signs in to the workspace.
        "login.succeeded",
        "member.role_changed",
        "api_key.revoked",
        "member.removed",
        "project.deleted",
        "login.succeeded",
        "login.failed",
    ]
    # The latest entry of each action.
    by_action = {e["action"]: e for e in reversed(log)}
    assert by_action["signup"]["actor"] == {"type": "user", "id": owner.user_id}
    assert by_action["signup"]["target"] == {"type": "workspace", "id": owner.workspace_id}
    assert by_action["api_key.created"]["target"] == {"type": "api_key", "id": key["id"]}
    assert by_action["api_key.created"]["details"] == {
        "project_id": project_id,
        "name": "server",
        "prefix": key["prefix"],
    }
    assert key["key"] not in str(log), "no secret is ever recorded"
    assert by_action["project.dimensions_changed"]["details"] == {"properties": ["plan"]}
    assert by_action["project.dimensions_changed"]["request_id"] == "dims-1"
    assert by_action["member.joined"]["actor"]["id"] == member.user_id
    assert by_action["member.role_changed"]["details"] == {"role": "admin"}
    assert by_action["member.removed"]["target"] == {"type": "user", "id": member.user_id}
    assert by_action["login.failed"]["details"] == {"reason": "wrong_password"}
    for entry in log:
        # The test client's address, and the request id the server echoed.
        assert entry["client_address"] == "testclient", entry
        assert entry["request_id"], entry
    # Newest first, each entry once.
    assert [e["at"] for e in log] == sorted((e["at"] for e in log), reverse=True)
    assert len({e["id"] for e in log}) == len(log)


def test_the_request_id_is_the_one_echoed_to_the_client(api: Api) -> None:
    owner = api.signup()
    created = api.client.post("/v1/projects", json={"name": "Shop"}, headers=owner.headers)

    [entry] = entries(api, owner, action="project.created")
    assert entry["request_id"] == created.headers["x-request-id"]


def test_refused_actions_record_nothing(api: Api) -> None:
    owner = api.signup()
    viewer = api.member(owner, "viewer")
    before = entries(api, owner)

    assert_error(api.client.post("/v1/projects", json={"name": "X"}, headers=viewer.headers), 403)
    assert_error(api.client.delete("/v1/api-keys/nope", headers=owner.headers), 404)
    assert_error(api.client.delete("/v1/projects/nope", headers=owner.headers), 404)
    assert_error(api.client.post("/v1/projects", json={"name": ""}, headers=owner.headers), 400)
    assert_error(
        api.client.patch("/v1/members/nope", json={"role": "admin"}, headers=owner.headers), 404
    )
    # The workspace's only owner may not leave it.
    assert_error(api.client.delete(f"/v1/members/{owner.user_id}", headers=owner.headers), 409)
    # A login with an email that has no account has no workspace to be recorded in.
    unknown = api.client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert unknown.status_code == 401

    assert entries(api, owner) == before


def test_admins_read_it_viewers_do_not(api: Api) -> None:
    owner = api.signup()
    admin = api.member(owner, "admin")
    viewer = api.member(owner, "viewer")

    assert [e["action"] for e in entries(api, admin, action="member.joined")] == [
        "member.joined",
        "member.joined",
    ]
    assert_error(audit_log(api, viewer), 403, "forbidden")
    assert_error(api.client.get("/v1/audit-log"), 401)


def test_another_workspace_sees_none_of_it(either: Api) -> None:
    acme = either.signup(workspace="Acme")
    either.create_project(acme)
    globex = either.signup(workspace="Globex")

    theirs = entries(either, globex)
    assert [e["action"] for e in theirs] == ["signup"]
    assert theirs[0]["actor"]["id"] == globex.user_id
    assert all(e["actor"]["id"] == acme.user_id for e in entries(either, acme))


def test_pages_follow_the_cursor_within_one_filter(api: Api) -> None:
    owner = api.signup()
    for n in range(7):
        api.create_project(owner, f"P{n}")
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = audit_log(api, owner, action="project.created", limit=3, cursor=cursor).json()
        assert len(page["entries"]) <= 3
        seen += page["entries"]
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert [e["details"]["name"] for e in seen] == [f"P{n}" for n in reversed(range(7))]
    first = audit_log(api, owner, action="project.created", limit=3).json()
    # A cursor of one filter pages no other listing.
    assert_error(audit_log(api, owner, cursor=first["next_cursor"]), 400, "invalid_cursor")
    other = api.signup(workspace="Globex")
    assert_error(
        audit_log(api, other, action="project.created", cursor=first["next_cursor"]),
        400,
        "invalid_cursor",
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"action": "project.exploded"}, "action"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_queries_are_400_naming_the_parameter(
    api: Api, params: dict[str, Any], named: str
) -> None:
    owner = api.signup()
    body = assert_error(audit_log(api, owner, **params), 400)
    assert named in body["message"]
