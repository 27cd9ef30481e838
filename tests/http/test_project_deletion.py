"""Deleting a project: owner or admin; its keys stop working, its data is reachable no more, and
nothing of another project or workspace changes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.http.support import Api, ApiFactory, Tenant, assert_error, profile_settings

# The API-key and project caches' TTL (API_KEY_CACHE_SECONDS, PROJECT_CACHE_SECONDS).
CACHE_SECONDS = 1.0


def event(event_id: str) -> dict[str, str]:
    return {"id": event_id, "type": "page_view"}


def projects(api: Api, tenant: Tenant) -> list[str]:
    response = api.client.get("/v1/projects", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["projects"]]


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_a_deleted_projects_keys_and_data_are_gone(either: Api, role: str) -> None:
    tenant = either.tenant()
    kept = either.create_project(tenant.owner, "kept")
    kept_key = either.create_key(tenant.owner, kept)["key"]
    assert either.ingest(tenant, {"events": [event("e1"), event("e2")]}).status_code == 202
    actor = tenant.owner if role == "owner" else either.member(tenant.owner, "admin")

    deleted = either.client.delete(f"/v1/projects/{tenant.project_id}", headers=actor.headers)
    assert deleted.status_code == 204, deleted.text

    assert projects(either, tenant) == [kept]
    # Its key is refused at once; the other project's key still works.
    assert_error(either.ingest(tenant, event("e3")), 401)
    ingest_kept = either.client.post(
        "/v1/ingest", json=event("k1"), headers={"X-API-Key": kept_key}
    )
    assert ingest_kept.status_code == 202, ingest_kept.text
    # Its data and keys are reachable through no route.
    project = tenant.project_id
    for path in (
        f"/v1/analytics/counts?project_id={project}",
        f"/v1/analytics/event-types?project_id={project}",
        f"/v1/events?project_id={project}",
        f"/v1/projects/{project}/api-keys",
    ):
        assert_error(either.client.get(path, headers=tenant.headers), 404, "not_found")
    assert_error(
        either.client.post(
            f"/v1/projects/{project}/api-keys", json={"name": "again"}, headers=tenant.headers
        ),
        404,
        "not_found",
    )
    # Deleting it again: there is nothing to delete.
    assert_error(
        either.client.delete(f"/v1/projects/{project}", headers=tenant.headers), 404, "not_found"
    )


def test_a_viewer_may_not_delete_a_project(either: Api) -> None:
    tenant = either.tenant()
    viewer = either.member(tenant.owner, "viewer")
    assert_error(
        either.client.delete(f"/v1/projects/{tenant.project_id}", headers=viewer.headers),
        403,
        "forbidden",
    )
    assert projects(either, tenant) == [tenant.project_id]
    assert either.ingest(tenant, event("still")).status_code == 202


def test_another_workspaces_project_is_not_found_and_stays(either: Api) -> None:
    tenant = either.tenant()
    stranger = either.tenant()
    for project_id in (tenant.project_id, "no-such-project"):
        assert_error(
            either.client.delete(f"/v1/projects/{project_id}", headers=stranger.headers),
            404,
            "not_found",
        )
    assert projects(either, tenant) == [tenant.project_id]
    assert either.ingest(tenant, event("still")).status_code == 202


def test_deleting_a_project_needs_an_access_token(either: Api) -> None:
    tenant = either.tenant()
    for headers in ({}, {"Authorization": "Bearer nope"}, tenant.key_headers):
        assert_error(
            either.client.delete(f"/v1/projects/{tenant.project_id}", headers=headers), 401
        )
    assert projects(either, tenant) == [tenant.project_id]


@pytest.mark.parametrize(
    "profile", ["embedded", pytest.param("shared", marks=pytest.mark.integration)]
)
def test_another_process_stops_serving_a_deleted_project_within_a_second(
    make_api: ApiFactory, tmp_path: Path, profile: str
) -> None:
    """Two API processes on one store: once one deletes a project, the other refuses its key
    and its analytics after its caches' second (the key and project caches' TTL)."""
    with profile_settings(profile) as env:
        here = make_api(env=env, data_dir=tmp_path / "shared-data")
        there = make_api(env=env, data_dir=tmp_path / "shared-data")
        tenant = here.tenant()
        counts = f"/v1/analytics/counts?project_id={tenant.project_id}"
        assert there.ingest(tenant, event("before")).status_code == 202
        assert there.client.get(counts, headers=tenant.headers).status_code == 200
        here.client.delete(
            f"/v1/projects/{tenant.project_id}", headers=tenant.headers
        ).raise_for_status()
        time.sleep(CACHE_SECONDS + 0.2)
        assert_error(there.ingest(tenant, event("after")), 401)
        assert_error(there.client.get(counts, headers=tenant.headers), 404, "not_found")
