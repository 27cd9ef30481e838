"""The live view across real processes: two `eventcore serve` and a worker on PostgreSQL, Redis
and RabbitMQ. An event sent to one API process with an API key, committed by the worker, is on a
stream served by the other process within a second of its commit; SIGTERM ends open streams."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.http.live_support import LiveServer
from tests.integration.test_distributed_e2e import stack  # noqa: F401 (a fixture)
from tests.support.processes import Server, run_command, serve, worker

pytestmark = pytest.mark.integration


def live(server: Server) -> LiveServer:
    return LiveServer(f"http://127.0.0.1:{server.port}", server.client)


def committed_at(api: LiveServer, account: object, project_id: str, event_id: str) -> float:
    """When (monotonic) the event was first seen listed, polling every 20 ms: its commit is
    before that."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(e["id"] == event_id for e in api.listed(account, project_id)):  # type: ignore[arg-type]
            return time.monotonic()
        time.sleep(0.02)
    pytest.fail(f"{event_id} was never committed")


@pytest.fixture
def deployment(
    tmp_path: Path,
    stack: tuple[dict[str, str], str],  # noqa: F811
) -> Iterator[tuple[Server, Server, dict[str, str]]]:
    settings, _ = stack
    logs = tmp_path / "logs"
    logs.mkdir()
    assert run_command(["migrate"], workdir=tmp_path, settings=settings).returncode == 0
    with (
        serve(tmp_path, logs, "api-a", settings) as api_a,
        serve(tmp_path, logs, "api-b", settings) as api_b,
        worker(tmp_path, logs, "worker", settings),
    ):
        yield api_a, api_b, settings


def test_an_event_reaches_a_stream_on_another_api_process_within_a_second_of_its_commit(
    deployment: tuple[Server, Server, dict[str, str]],
) -> None:
    """Sent to API process A, committed by the worker, the event is on B's stream within a
    second of being seen committed; the duplicate and the other workspace's event are not."""
    api_a, api_b, _ = deployment
    a, b = live(api_a), live(api_b)
    tenant = a.tenant()
    other = a.tenant("Other")
    stream = b.stream({"project_id": tenant.project_id}, tenant.headers)
    same_process = a.stream({"project_id": tenant.project_id}, tenant.headers)
    # A worker's "not watched" answer may be a second old when the stream opens.
    time.sleep(1.2)

    a.ingest(other, [{"id": "theirs", "type": "view"}])
    a.ingest(tenant, [{"id": "e1", "type": "view", "properties": {"k": "v"}}])
    seen = committed_at(a, tenant.owner, tenant.project_id, "e1")
    [frame] = stream.events(1, within=max(0.0, seen + 1.0 - time.monotonic()) + 0.001)
    assert frame.id == "e1"
    assert frame.json() == a.listed(tenant.owner, tenant.project_id)[0]

    a.ingest(tenant, [{"id": "e1", "type": "view"}, {"id": "e2", "type": "click"}])
    seen = committed_at(a, tenant.owner, tenant.project_id, "e2")
    [frame] = stream.events(1, within=max(0.0, seen + 1.0 - time.monotonic()) + 0.001)
    assert frame.id == "e2"
    assert [f.id for f in same_process.events(2)] == ["e1", "e2"]
    assert stream.quiet()


def test_sigterm_ends_open_streams_and_the_server_stops_cleanly(
    deployment: tuple[Server, Server, dict[str, str]],
) -> None:
    """A server stopped with open streams ends each (its last chunk sent, so the client sees a
    whole response) at once, and exits 0 without waiting out the graceful shutdown's limit."""
    api_a, _, _ = deployment
    a = live(api_a)
    tenant = a.tenant()
    streams = [a.stream({"project_id": tenant.project_id}, tenant.headers) for _ in range(3)]

    assert api_a.terminate() == 0
    for stream in streams:
        assert stream.next(5) is None
        assert stream.ended.is_set()
        assert stream.failed is None
    lines = [json.loads(line) for line in api_a.output().splitlines() if line.startswith("{")]
    assert not [line for line in lines if line.get("level") in ("error", "critical")], lines
