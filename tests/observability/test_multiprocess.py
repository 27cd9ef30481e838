"""`eventcore serve --workers N` with PROMETHEUS_MULTIPROC_DIR: /metrics adds up every process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support.processes import Server, clean_environment, free_port

pytestmark = pytest.mark.integration

REQUESTS = 20


def accepted(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "eventcore_ingest_events_total"
        and sample.labels.get("outcome") == "accepted"
    )


def test_metrics_of_all_api_processes_are_added_up(tmp_path: Path) -> None:
    """Requests spread over two API processes are all counted by whichever process answers the
    scrape, once PROMETHEUS_MULTIPROC_DIR is set."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    log = tmp_path / "serve.log"
    env = clean_environment(
        {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "EVENTCORE_LOG_FORMAT": "json"}
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eventcore.entrypoints.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, "api", log, port)
    try:
        server.wait_ready()
        signup = server.client.post(
            "/v1/auth/signup",
            json={
                "email": "multi@example.com",
                "password": "Fjord-Quasar-Tinsel-91",
                "workspace": "Multi",
            },
        )
        user = {"Authorization": f"Bearer {signup.json()['access_token']}"}
        project = server.client.post("/v1/projects", json={"name": "p"}, headers=user).json()
        key = server.client.post(
            f"/v1/projects/{project['id']}/api-keys", json={"name": "k"}, headers=user
        ).json()["key"]
        base = f"http://127.0.0.1:{port}"
        for n in range(REQUESTS):
            # A new connection each time, so that the kernel hands requests to either process.
            response = httpx.post(
                f"{base}/v1/ingest",
                json={"id": f"e{n}", "type": "click"},
                headers={"X-API-Key": key, "Connection": "close"},
                timeout=10,
            )
            assert response.status_code == 202, response.text

        scrapes = [
            httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10).text
            for _ in range(6)
        ]

        assert [accepted(text) for text in scrapes] == [REQUESTS] * len(scrapes)
        writers = {path.name.rsplit("_", 1)[-1] for path in metrics_dir.glob("counter_*.db")}
        assert len(writers) >= 2, writers
    finally:
        server.client.close()
        # SIGTERM: the supervisor stops its two worker processes with it (SIGKILL would leave
        # them running, orphaned, after the test).
        server.terminate()
