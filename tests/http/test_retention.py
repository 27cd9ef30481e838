"""A project's retention over HTTP, in both profiles: PATCH /v1/projects/{id} sets it (owner,
admin), projects show it, the retention run expires what is past it with the counts of what
remains exact, and an expired event sent again is not stored; roles, tenants and bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.http.support import Account, Api, Tenant, assert_error


def change(api: Api, account: Account, project_id: str, body: Any) -> httpx.Response:
    return api.client.patch(f"/v1/projects/{project_id}", json=body, headers=account.headers)


def shown(api: Api, tenant: Tenant) -> dict[str, Any]:
    """The project as GET /v1/projects lists it."""
    listing = api.client.get("/v1/projects", headers=tenant.headers)
    assert listing.status_code == 200, listing.text
    found: dict[str, Any] = next(
        p for p in listing.json()["projects"] if p["id"] == tenant.project_id
    )
    return found


def run_retention(api: Api) -> Any:
    """What the hourly schedule does, now (the schedule and `eventcore retention run` call it)."""
    platform = api.resolve(api.container.platform)
    return api.client.blocking_portal.call(platform.maintenance.run_retention)


def events_at(now: datetime) -> list[dict[str, Any]]:
    """Four events of 40 days ago (two persons), two of 10 days ago, one of now."""
    old = [
        {
            "id": f"old{n}",
            "type": "view",
            "timestamp": (now - timedelta(days=40, minutes=n)).isoformat(),
            "user_id": f"p{n % 2}",
        }
        for n in range(4)
    ]
    mid = [
        {
            "id": f"mid{n}",
            "type": "buy",
            "timestamp": (now - timedelta(days=10, hours=n)).isoformat(),
        }
        for n in range(2)
    ]
    return [*old, *mid, {"id": "new", "type": "view", "user_id": "p9"}]


def totals(api: Api, tenant: Tenant, now: datetime) -> tuple[int, int]:
    params = {
        "project_id": tenant.project_id,
        "granularity": "day",
        "start": (now - timedelta(days=60)).strftime("%Y-%m-%dT00:00:00Z"),
        "end": (now + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z"),
    }
    counts = api.client.get("/v1/analytics/counts", params=params, headers=tenant.headers)
    users = api.client.get("/v1/analytics/users", params=params, headers=tenant.headers)
    assert counts.status_code == users.status_code == 200, counts.text + users.text
    return counts.json()["total"], users.json()["total"]


def test_a_retention_is_set_shown_and_cleared(either: Api) -> None:
    api = either
    tenant = api.tenant()
    assert shown(api, tenant)["retention_days"] is None

    answer = change(api, tenant.owner, tenant.project_id, {"retention_days": 30})

    assert answer.status_code == 200, answer.text
    assert answer.json() == shown(api, tenant)
    assert answer.json()["retention_days"] == 30
    assert answer.json()["id"] == tenant.project_id
    cleared = change(api, tenant.owner, tenant.project_id, {"retention_days": None})
    assert cleared.status_code == 200, cleared.text
    assert shown(api, tenant)["retention_days"] is None
    created = api.client.post("/v1/projects", json={"name": "App"}, headers=tenant.headers)
    assert created.json()["retention_days"] is None
    log = api.client.get(
        "/v1/audit-log", params={"action": "project.retention_changed"}, headers=tenant.headers
    ).json()["entries"]
    assert [e["details"] for e in log] == [{"retention_days": None}, {"retention_days": 30}]
    assert {(e["actor"]["id"], e["target"]["id"]) for e in log} == {
        (tenant.owner.user_id, tenant.project_id)
    }


def test_the_run_expires_what_is_past_the_retention_and_it_never_comes_back(either: Api) -> None:
    api = either
    tenant, other = api.tenant("Acme"), api.tenant("Globex")
    now = datetime.now(UTC)
    for each in (tenant, other):
        assert api.ingest(each, {"events": events_at(now)}).json()["accepted"] == 7
    assert totals(api, tenant, now) == (7, 3)
    assert change(api, tenant.owner, tenant.project_id, {"retention_days": 30}).status_code == 200

    retained = run_retention(api)

    assert (retained.events, retained.projects) == (4, 1)
    listed = {e["id"] for e in api.all_events(tenant.owner, tenant.project_id)}
    assert listed == {"mid0", "mid1", "new"}
    assert totals(api, tenant, now) == (3, 1)
    # Sent again, the expired events are not stored, and count nowhere.
    api.ingest(tenant, {"events": events_at(now)})
    assert {e["id"] for e in api.all_events(tenant.owner, tenant.project_id)} == listed
    assert totals(api, tenant, now) == (3, 1)
    # The other workspace keeps everything.
    assert len(api.all_events(other.owner, other.project_id)) == 7
    assert totals(api, other, now) == (7, 3)
    # A shorter retention expires more at the next run.
    change(api, tenant.owner, tenant.project_id, {"retention_days": 5})
    assert run_retention(api).events == 2
    assert totals(api, tenant, now) == (1, 1)


def test_admins_may_change_a_project_viewers_may_not(api: Api, tenant: Tenant) -> None:
    admin = api.member(tenant.owner, "admin")
    viewer = api.member(tenant.owner, "viewer")

    assert_error(change(api, viewer, tenant.project_id, {"retention_days": 7}), 403, "forbidden")
    assert shown(api, tenant)["retention_days"] is None
    assert change(api, admin, tenant.project_id, {"retention_days": 7}).status_code == 200
    assert shown(api, tenant)["retention_days"] == 7
    assert_error(
        api.client.patch(f"/v1/projects/{tenant.project_id}", json={"retention_days": 1}), 401
    )
    assert shown(api, tenant)["retention_days"] == 7


def test_another_workspaces_project_is_404_and_unchanged(either: Api) -> None:
    api = either
    acme, globex = api.tenant("Acme"), api.tenant("Globex")

    assert_error(
        change(api, globex.owner, acme.project_id, {"retention_days": 1}), 404, "not_found"
    )
    assert_error(change(api, acme.owner, "no-such-project", {"retention_days": 1}), 404)
    assert shown(api, acme)["retention_days"] is None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": 3651}, "retention_days"),
        ({"retention_days": -5}, "retention_days"),
        ({"retention_days": "30"}, "retention_days"),
        ({"retention_days": 30.0}, "retention_days"),
        ({"retention_days": 1.5}, "retention_days"),
        ({"retention_days": True}, "retention_days"),
        ({"retention_days": 30, "name": "renamed"}, "name"),
        ({"retention": 30}, "retention"),
        ({}, "retention_days"),
        ([30], "array"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_changes_nothing(
    either: Api, body: Any, named: str
) -> None:
    api = either
    tenant = api.tenant()
    change(api, tenant.owner, tenant.project_id, {"retention_days": 90})

    error = assert_error(change(api, tenant.owner, tenant.project_id, body), 400)

    assert named in error["message"]
    assert shown(api, tenant)["retention_days"] == 90
    log = api.client.get(
        "/v1/audit-log", params={"action": "project.retention_changed"}, headers=tenant.headers
    ).json()["entries"]
    assert len(log) == 1


def test_every_api_process_expires_on_its_schedule(make_api: Any) -> None:
    """The schedule runs the retention at start-up (then each hour): an app started on data with
    a retention set expires what is past it without being asked."""
    api = make_api()
    tenant = api.tenant()
    api.ingest(tenant, {"events": events_at(datetime.now(UTC))})
    change(api, tenant.owner, tenant.project_id, {"retention_days": 30})
    assert len(api.all_events(tenant.owner, tenant.project_id)) == 7
    api.stop()

    again = make_api(data_dir=api.data_dir)

    deadline = time.monotonic() + 20
    while len(again.all_events(tenant.owner, tenant.project_id)) > 3:
        assert time.monotonic() < deadline, "the schedule expired nothing"
        time.sleep(0.05)
    assert {e["id"] for e in again.all_events(tenant.owner, tenant.project_id)} == {
        "mid0",
        "mid1",
        "new",
    }
