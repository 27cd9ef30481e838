"""EVENTCORE_OTLP_ENDPOINT: the API exports its spans over OTLP/HTTP to the collector named."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests.support.processes import clean_environment

# The app as `eventcore serve` builds it, one request, then shutdown (which flushes the spans).
SCRIPT = """
from litestar.testing import TestClient
from eventcore.entrypoints.http.app import create_app
from eventcore.entrypoints.settings import load_settings

with TestClient(create_app(load_settings())) as client:
    assert client.get("/v1/projects").status_code == 401
"""


class Collector(ThreadingHTTPServer):
    """A stand-in OpenTelemetry collector that keeps every request it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.received: list[tuple[str, str, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_spans_are_exported_to_the_configured_collector(
    collector: Collector, tmp_path: Path
) -> None:
    """With EVENTCORE_OTLP_ENDPOINT set to a bare address, the API's request span reaches
    /v1/traces there as OTLP protobuf, from service eventcore-api."""
    env = clean_environment(
        {"EVENTCORE_OTLP_ENDPOINT": collector.url, "EVENTCORE_DATA_DIR": str(tmp_path / "data")}
    )
    env.pop("OTEL_SERVICE_NAME", None)

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert collector.received, "nothing reached the collector"
    spans, services = [], set()
    for path, content_type, body in collector.received:
        assert path == "/v1/traces"
        assert content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            services |= {
                attribute.value.string_value
                for attribute in resource_spans.resource.attributes
                if attribute.key == "service.name"
            }
            spans += [span.name for scope in resource_spans.scope_spans for span in scope.spans]
    assert services == {"eventcore-api"}
    assert "GET /v1/projects" in spans
