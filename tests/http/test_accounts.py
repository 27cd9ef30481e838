"""Sign-up, login, projects, API keys and members over HTTP, as the public contract describes them."""

from __future__ import annotations

import jwt
import pytest

from tests.http.support import PASSWORD, Api, Tenant, assert_error, unique_email


def role_in(token: str) -> str:
    """The role an access token grants (read without checking the signature)."""
    return str(jwt.decode(token, options={"verify_signature": False})["role"])


# --- sign-up -----------------------------------------------------------------------------------


def test_signup_creates_an_owner_of_a_new_workspace(api: Api) -> None:
    """Sign-up answers 201 with the user, the new workspace and a bearer token that works."""
    response = api.client.post(
        "/v1/auth/signup",
        json={"email": unique_email(), "password": PASSWORD, "workspace": "Acme"},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert {"user_id", "workspace_id", "access_token", "token_type"} <= set(body)
    assert body["token_type"] == "bearer"
    assert body["user_id"]
    assert body["workspace_id"]
    assert role_in(body["access_token"]) == "owner"
    projects = api.client.get(
        "/v1/projects", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert projects.status_code == 200
    assert projects.json() == {"projects": []}


def test_signup_with_a_taken_email_is_a_conflict(api: Api) -> None:
    """A second sign-up with the same email (in any letter case) answers 409."""
    email = unique_email()
    api.signup(email)

    for again in (email, email.upper()):
        response = api.client.post(
            "/v1/auth/signup", json={"email": again, "password": PASSWORD, "workspace": "Other"}
        )
        assert_error(response, 409)


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-email", "password": PASSWORD, "workspace": "Acme"},
        {"email": "a@b", "password": PASSWORD, "workspace": "Acme"},
        {"email": "short@example.com", "password": "1234567", "workspace": "Acme"},
        {"email": "blank@example.com", "password": PASSWORD, "workspace": "  "},
    ],
    ids=["no-at", "no-domain-dot", "short-password", "blank-workspace"],
)
def test_signup_rejects_bad_input(api: Api, payload: dict[str, str]) -> None:
    """A bad email, a password under 8 characters or a blank workspace name answers 400."""
    assert_error(api.client.post("/v1/auth/signup", json=payload), 400)


@pytest.mark.parametrize("missing", ["email", "password", "workspace"])
def test_signup_with_a_missing_field_is_a_bad_request(api: Api, missing: str) -> None:
    """A sign-up without one of its three fields answers 400."""
    payload = {"email": unique_email(), "password": PASSWORD, "workspace": "Acme"}
    del payload[missing]

    assert_error(api.client.post("/v1/auth/signup", json=payload), 400)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'"text"', b"null"],
    ids=["empty", "broken", "array", "string", "null"],
)
def test_signup_with_a_body_that_is_not_an_object_is_a_bad_request(api: Api, body: bytes) -> None:
    """A sign-up body that is not a JSON object answers 400, never 500."""
    response = api.client.post(
        "/v1/auth/signup", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400)


# --- login -------------------------------------------------------------------------------------


def test_login_gives_a_working_access_token(api: Api) -> None:
    """Login with the right password answers 200 with a bearer token that works."""
    owner = api.signup()

    response = api.login(owner.email)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] > 0
    projects = api.client.get(
        "/v1/projects", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert projects.status_code == 200


def test_login_with_a_wrong_password_is_refused(api: Api) -> None:
    """A wrong password or an unknown email answers 401."""
    owner = api.signup()

    wrong = api.client.post(
        "/v1/auth/login", json={"email": owner.email, "password": "wrong password"}
    )
    unknown = api.client.post(
        "/v1/auth/login", json={"email": unique_email(), "password": PASSWORD}
    )

    assert_error(wrong, 401)
    assert_error(unknown, 401)
    assert wrong.json()["error"]["code"] == unknown.json()["error"]["code"]


def test_login_into_a_workspace_the_user_is_not_in_is_refused(api: Api) -> None:
    """Login naming a workspace the user has no membership of answers 401."""
    stranger = api.signup()
    other = api.signup()

    assert_error(api.login(stranger.email, other.workspace_id), 401)
    assert_error(api.login(stranger.email, "no-such-workspace"), 401)


@pytest.mark.parametrize("role", ["owner", "admin", "viewer"])
def test_login_into_a_workspace_gives_the_members_role(api: Api, role: str) -> None:
    """After accepting an invitation, login with that workspace_id gives the member's role."""
    owner = api.signup()
    user = api.signup(email=unique_email(role), workspace="Their own")
    api.accept(user, api.invite(owner, user.email, role))

    there = api.login(user.email, owner.workspace_id)
    home = api.login(user.email, user.workspace_id)

    assert there.status_code == 200, there.text
    assert role_in(there.json()["access_token"]) == role
    assert (
        jwt.decode(there.json()["access_token"], options={"verify_signature": False})["ws"]
        == owner.workspace_id
    )
    assert role_in(home.json()["access_token"]) == "owner"


def test_login_with_a_missing_field_is_a_bad_request(api: Api) -> None:
    """A login without a password answers 400."""
    assert_error(api.client.post("/v1/auth/login", json={"email": unique_email()}), 400)


# --- projects ----------------------------------------------------------------------------------


def test_projects_are_created_and_listed(api: Api) -> None:
    """A created project answers 201 {id, name} and shows up in the workspace's list only."""
    owner = api.signup()
    other = api.signup()

    created = api.client.post("/v1/projects", json={"name": "Website"}, headers=owner.headers)
    second = api.create_project(owner, "Mobile")

    assert created.status_code == 201, created.text
    project = created.json()
    assert project["name"] == "Website"
    assert project["id"]
    listed = api.client.get("/v1/projects", headers=owner.headers)
    assert listed.status_code == 200
    assert {(p["id"], p["name"]) for p in listed.json()["projects"]} == {
        (project["id"], "Website"),
        (second, "Mobile"),
    }
    assert api.client.get("/v1/projects", headers=other.headers).json() == {"projects": []}


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "   "}, {"name": 5}])
def test_a_project_needs_a_name(api: Api, payload: dict[str, object]) -> None:
    """A project without a usable name answers 400."""
    owner = api.signup()
    assert_error(api.client.post("/v1/projects", json=payload, headers=owner.headers), 400)


def test_account_routes_need_an_access_token(api: Api, tenant: Tenant) -> None:
    """Projects, keys and members without a valid access token answer 401 and change nothing."""
    keys = f"/v1/projects/{tenant.project_id}/api-keys"
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": tenant.api_key}):
        assert_error(api.client.get("/v1/projects", headers=headers), 401)
        assert_error(api.client.post("/v1/projects", json={"name": "x"}, headers=headers), 401)
        assert_error(api.client.get(keys, headers=headers), 401)
        assert_error(api.client.post(keys, json={"name": "x"}, headers=headers), 401)
        assert_error(api.client.delete(f"/v1/api-keys/{tenant.key_id}", headers=headers), 401)
        member = {"email": tenant.owner.email, "role": "viewer"}
        assert_error(api.client.post("/v1/members", json=member, headers=headers), 401)
    assert len(api.client.get("/v1/projects", headers=tenant.headers).json()["projects"]) == 1
    assert api.ingest(tenant, {"type": "still works"}).status_code == 202


# --- API keys ----------------------------------------------------------------------------------


def test_an_api_key_secret_is_shown_once(api: Api) -> None:
    """Creating a key answers 201 with the secret; its prefix is the key's start; lists hide it."""
    owner = api.signup()
    project_id = api.create_project(owner)

    created = api.client.post(
        f"/v1/projects/{project_id}/api-keys", json={"name": "server"}, headers=owner.headers
    )

    assert created.status_code == 201, created.text
    key = created.json()
    assert {"id", "key", "prefix", "project_id"} <= set(key)
    assert key["project_id"] == project_id
    assert key["key"].startswith(key["prefix"])
    assert len(key["prefix"]) < len(key["key"])
    listed = api.client.get(f"/v1/projects/{project_id}/api-keys", headers=owner.headers)
    assert listed.status_code == 200
    (item,) = listed.json()["api_keys"]
    assert {"id", "name", "prefix", "created_at", "revoked_at"} <= set(item)
    assert item["id"] == key["id"]
    assert item["name"] == "server"
    assert item["prefix"] == key["prefix"]
    assert item["revoked_at"] is None
    assert "key" not in item
    assert key["key"] not in listed.text
    assert "hash" not in listed.text


def test_api_keys_are_listed_per_project(api: Api) -> None:
    """A project's key list holds its own keys only."""
    owner = api.signup()
    website = api.create_project(owner, "Website")
    mobile = api.create_project(owner, "Mobile")
    first = api.create_key(owner, website, "one")
    second = api.create_key(owner, website, "two")
    api.create_key(owner, mobile, "three")

    listed = api.client.get(f"/v1/projects/{website}/api-keys", headers=owner.headers)

    assert {k["id"] for k in listed.json()["api_keys"]} == {first["id"], second["id"]}


def test_an_api_key_for_an_unknown_project_is_not_found(api: Api) -> None:
    """Creating or listing keys of a project that does not exist answers 404."""
    owner = api.signup()
    path = "/v1/projects/00000000-0000-0000-0000-000000000000/api-keys"

    assert_error(api.client.post(path, json={"name": "k"}, headers=owner.headers), 404)
    assert_error(api.client.get(path, headers=owner.headers), 404)


def test_a_deleted_api_key_is_refused_at_once(api: Api, tenant: Tenant) -> None:
    """DELETE answers 204, and the key (already used, so cached) is refused with 401 right after."""
    assert api.ingest(tenant, {"type": "before"}).status_code == 202

    deleted = api.client.delete(f"/v1/api-keys/{tenant.key_id}", headers=tenant.headers)

    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert_error(api.ingest(tenant, {"type": "after"}), 401, "revoked_api_key")
    bearer_form = api.client.post(
        "/v1/ingest", json={"type": "after"}, headers={"Authorization": f"Bearer {tenant.api_key}"}
    )
    assert_error(bearer_form, 401, "revoked_api_key")
    listed = api.client.get(f"/v1/projects/{tenant.project_id}/api-keys", headers=tenant.headers)
    assert listed.json()["api_keys"][0]["revoked_at"] is not None
    assert [e["type"] for e in api.all_events(tenant.owner, tenant.project_id)] == ["before"]


def test_deleting_an_unknown_api_key_is_not_found(api: Api) -> None:
    """DELETE of a key id that does not exist answers 404."""
    owner = api.signup()
    assert_error(api.client.delete("/v1/api-keys/no-such-key", headers=owner.headers), 404)


def test_other_keys_keep_working_after_one_is_deleted(api: Api, tenant: Tenant) -> None:
    """Revoking one key leaves the project's other keys working."""
    spare = api.create_key(tenant.owner, tenant.project_id, "spare")

    deleted = api.client.delete(f"/v1/api-keys/{tenant.key_id}", headers=tenant.headers)

    assert deleted.status_code == 204, deleted.text
    assert_error(api.ingest(tenant, {"type": "x"}), 401, "revoked_api_key")
    response = api.client.post(
        "/v1/ingest", json={"type": "x"}, headers={"X-API-Key": spare["key"]}
    )
    assert response.status_code == 202, response.text
    listed = api.client.get(f"/v1/projects/{tenant.project_id}/api-keys", headers=tenant.headers)
    revoked_at = {k["id"]: k["revoked_at"] for k in listed.json()["api_keys"]}
    assert revoked_at[tenant.key_id] is not None
    assert revoked_at[spare["id"]] is None


# --- members and roles -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "viewer", "owner"])
def test_the_owner_invites_and_the_invitee_accepts(api: Api, role: str) -> None:
    """The owner invites an email to a role (201, a one-time token); nobody is a member until
    the person accepts it signed in as that email (200)."""
    owner = api.signup()
    user = api.signup(email=unique_email(role))

    response = api.client.post(
        "/v1/members", json={"email": user.email.upper(), "role": role}, headers=owner.headers
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"invitation_id", "email", "role", "token", "expires_at"}
    assert (body["email"], body["role"]) == (user.email, role)
    assert body["expires_at"].endswith("Z")
    assert_error(api.login(user.email, owner.workspace_id), 401)  # not a member yet

    accepted = api.accept(user, body["token"]).json()
    assert accepted == {"workspace_id": owner.workspace_id, "user_id": user.user_id, "role": role}
    assert role_in(api.login(user.email, owner.workspace_id).json()["access_token"]) == role
    # One time only.
    again = api.client.post(f"/v1/invitations/{body['token']}/accept", headers=user.headers)
    assert_error(again, 404, "not_found")


def test_an_invitation_reveals_nothing_about_the_email(api: Api) -> None:
    """An email with an account and one without get answers of the same shape and status."""
    owner = api.signup()
    user = api.signup()
    answers = [
        api.client.post(
            "/v1/members", json={"email": email, "role": "viewer"}, headers=owner.headers
        )
        for email in (user.email, unique_email("nobody"))
    ]
    assert [a.status_code for a in answers] == [201, 201]
    assert [sorted(a.json()) for a in answers] == [sorted(answers[0].json())] * 2
    assert [len(a.json()["token"]) for a in answers] == [len(answers[0].json()["token"])] * 2


def test_only_the_invited_email_may_accept(api: Api) -> None:
    """Someone else holding the token is refused (403) and becomes no member."""
    owner = api.signup()
    invited, intruder = api.signup(), api.signup()
    token = api.invite(owner, invited.email, "admin")
    refused = api.client.post(f"/v1/invitations/{token}/accept", headers=intruder.headers)
    assert_error(refused, 403, "forbidden")
    assert_error(api.login(intruder.email, owner.workspace_id), 401)
    api.accept(invited, token)


@pytest.mark.parametrize("token", ["garbage", "no-such-ws.abc", ".abc", "x" * 300, "%00", "a.b.c"])
def test_an_unknown_invitation_token_is_not_found(api: Api, token: str) -> None:
    user = api.signup()
    response = api.client.post(f"/v1/invitations/{token}/accept", headers=user.headers)
    assert response.status_code in (400, 404), response.text
    assert_error(response, response.status_code)


def test_accepting_needs_an_access_token(api: Api) -> None:
    owner = api.signup()
    user = api.signup()
    token = api.invite(owner, user.email, "viewer")
    for headers in ({}, {"Authorization": "Bearer nope"}):
        assert_error(api.client.post(f"/v1/invitations/{token}/accept", headers=headers), 401)
    api.accept(user, token)


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_only_the_owner_invites(api: Api, role: str) -> None:
    """An admin or a viewer inviting gets 403 and no invitation exists."""
    owner = api.signup()
    member = api.member(owner, role)
    newcomer = api.signup()

    response = api.client.post(
        "/v1/members", json={"email": newcomer.email, "role": "viewer"}, headers=member.headers
    )

    assert_error(response, 403)
    assert_error(api.login(newcomer.email, owner.workspace_id), 401)


def test_accepting_as_a_member_already_is_a_conflict(api: Api) -> None:
    """Someone who is a member already (or the owner themself) accepting answers 409."""
    owner = api.signup()
    member = api.member(owner, "viewer")

    again = api.client.post(
        f"/v1/invitations/{api.invite(owner, member.email, 'admin')}/accept",
        headers=member.headers,
    )
    own = api.login(owner.email, owner.workspace_id).json()["access_token"]
    itself = api.client.post(
        f"/v1/invitations/{api.invite(owner, owner.email, 'admin')}/accept",
        headers={"Authorization": f"Bearer {own}"},
    )

    assert_error(again, 409, "already_member")
    assert_error(itself, 409, "already_member")
    assert role_in(api.login(member.email, owner.workspace_id).json()["access_token"]) == "viewer"


@pytest.mark.parametrize(
    "payload",
    [{"role": "king"}, {"role": ""}, {"role": None}, {}],
    ids=["unknown", "empty", "null", "missing"],
)
def test_inviting_with_a_bad_role_is_a_bad_request(api: Api, payload: dict[str, object]) -> None:
    """A role other than owner, admin or viewer answers 400."""
    owner = api.signup()
    user = api.signup()
    response = api.client.post(
        "/v1/members", json={"email": user.email, **payload}, headers=owner.headers
    )
    assert_error(response, 400)


def test_an_admin_manages_projects_and_keys(api: Api, tenant: Tenant) -> None:
    """An admin creates projects and keys, lists keys and deletes keys."""
    admin = api.member(tenant.owner, "admin")

    project_id = api.create_project(admin, "Admin's")
    key = api.create_key(admin, tenant.project_id)
    listed = api.client.get(f"/v1/projects/{tenant.project_id}/api-keys", headers=admin.headers)
    deleted = api.client.delete(f"/v1/api-keys/{key['id']}", headers=admin.headers)

    projects = api.client.get("/v1/projects", headers=tenant.headers).json()["projects"]
    assert project_id in {p["id"] for p in projects}
    assert listed.status_code == 200
    assert {k["id"] for k in listed.json()["api_keys"]} == {tenant.key_id, key["id"]}
    assert deleted.status_code == 204, deleted.text
    refused = api.client.post("/v1/ingest", json={"type": "x"}, headers={"X-API-Key": key["key"]})
    assert_error(refused, 401, "revoked_api_key")
    after = api.client.get(f"/v1/projects/{tenant.project_id}/api-keys", headers=admin.headers)
    revoked_at = {k["id"]: k["revoked_at"] for k in after.json()["api_keys"]}
    assert revoked_at[key["id"]] is not None
    assert revoked_at[tenant.key_id] is None


def test_a_viewer_reads_but_does_not_manage(api: Api, tenant: Tenant) -> None:
    """A viewer lists projects and reads analytics and events, but gets 403 managing anything."""
    viewer = api.member(tenant.owner, "viewer")
    api.ingest(tenant, {"type": "signup"})
    project_path = f"/v1/projects/{tenant.project_id}/api-keys"

    projects = api.client.get("/v1/projects", headers=viewer.headers)
    counts = api.counts(viewer, tenant.project_id)
    types = api.client.get(
        "/v1/analytics/event-types",
        params={"project_id": tenant.project_id},
        headers=viewer.headers,
    )
    events = api.events(viewer, tenant.project_id)

    assert [p["id"] for p in projects.json()["projects"]] == [tenant.project_id]
    assert counts.json()["total"] == 1
    assert types.json()["event_types"] == [{"event_type": "signup", "count": 1}]
    assert [e["type"] for e in events.json()["events"]] == ["signup"]
    assert_error(api.client.post("/v1/projects", json={"name": "x"}, headers=viewer.headers), 403)
    assert_error(api.client.post(project_path, json={"name": "x"}, headers=viewer.headers), 403)
    assert_error(api.client.get(project_path, headers=viewer.headers), 403)
    assert_error(api.client.delete(f"/v1/api-keys/{tenant.key_id}", headers=viewer.headers), 403)
    assert api.ingest(tenant, {"type": "still works"}).status_code == 202
    owner_view = api.client.get("/v1/projects", headers=tenant.headers).json()["projects"]
    assert len(owner_view) == 1
    assert len(api.client.get(project_path, headers=tenant.headers).json()["api_keys"]) == 1
