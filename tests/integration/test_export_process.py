"""Export from a real `eventcore serve` process and the `eventcore export` command: a project
larger than the memory ceiling streams whole, in order, equal to the listing, while the
server's resident memory grows by less than the ceiling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.processes import Server, clean_environment, run_command, serve

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
EVENTS = 64_000
PER_REQUEST = 800
# Each event's properties hold this many bytes: the export is about 88 MB.
FILLER = 1_200
# What the server may add to its resident memory while it streams that export.
CEILING_MB = 40


def resident_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no {field}")


def tenant(server: Server) -> tuple[str, str, dict[str, str], str]:
    signup = server.client.post(
        "/v1/auth/signup",
        json={"email": "owner@example.com", "password": PASSWORD, "workspace": "Acme"},
    )
    assert signup.status_code == 201, signup.text
    workspace_id = signup.json()["workspace_id"]
    user = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    project = server.client.post("/v1/projects", json={"name": "Website"}, headers=user)
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    key = server.client.post(
        f"/v1/projects/{project_id}/api-keys", json={"name": "server"}, headers=user
    )
    assert key.status_code == 201, key.text
    return workspace_id, project_id, user, key.json()["key"]


def listing(server: Server, user: dict[str, str], project_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = server.client.get(
            "/v1/events",
            params={"project_id": project_id, "limit": 1000, "cursor": cursor},
            headers=user,
        )
        assert page.status_code == 200, page.text
        found += page.json()["events"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return found


def test_a_large_export_streams_in_bounded_memory_and_equals_the_listing(tmp_path: Path) -> None:
    workdir, logs = tmp_path / "work", tmp_path / "logs"
    workdir.mkdir()
    logs.mkdir()
    settings = {"EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "0"}
    with serve(workdir, logs, "api", settings) as server:
        workspace_id, project_id, user, api_key = tenant(server)
        filler = "x" * FILLER
        for first in range(0, EVENTS, PER_REQUEST):
            events = [
                {
                    "id": f"e{n:06d}",
                    "type": "view" if n % 3 else "buy",
                    # Twenty events per second of 2025-03-01, in id order.
                    "timestamp": f"2025-03-01T{n // 72000:02d}:{n // 1200 % 60:02d}:"
                    f"{n // 20 % 60:02d}Z",
                    "properties": {"n": n, "filler": filler},
                }
                for n in range(first, first + PER_REQUEST)
            ]
            sent = server.client.post(
                "/v1/ingest", json={"events": events}, headers={"X-API-Key": api_key}
            )
            assert sent.status_code == 202, sent.text
            assert sent.json()["accepted"] == PER_REQUEST

        pid = server.process.pid
        before = resident_kib(pid, "VmRSS")
        # From here VmHWM is the peak of the export alone.
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        body = bytearray()
        with server.client.stream(
            "GET",
            "/v1/events/export",
            params={"project_id": project_id},
            headers=user,
            timeout=120,
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/x-ndjson"
            for chunk in response.iter_bytes():
                body += chunk
        grown_mb = (resident_kib(pid, "VmHWM") - before) / 1024

        assert len(body) > 2 * CEILING_MB * 1024 * 1024, len(body)
        print(f"export of {len(body) / 2**20:.0f} MB: the server grew by {grown_mb:.1f} MB")
        assert grown_mb < CEILING_MB, f"the server grew by {grown_mb:.1f} MB"
        exported = [json.loads(line) for line in body.decode().splitlines()]
        assert [e["id"] for e in exported] == [f"e{n:06d}" for n in range(EVENTS)]
        assert exported == list(reversed(listing(server, user, project_id)))

        # The command exports the same bytes from the same data, while the server runs.
        command = run_command(
            ["export", "--workspace", workspace_id, "--project", project_id],
            workdir=workdir,
            settings=settings,
        )
        assert command.returncode == 0, command.stderr
        assert command.stdout.encode() == bytes(body)
        assert f"exported {EVENTS} events" in command.stderr


def test_the_export_command_takes_a_window_and_refuses_what_is_wrong(tmp_path: Path) -> None:
    workdir, logs = tmp_path / "work", tmp_path / "logs"
    workdir.mkdir()
    logs.mkdir()
    with serve(workdir, logs, "api") as server:
        workspace_id, project_id, _, api_key = tenant(server)
        events = [
            {"id": f"e{n}", "type": "view", "timestamp": f"2025-03-0{n}T12:00:00Z"}
            for n in range(1, 6)
        ]
        sent = server.client.post(
            "/v1/ingest", json={"events": events}, headers={"X-API-Key": api_key}
        )
        assert sent.json()["accepted"] == 5

    base = ["export", "--workspace", workspace_id, "--project", project_id]
    windowed = run_command(
        [*base, "--start", "2025-03-02T00:00:00Z", "--end", "2025-03-04T12:00:00Z"],
        workdir=workdir,
    )
    assert windowed.returncode == 0, windowed.stderr
    # `end` is excluded: e4 is at exactly 2025-03-04T12:00:00Z.
    assert [json.loads(line)["id"] for line in windowed.stdout.splitlines()] == ["e2", "e3"]

    # Both stop with one clear line, and no event on stdout.
    stranger = run_command(
        ["export", "--workspace", "ws_nope", "--project", project_id], workdir=workdir
    )
    assert stranger.returncode == 1
    assert stranger.stdout == ""
    assert "has no project" in stranger.stderr
    assert "Traceback" not in stranger.stderr
    no_offset = run_command([*base, "--start", "2025-03-02T00:00:00"], workdir=workdir)
    assert no_offset.returncode == 2
    assert "RFC 3339" in no_offset.stderr


def test_the_reader_may_stop_early(tmp_path: Path) -> None:
    """A reader that closes the pipe (`| head`) ends the export quietly, not with a traceback."""
    workdir, logs = tmp_path / "work", tmp_path / "logs"
    workdir.mkdir()
    logs.mkdir()
    with serve(workdir, logs, "api", {"EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "0"}) as server:
        workspace_id, project_id, _, api_key = tenant(server)
        for first in range(0, 6000, 1000):
            events = [{"id": f"e{n}", "type": "view"} for n in range(first, first + 1000)]
            sent = server.client.post(
                "/v1/ingest", json={"events": events}, headers={"X-API-Key": api_key}
            )
            assert sent.json()["accepted"] == 1000

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventcore.entrypoints.cli",
            "export",
            "--workspace",
            workspace_id,
            "--project",
            project_id,
        ],
        cwd=workdir,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    first_line = process.stdout.readline()
    process.stdout.close()
    errors = process.stderr.read()
    assert process.wait(60) == 0
    assert json.loads(first_line)["type"] == "view"
    assert b"Traceback" not in errors, errors
