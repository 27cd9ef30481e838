"""Deletion requests over HTTP, in both profiles: what is deleted is gone from every answer and
never comes back; what is not is untouched; roles, tenants and bad input."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from eventcore.deletions import Deletion, DeletionStatus, EventSelector
from tests.http.support import Account, Api, Tenant, assert_error

START, END = "2025-03-01T00:00:00Z", "2025-03-03T00:00:00Z"
EVENTS: list[dict[str, Any]] = [
    {"id": "e1", "type": "view", "timestamp": "2025-03-01T10:00:00Z", "user_id": "ada"},
    {"id": "e2", "type": "signup", "timestamp": "2025-03-01T10:05:00Z", "user_id": "ada"},
    {"id": "e3", "type": "view", "timestamp": "2025-03-01T11:00:00Z", "user_id": "bob"},
    {"id": "e4", "type": "view", "timestamp": "2025-03-02T09:00:00Z", "anonymous_id": "ada"},
    {"id": "e5", "type": "view", "timestamp": "2025-03-02T09:30:00Z"},
    {"id": "e6", "type": "buy", "timestamp": "2025-03-02T12:00:00Z", "user_id": "ada"},
]


def ask(api: Api, account: Account, body: dict[str, Any]) -> httpx.Response:
    return api.client.post("/v1/deletions", json=body, headers=account.headers)


def finished(api: Api, account: Account, deletion_id: str) -> dict[str, Any]:
    """The deletion once it has ended (it runs right after its answer)."""
    deadline = time.monotonic() + 20
    while True:
        response = api.client.get(f"/v1/deletions/{deletion_id}", headers=account.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def listed_ids(api: Api, tenant: Tenant) -> set[str]:
    return {e["id"] for e in api.all_events(tenant.owner, tenant.project_id)}


def analytics(api: Api, tenant: Tenant) -> tuple[int, int]:
    params = {"project_id": tenant.project_id, "start": START, "end": END}
    counts = api.client.get("/v1/analytics/counts", params=params, headers=tenant.headers)
    users = api.client.get("/v1/analytics/users", params=params, headers=tenant.headers)
    return counts.json()["total"], users.json()["total"]


def test_a_persons_events_are_deleted_everywhere_and_never_come_back(either: Api) -> None:
    api = either
    tenant = api.tenant()
    assert api.ingest(tenant, {"events": EVENTS}).json()["accepted"] == len(EVENTS)
    assert analytics(api, tenant) == (6, 2)

    answer = ask(api, tenant.owner, {"project_id": tenant.project_id, "user_ids": ["ada"]})

    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"
    done = finished(api, tenant.owner, answer.json()["id"])
    assert (done["status"], done["events_deleted"]) == ("done", 4)
    assert done["completed_at"] is not None
    assert listed_ids(api, tenant) == {"e3", "e5"}
    # Counted again from what remains: two events, one person.
    assert analytics(api, tenant) == (2, 1)
    export = api.client.get(
        "/v1/events/export", params={"project_id": tenant.project_id}, headers=tenant.headers
    )
    assert [line for line in export.text.splitlines() if '"ada"' in line] == []
    # Sent again, the deleted events are duplicates: nothing comes back.
    resent = api.ingest(tenant, {"events": EVENTS}).json()
    assert (resent["accepted"], resent["duplicates"]) == (0, 6)
    assert listed_ids(api, tenant) == {"e3", "e5"}
    assert analytics(api, tenant) == (2, 1)


def test_criteria_intersect_and_the_request_is_listed(api: Api, tenant: Tenant) -> None:
    assert api.ingest(tenant, {"events": EVENTS}).json()["accepted"] == len(EVENTS)
    body = {
        "project_id": tenant.project_id,
        "user_ids": ["ada"],
        "start": "2025-03-02T00:00:00Z",
        "end": "2025-03-03T00:00:00Z",
    }

    deletion_id = ask(api, tenant.owner, body).json()["id"]

    assert finished(api, tenant.owner, deletion_id)["events_deleted"] == 2
    assert listed_ids(api, tenant) == {"e1", "e2", "e3", "e5"}
    by_id = ask(api, tenant.owner, {"project_id": tenant.project_id, "event_ids": ["e3", "x"]})
    assert finished(api, tenant.owner, by_id.json()["id"])["events_deleted"] == 1
    listing = api.client.get(
        "/v1/deletions", params={"project_id": tenant.project_id}, headers=tenant.headers
    )
    assert [d["id"] for d in listing.json()["deletions"]] == [by_id.json()["id"], deletion_id]
    first = listing.json()["deletions"][1]
    assert (first["user_ids"], first["start"], first["end"]) == (
        ["ada"],
        "2025-03-02T00:00:00Z",
        "2025-03-03T00:00:00Z",
    )


def test_requests_and_completions_are_in_the_audit_log(api: Api, tenant: Tenant) -> None:
    api.ingest(tenant, {"events": EVENTS})
    deletion_id = ask(api, tenant.owner, {"project_id": tenant.project_id, "user_ids": ["bob"]})
    finished(api, tenant.owner, deletion_id.json()["id"])

    log = api.client.get("/v1/audit-log", headers=tenant.headers).json()["entries"]
    requested, completed = (
        next(e for e in log if e["action"] == action)
        for action in ("deletion.requested", "deletion.completed")
    )
    assert requested["actor"] == {"type": "user", "id": tenant.owner.user_id}
    assert requested["details"]["user_ids"] == 1
    assert completed["actor"] == {"type": "system", "id": tenant.owner.user_id}
    assert completed["details"] == {"events_deleted": 1}


def test_admins_may_delete_viewers_may_not(api: Api, tenant: Tenant) -> None:
    api.ingest(tenant, {"events": EVENTS})
    admin = api.member(tenant.owner, "admin")
    viewer = api.member(tenant.owner, "viewer")
    body = {"project_id": tenant.project_id, "event_ids": ["e1"]}

    assert_error(ask(api, viewer, body), 403, "forbidden")
    made = ask(api, admin, body)
    assert made.status_code == 202
    deletion_id = made.json()["id"]
    assert_error(
        api.client.get(f"/v1/deletions/{deletion_id}", headers=viewer.headers), 403, "forbidden"
    )
    assert_error(
        api.client.get(
            "/v1/deletions", params={"project_id": tenant.project_id}, headers=viewer.headers
        ),
        403,
        "forbidden",
    )
    assert finished(api, admin, deletion_id)["status"] == "done"
    assert_error(api.client.post("/v1/deletions", json=body), 401)


def test_another_workspace_can_neither_delete_nor_see(either: Api) -> None:
    api = either
    acme, globex = api.tenant("Acme"), api.tenant("Globex")
    for tenant in (acme, globex):
        api.ingest(tenant, {"events": EVENTS})
    mine = ask(api, acme.owner, {"project_id": acme.project_id, "user_ids": ["ada"]}).json()

    assert_error(
        ask(api, globex.owner, {"project_id": acme.project_id, "user_ids": ["bob"]}),
        404,
        "not_found",
    )
    assert_error(
        api.client.get(f"/v1/deletions/{mine['id']}", headers=globex.owner.headers),
        404,
        "not_found",
    )
    assert_error(
        api.client.get(
            "/v1/deletions", params={"project_id": acme.project_id}, headers=globex.headers
        ),
        404,
        "not_found",
    )
    finished(api, acme.owner, mine["id"])
    # The same person's events of the other workspace are all still there.
    assert listed_ids(api, globex) == {e["id"] for e in EVENTS}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({}, "user_ids"),
        ({"user_ids": []}, "user_ids"),
        ({"user_ids": ["x" * 129]}, "user_ids"),
        ({"user_ids": ["a"] * 10_001}, "user_ids"),
        ({"event_ids": [""]}, "event_ids"),
        ({"start": END, "end": START}, "start"),
        ({"start": "2025-03-01T00:00:00"}, "start"),
        ({"user_ids": "ada"}, "user_ids"),
        ({"user_ids": ["ada"], "suppress": {"on": True}}, "suppress"),
        ({"project_id": 7}, "project_id"),
    ],
)
def test_bad_requests_are_400_naming_the_field_and_change_nothing(
    api: Api, tenant: Tenant, change: dict[str, Any], named: str
) -> None:
    api.ingest(tenant, {"events": EVENTS})

    body = assert_error(ask(api, tenant.owner, {"project_id": tenant.project_id, **change}), 400)

    assert named in body["message"]
    listing = api.client.get(
        "/v1/deletions", params={"project_id": tenant.project_id}, headers=tenant.headers
    )
    assert listing.json()["deletions"] == []
    assert len(listed_ids(api, tenant)) == len(EVENTS)


def test_an_unknown_project_or_deletion_is_404(api: Api, tenant: Tenant) -> None:
    assert_error(ask(api, tenant.owner, {"project_id": "nope", "user_ids": ["a"]}), 404)
    assert_error(api.client.get("/v1/deletions/nope", headers=tenant.headers), 404)


def test_a_deletion_left_open_is_finished_by_the_sweep(make_api: Any) -> None:
    """A deletion whose process stopped before running it is carried out by a sweep."""
    api = make_api(env={"EVENTCORE_DELETION_SWEEP_SECONDS": "0.2"})
    tenant = api.tenant()
    api.ingest(tenant, {"events": EVENTS})
    store = api.resolve(api.container.gateways.store)
    left = Deletion(
        id=str(uuid.uuid4()),
        workspace_id=tenant.owner.workspace_id,
        project_id=tenant.project_id,
        selector=EventSelector(user_ids=("bob",)),
        status=DeletionStatus.RUNNING,
        requested_at=datetime.now(UTC),
        requested_by=tenant.owner.user_id,
    )
    api.client.blocking_portal.call(store.create_deletion, left)

    assert finished(api, tenant.owner, left.id)["status"] == "done"
    assert "e3" not in listed_ids(api, tenant)


def test_the_largest_request_fits_its_body_bound(api: Api, tenant: Tenant) -> None:
    """10,000 persons and 10,000 event ids of 128 characters (2.6 MB) are one request, over
    the 1 MiB bound of other bodies; past 4 MiB the body is refused before it is read."""
    most = {
        "project_id": tenant.project_id,
        "user_ids": [f"{n:0128d}" for n in range(10_000)],
        "event_ids": [f"{n:0128d}" for n in range(10_000)],
    }
    answer = ask(api, tenant.owner, most)
    assert answer.status_code == 202, answer.text[:200]
    too_big = {**most, "user_ids": most["user_ids"] * 2, "event_ids": most["event_ids"] * 2}
    assert_error(ask(api, tenant.owner, too_big), 413, "payload_too_large")
