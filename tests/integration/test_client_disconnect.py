"""A client that goes away mid-request, against a real `eventcore serve`: not a server error.

The request is sent over a raw socket with `Content-Length: 1000` and only part of the body, and
the socket is closed. The server must neither log it at error level nor count it in
`eventcore_requests_error_total` (anyone could fire the error-rate alert that way): it is counted
under status 499 (client closed request) and logged at info.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from tests.support.processes import Server, eventually, serve

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")


def samples(server: Server, name: str) -> dict[tuple[str, str, str], float]:
    """The samples of metric ``name`` on /metrics, by (method, path, status_code)."""
    text = server.client.get("/metrics").text
    found: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match[1] != name:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
        found[(labels["method"], labels["path"], labels["status_code"])] = float(match[3])
    return found


def send_half_and_close(server: Server, path: str, headers: dict[str, str], body: bytes) -> None:
    """Headers announcing 1000 bytes of body, ``body`` (fewer), then the socket closed."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(head.encode() + b"\r\n" + body)


def log_lines(server: Server) -> list[dict[str, Any]]:
    lines = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.mark.parametrize(
    ("path", "needs_key", "body"),
    [
        ("/v1/ingest", True, b'{"events": [{"type": "click", "properties": {"a": '),
        ("/v1/auth/signup", False, b'{"email": "half@example.com", "pass'),
    ],
)
def test_a_client_that_disconnects_mid_body_is_not_a_server_error(
    tmp_path: Path, path: str, needs_key: bool, body: bytes
) -> None:
    """The half-sent request is counted as 499, never as an error, and logged below error."""
    logs = tmp_path / "logs"
    logs.mkdir()
    settings = {"EVENTCORE_LOG_FORMAT": "json", "EVENTCORE_LOG_LEVEL": "info"}
    with serve(tmp_path, logs, "api", settings) as server:
        headers = {"Content-Type": "application/json"}
        if needs_key:
            signup = server.client.post(
                "/v1/auth/signup",
                json={"email": "owner@example.com", "password": PASSWORD, "workspace": "Acme"},
            )
            user = {"Authorization": f"Bearer {signup.json()['access_token']}"}
            project = server.client.post("/v1/projects", json={"name": "p"}, headers=user)
            key = server.client.post(
                f"/v1/projects/{project.json()['id']}/api-keys", json={"name": "k"}, headers=user
            )
            headers["X-API-Key"] = key.json()["key"]

        send_half_and_close(server, path, headers, body)

        def counted() -> bool:
            return any(p == path for _, p, _ in samples(server, "eventcore_requests_total"))

        eventually(counted, within=10, what=f"the half-sent request to {path} being counted")
        requests = samples(server, "eventcore_requests_total")
        errors = samples(server, "eventcore_requests_error_total")
        assert requests.get(("POST", path, "499")) == 1.0, requests
        assert not [k for k in requests if k[1] == path and k[2] != "499"], requests
        assert not errors, errors
        assert server.terminate() == 0

    lines = log_lines(server)
    assert lines, "the server wrote no JSON log line, so this test would prove nothing"
    loud = [line for line in lines if line.get("level") in ("error", "critical")]
    assert not loud, loud
    closed = [line for line in lines if line.get("route") == path]
    assert [(line["status"], line["level"]) for line in closed] == [(499, "info")], closed
