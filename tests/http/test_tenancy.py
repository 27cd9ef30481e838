"""Tenant isolation over HTTP: another workspace's ids answer 404, exactly like unknown ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.http.support import Account, Api, Tenant, assert_error

UNKNOWN = "00000000-0000-0000-0000-000000000000"

Request = Callable[[Api, Account, str, str], httpx.Response]


def create_key(api: Api, caller: Account, project_id: str, key_id: str) -> httpx.Response:
    return api.client.post(
        f"/v1/projects/{project_id}/api-keys", json={"name": "intruder"}, headers=caller.headers
    )


def list_keys(api: Api, caller: Account, project_id: str, key_id: str) -> httpx.Response:
    return api.client.get(f"/v1/projects/{project_id}/api-keys", headers=caller.headers)


def delete_key(api: Api, caller: Account, project_id: str, key_id: str) -> httpx.Response:
    return api.client.delete(f"/v1/api-keys/{key_id}", headers=caller.headers)


def counts(api: Api, caller: Account, project_id: str, key_id: str) -> httpx.Response:
    return api.counts(caller, project_id)


def event_types(api: Api, caller: Account, project_id: str, key_id: str) -> httpx.Response:
    return api.client.get(
        "/v1/analytics/event-types", params={"project_id": project_id}, headers=caller.headers
    )


def events(api: Api, caller: Account, project_id: str, key_id: str) -> httpx.Response:
    return api.events(caller, project_id)


ENDPOINTS = [create_key, list_keys, delete_key, counts, event_types, events]


def snapshot(api: Api, tenant: Tenant) -> dict[str, Any]:
    """What the victim's owner sees of the project, to prove nothing changed."""
    keys = api.client.get(f"/v1/projects/{tenant.project_id}/api-keys", headers=tenant.headers)
    return {
        "projects": api.client.get("/v1/projects", headers=tenant.headers).json(),
        "keys": keys.json(),
        "events": api.all_events(tenant.owner, tenant.project_id),
        "counts": api.counts(tenant.owner, tenant.project_id).json(),
    }


@pytest.mark.parametrize("request_", ENDPOINTS, ids=lambda f: f.__name__)
def test_another_workspaces_ids_are_not_found(api: Api, request_: Request) -> None:
    """Every endpoint taking a project or key id answers 404 for another workspace's ids."""
    victim = api.tenant("Victim")
    api.ingest(victim, {"events": [{"id": "v1", "type": "secret"}]})
    intruder = api.tenant("Intruder")
    before = snapshot(api, victim)

    response = request_(api, intruder.owner, victim.project_id, victim.key_id)
    unknown = request_(api, intruder.owner, UNKNOWN, UNKNOWN)

    error = assert_error(response, 404)
    assert error == assert_error(unknown, 404)
    assert "secret" not in response.text
    assert snapshot(api, victim) == before
    assert api.ingest(victim, {"type": "still works"}).status_code == 202


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_a_member_elsewhere_sees_nothing_of_this_workspace(api: Api, role: str) -> None:
    """A user who is a member of one workspace gets 404 for the projects of another."""
    victim = api.tenant("Victim")
    other = api.tenant("Other")
    member = api.member(other.owner, role)

    assert_error(api.counts(member, victim.project_id), 404)
    assert_error(api.events(member, victim.project_id), 404)
    assert victim.project_id not in api.client.get("/v1/projects", headers=member.headers).text


def test_the_same_event_id_in_two_tenants_is_stored_in_both(api: Api) -> None:
    """Idempotency keys are scoped to a project: one tenant cannot suppress another's events."""
    first = api.tenant("First")
    second = api.tenant("Second")

    one = api.ingest(first, {"id": "shared-id", "type": "a"})
    two = api.ingest(second, {"id": "shared-id", "type": "b"})

    assert one.json()["accepted"] == 1
    assert two.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert [e["type"] for e in api.all_events(first.owner, first.project_id)] == ["a"]
    assert [e["type"] for e in api.all_events(second.owner, second.project_id)] == ["b"]


def test_the_same_event_id_in_two_projects_of_one_workspace_is_stored_in_both(api: Api) -> None:
    """Idempotency keys are scoped to the project, even within one workspace."""
    tenant = api.tenant()
    other_project = api.create_project(tenant.owner, "Other")
    other_key = api.create_key(tenant.owner, other_project)["key"]

    api.ingest(tenant, {"id": "same", "type": "a"})
    response = api.client.post(
        "/v1/ingest", json={"id": "same", "type": "b"}, headers={"X-API-Key": other_key}
    )

    assert response.json()["accepted"] == 1
    assert [e["type"] for e in api.all_events(tenant.owner, other_project)] == ["b"]
    assert [e["type"] for e in api.all_events(tenant.owner, tenant.project_id)] == ["a"]


def test_a_key_writes_only_to_its_own_project_whatever_the_body_says(api: Api) -> None:
    """Tenant fields in the body are ignored: the key alone decides where events go."""
    victim = api.tenant()
    attacker = api.tenant()
    body = {
        "events": [{"id": "x", "type": "forged", "properties": {"n": 1}}],
        "workspace_id": victim.owner.workspace_id,
        "project_id": victim.project_id,
    }
    response = api.client.post("/v1/ingest", json=body, headers={"X-API-Key": attacker.api_key})
    assert response.status_code == 202, response.text
    assert api.all_events(victim.owner, victim.project_id) == []
    assert [e["type"] for e in api.all_events(attacker.owner, attacker.project_id)] == ["forged"]
