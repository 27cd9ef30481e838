"""`eventcore serve` as a real process on the embedded profile: serve, stop cleanly, restart, keep."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"
PASSWORD = "correct horse battery staple"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment() -> dict[str, str]:
    """The test runner's environment without any EVENTCORE_* setting, and the sources importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTCORE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


class Server:
    """A running `eventcore serve` process and a client for it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.log = log
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=10.0,
            event_hooks={"response": [self._refuse_server_errors]},
        )

    def _refuse_server_errors(self, response: httpx.Response) -> None:
        if response.status_code >= 500 and response.status_code != 503:
            response.read()
            raise AssertionError(
                f"{response.request.method} {response.request.url} answered "
                f"{response.status_code}: {response.text}\n{self.output()}"
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"eventcore serve exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if self.client.get("/health/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"eventcore serve was not ready in {START_TIMEOUT_SECONDS} s:\n{self.output()}")

    def terminate(self) -> int:
        """SIGTERM, as a process manager stops it; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"eventcore serve did not stop on SIGTERM:\n{self.output()}")


@contextmanager
def serve(workdir: Path, logs: Path, name: str) -> Iterator[Server]:
    """`eventcore serve` in ``workdir`` on a free port; always killed at the end."""
    port = free_port()
    log = logs / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port)],
            cwd=workdir,
            env=clean_environment(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.client.close()
        if process.poll() is None:
            process.kill()
            process.wait()


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
