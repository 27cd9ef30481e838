"""Members over HTTP: listed by any member, changed and removed by the owner, left by oneself; the
last owner stays; a removed or demoted member's token loses the removed rights."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventcore.adapters.security import JwtCodec
from eventcore.entrypoints.settings import jwt_secret
from eventcore.tenancy import Principal, Role
from tests.http.support import Account, Api, ApiFactory, assert_error, profile_settings

MEMBERSHIP_CACHE_SECONDS = 1.0


def members(api: Api, account: Account) -> list[dict[str, Any]]:
    response = api.client.get("/v1/members", headers=account.headers)
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["members"]
    return listed


def roles(api: Api, account: Account) -> dict[str, str]:
    return {m["user_id"]: m["role"] for m in members(api, account)}


def test_any_member_lists_the_members(either: Api) -> None:
    """Every role sees every member: user id, email, role and when they joined, oldest first."""
    owner = either.signup()
    admin = either.member(owner, "admin")
    viewer = either.member(owner, "viewer")
    for account in (owner, admin, viewer):
        listed = members(either, account)
        assert [(m["user_id"], m["email"], m["role"]) for m in listed] == [
            (owner.user_id, owner.email, "owner"),
            (admin.user_id, admin.email, "admin"),
            (viewer.user_id, viewer.email, "viewer"),
        ]
        assert all(m["joined_at"].endswith("Z") for m in listed)


def test_members_of_another_workspace_are_not_listed(either: Api) -> None:
    owner = either.signup()
    either.member(owner, "viewer")
    stranger = either.signup()
    assert [m["user_id"] for m in members(either, stranger)] == [stranger.user_id]


@pytest.mark.parametrize("role", ["owner", "admin", "viewer"])
def test_the_owner_changes_a_role(either: Api, role: str) -> None:
    owner = either.signup()
    member = either.member(owner, "viewer" if role != "viewer" else "admin")
    response = either.client.patch(
        f"/v1/members/{member.user_id}", json={"role": role}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "workspace_id": owner.workspace_id,
        "user_id": member.user_id,
        "role": role,
    }
    assert roles(either, owner)[member.user_id] == role


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_only_the_owner_changes_roles_or_removes_others(either: Api, role: str) -> None:
    """An admin or viewer changing a role or removing someone else gets 403; nothing changes."""
    owner = either.signup()
    actor = either.member(owner, role)
    other = either.member(owner, "viewer")
    before = roles(either, owner)
    for target in (other, owner):
        assert_error(
            either.client.patch(
                f"/v1/members/{target.user_id}", json={"role": "owner"}, headers=actor.headers
            ),
            403,
            "forbidden",
        )
        assert_error(
            either.client.delete(f"/v1/members/{target.user_id}", headers=actor.headers),
            403,
            "forbidden",
        )
    assert roles(either, owner) == before


def test_the_last_owner_can_be_neither_demoted_nor_removed(either: Api) -> None:
    owner = either.signup()
    either.member(owner, "admin")
    for response in (
        either.client.patch(
            f"/v1/members/{owner.user_id}", json={"role": "admin"}, headers=owner.headers
        ),
        either.client.delete(f"/v1/members/{owner.user_id}", headers=owner.headers),
    ):
        error = assert_error(response, 409, "last_owner")
        assert "owner" in error["message"]
    assert roles(either, owner)[owner.user_id] == "owner"


def test_an_owner_may_step_down_once_another_owner_exists(either: Api) -> None:
    owner = either.signup()
    second = either.member(owner, "admin")
    promote = either.client.patch(
        f"/v1/members/{second.user_id}", json={"role": "owner"}, headers=owner.headers
    )
    assert promote.status_code == 200, promote.text
    demote = either.client.patch(
        f"/v1/members/{owner.user_id}", json={"role": "viewer"}, headers=owner.headers
    )
    assert demote.status_code == 200, demote.text
    # Now the second is the only owner: it cannot leave, and the first (a viewer) cannot act.
    assert_error(
        either.client.delete(f"/v1/members/{second.user_id}", headers=second.headers),
        409,
        "last_owner",
    )
    assert roles(either, second) == {owner.user_id: "viewer", second.user_id: "owner"}


def test_the_owner_removes_a_member_whose_token_stops_working(either: Api) -> None:
    owner = either.signup()
    member = either.member(owner, "admin")
    assert either.client.get("/v1/projects", headers=member.headers).status_code == 200
    removed = either.client.delete(f"/v1/members/{member.user_id}", headers=owner.headers)
    assert removed.status_code == 204, removed.text
    assert member.user_id not in roles(either, owner)
    # Removed in this process: refused at once, on every route that takes an access token.
    for response in (
        either.client.get("/v1/projects", headers=member.headers),
        either.client.get("/v1/members", headers=member.headers),
        either.client.post("/v1/projects", json={"name": "x"}, headers=member.headers),
    ):
        assert_error(response, 401, "invalid_token")
    # Logging in to that workspace is refused too; their own workspace still works.
    assert either.login(member.email, owner.workspace_id).status_code == 401


def test_a_member_leaves_by_removing_itself(either: Api) -> None:
    owner = either.signup()
    viewer = either.member(owner, "viewer")
    left = either.client.delete(f"/v1/members/{viewer.user_id}", headers=viewer.headers)
    assert left.status_code == 204, left.text
    assert viewer.user_id not in roles(either, owner)
    assert_error(either.client.get("/v1/members", headers=viewer.headers), 401, "invalid_token")


def test_a_demoted_member_loses_the_rights_at_once_here(either: Api) -> None:
    owner = either.signup()
    admin = either.member(owner, "admin")
    created = either.client.post("/v1/projects", json={"name": "a"}, headers=admin.headers)
    assert created.status_code == 201, created.text
    either.client.patch(
        f"/v1/members/{admin.user_id}", json={"role": "viewer"}, headers=owner.headers
    ).raise_for_status()
    assert_error(
        either.client.post("/v1/projects", json={"name": "b"}, headers=admin.headers),
        403,
        "forbidden",
    )
    # Still a member: reading goes on.
    assert either.client.get("/v1/projects", headers=admin.headers).status_code == 200


@pytest.mark.parametrize(
    "profile", ["embedded", pytest.param("shared", marks=pytest.mark.integration)]
)
def test_another_process_sees_a_removal_within_a_second(
    make_api: ApiFactory, tmp_path: Path, profile: str
) -> None:
    """Two API processes on one store: a member removed through one is refused by the other
    once the other's membership cache entry (MEMBERSHIP_CACHE_SECONDS) has run out."""
    with profile_settings(profile) as env:
        here = make_api(env=env, data_dir=tmp_path / "shared-data")
        there = make_api(env=env, data_dir=tmp_path / "shared-data")
        owner = here.signup()
        member = here.member(owner, "admin")
        # The other process reads the membership (and remembers it).
        assert there.client.get("/v1/projects", headers=member.headers).status_code == 200
        here.client.delete(
            f"/v1/members/{member.user_id}", headers=owner.headers
        ).raise_for_status()
        time.sleep(MEMBERSHIP_CACHE_SECONDS + 0.2)
        assert_error(there.client.get("/v1/projects", headers=member.headers), 401, "invalid_token")


def test_unknown_or_foreign_members_are_not_found(either: Api) -> None:
    """A user id that is no member here, or a member of another workspace, answers 404."""
    owner = either.signup()
    stranger = either.signup()
    for user_id in ("no-such-user", stranger.user_id):
        assert_error(
            either.client.patch(
                f"/v1/members/{user_id}", json={"role": "viewer"}, headers=owner.headers
            ),
            404,
            "not_found",
        )
        assert_error(
            either.client.delete(f"/v1/members/{user_id}", headers=owner.headers),
            404,
            "not_found",
        )
    assert roles(either, stranger) == {stranger.user_id: "owner"}


@pytest.mark.parametrize(
    "body",
    [{}, {"role": "god"}, {"role": None}, {"role": 1}, {"role": ["owner"]}, {"rol": "owner"}],
)
def test_a_role_change_needs_a_role(either: Api, body: dict[str, Any]) -> None:
    owner = either.signup()
    member = either.member(owner, "viewer")
    assert_error(
        either.client.patch(f"/v1/members/{member.user_id}", json=body, headers=owner.headers),
        400,
    )
    assert roles(either, owner)[member.user_id] == "viewer"


def test_member_routes_need_an_access_token(either: Api) -> None:
    owner = either.signup()
    member = either.member(owner, "viewer")
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        assert_error(either.client.get("/v1/members", headers=headers), 401)
        assert_error(
            either.client.patch(
                f"/v1/members/{member.user_id}", json={"role": "owner"}, headers=headers
            ),
            401,
        )
        assert_error(either.client.delete(f"/v1/members/{member.user_id}", headers=headers), 401)
    assert roles(either, owner)[member.user_id] == "viewer"


def test_a_signed_token_naming_no_membership_creates_nothing(either: Api) -> None:
    """A token signed with the server's own secret for a user or workspace that does not exist
    is refused (401), and no project comes into being for it."""
    owner = either.signup()
    codec = JwtCodec(jwt_secret(either.settings))
    now = datetime.now(UTC)
    for principal in (
        Principal("no-such-user", owner.workspace_id, Role.OWNER),
        Principal(owner.user_id, "no-such-workspace", Role.OWNER),
    ):
        token, _ = codec.issue(principal, now)
        headers = {"Authorization": f"Bearer {token}"}
        assert_error(
            either.client.post("/v1/projects", json={"name": "orphan"}, headers=headers),
            401,
            "invalid_token",
        )
    listed = either.client.get("/v1/projects", headers=owner.headers).json()["projects"]
    assert [p["name"] for p in listed] == []
