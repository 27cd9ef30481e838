"""`eventcore serve` as a real process on the embedded profile: serve, stop cleanly, restart, keep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.support.processes import Server, serve

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def counts(server: Server, token: str, project_id: str) -> dict[str, Any]:
    response = server.client.get(
        "/v1/analytics/counts",
        params={
            "project_id": project_id,
            "granularity": "hour",
            "start": "2025-03-01T00:00:00Z",
            "end": "2025-03-02T00:00:00Z",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def events(server: Server, token: str, project_id: str) -> list[dict[str, Any]]:
    response = server.client.get(
        "/v1/events",
        params={"project_id": project_id, "limit": 1000},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["events"]
    return found


def test_serve_keeps_everything_across_a_restart(tmp_path: Path) -> None:
    """Data, the access token and the API key survive a SIGTERM and a restart on the same dir."""
    workdir = tmp_path / "work"
    logs = tmp_path / "logs"
    workdir.mkdir()
    logs.mkdir()
    batch = {
        "events": [
            {
                "id": f"e{i}",
                "type": "click" if i % 3 else "view",
                "timestamp": f"2025-03-01T10:{i:02}:00Z",
                "properties": {"n": i},
            }
            for i in range(30)
        ]
    }

    with serve(workdir, logs, "first") as server:
        signup = server.client.post(
            "/v1/auth/signup",
            json={"email": "owner@example.com", "password": PASSWORD, "workspace": "Acme"},
        )
        assert signup.status_code == 201, signup.text
        token = signup.json()["access_token"]
        user = {"Authorization": f"Bearer {token}"}
        project = server.client.post("/v1/projects", json={"name": "Website"}, headers=user)
        assert project.status_code == 201, project.text
        project_id = project.json()["id"]
        key = server.client.post(
            f"/v1/projects/{project_id}/api-keys", json={"name": "server"}, headers=user
        )
        assert key.status_code == 201, key.text
        api_key = key.json()["key"]

        ingest = server.client.post("/v1/ingest", json=batch, headers={"X-API-Key": api_key})
        assert ingest.status_code == 202, ingest.text
        assert ingest.json() == {"accepted": 30, "duplicates": 0, "rejected": []}
        before_counts = counts(server, token, project_id)
        before_events = events(server, token, project_id)
        assert before_counts["total"] == 30
        assert len(before_events) == 30

        # Checked at the end, so that a bad exit status does not hide what the restart shows.
        exits = [(server.terminate(), server.output())]

    data = workdir / "eventcore-data"
    assert (data / "eventcore.sqlite3").is_file()
    assert (data / "jwt-secret").is_file()
    assert sorted(p.name for p in workdir.iterdir()) == ["eventcore-data"]

    with serve(workdir, logs, "second") as server:
        assert counts(server, token, project_id) == before_counts
        assert events(server, token, project_id) == before_events

        again = server.client.post(
            "/v1/ingest",
            content=b'{"events": [{"id": "e0", "type": "view"}, {"id": "new", "type": "view",'
            b' "timestamp": "2025-03-01T11:00:00Z"}]}',
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )
        assert again.status_code == 202, again.text
        assert again.json()["rejected"] == []
        after = counts(server, token, project_id)
        assert after["total"] == 31
        assert len(events(server, token, project_id)) == 31

        login = server.client.post(
            "/v1/auth/login", json={"email": "owner@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text

        exits.append((server.terminate(), server.output()))

    for status, output in exits:
        assert status == 0, (
            f"SIGTERM must end `eventcore serve` with status 0, not {status}:\n{output}"
        )
