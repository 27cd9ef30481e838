"""Workspace deletion over HTTP, in both profiles: the owner deletes it by naming it; its keys
and tokens stop working, its data and cached keys are gone, another workspace is untouched;
roles, tenants and bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from tests.http.support import Account, Api, assert_error
from tests.support.redis import REDIS_URL

EVENTS = [{"id": f"e{n}", "type": "view", "user_id": "ada"} for n in range(5)]


def delete(api: Api, account: Account, workspace_id: str, body: Any) -> httpx.Response:
    return api.client.request(
        "DELETE", f"/v1/workspaces/{workspace_id}", json=body, headers=account.headers
    )


def test_the_owner_deletes_the_workspace_and_everything_in_it(either: Api) -> None:
    api = either
    gone, kept = api.tenant("Acme"), api.tenant("Globex")
    for tenant in (gone, kept):
        assert api.ingest(tenant, {"events": EVENTS}).json()["accepted"] == 5
        # An answer cached, where a shared cache holds it.
        assert api.counts(tenant.owner, tenant.project_id).status_code == 200

    answer = delete(api, gone.owner, gone.owner.workspace_id, {"name": "Acme"})

    assert answer.status_code == 204, answer.text
    assert_error(api.ingest(gone, {"events": EVENTS}), 401)
    assert_error(api.client.get("/v1/projects", headers=gone.owner.headers), 401)
    # The owner's account stays, with no workspace to sign in to.
    assert_error(api.login(gone.owner.email), 401)
    # The other workspace has everything.
    assert len(api.all_events(kept.owner, kept.project_id)) == 5
    assert api.ingest(kept, {"events": [{"type": "view"}]}).json()["accepted"] == 1
    prefix = api.settings.redis_prefix
    if api.settings.redis_url:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            assert list(client.scan_iter(match=f"{prefix}:{{{gone.owner.workspace_id}}}:*")) == []
            assert list(client.scan_iter(match=f"{prefix}:{{{kept.owner.workspace_id}}}:*"))
        finally:
            client.close()


def test_a_wrong_name_deletes_nothing(api: Api) -> None:
    tenant = api.tenant("Acme")
    api.ingest(tenant, {"events": EVENTS})

    for wrong in ("acme", "Acme ", "Globex", ""):
        body = assert_error(
            delete(api, tenant.owner, tenant.owner.workspace_id, {"name": wrong}),
            400,
            "confirmation_mismatch",
        )
        assert "name" in body["message"]

    assert len(api.all_events(tenant.owner, tenant.project_id)) == 5


def test_only_the_owner_may_delete_it(api: Api) -> None:
    tenant = api.tenant("Acme")
    admin = api.member(tenant.owner, "admin")
    viewer = api.member(tenant.owner, "viewer")

    for member in (admin, viewer):
        assert_error(
            delete(api, member, tenant.owner.workspace_id, {"name": "Acme"}), 403, "forbidden"
        )
    assert_error(
        api.client.request(
            "DELETE", f"/v1/workspaces/{tenant.owner.workspace_id}", json={"name": "Acme"}
        ),
        401,
    )
    assert api.client.get("/v1/projects", headers=tenant.owner.headers).status_code == 200


def test_another_workspace_is_not_found(either: Api) -> None:
    acme, globex = either.tenant("Acme"), either.tenant("Globex")

    assert_error(
        delete(either, globex.owner, acme.owner.workspace_id, {"name": "Acme"}), 404, "not_found"
    )
    assert either.client.get("/v1/projects", headers=acme.owner.headers).status_code == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [({}, "name"), ({"name": 7}, "name"), ({"name": "Acme", "force": True}, "force")],
)
def test_bad_bodies_are_400_naming_the_field(api: Api, body: Any, named: str) -> None:
    tenant = api.tenant("Acme")

    answer = assert_error(delete(api, tenant.owner, tenant.owner.workspace_id, body), 400)

    assert named in answer["message"]
    assert api.client.get("/v1/projects", headers=tenant.owner.headers).status_code == 200
