"""Traces and metrics across the API and a worker, on the real RabbitMQ, PostgreSQL and Redis.

The API runs in process (the production app on the distributed profile, its spans captured in
memory); the worker is a real ``eventcore worker`` process started as an operator starts it
(``tests.faults.harness``), on the same settings, exporting its spans over OTLP/HTTP to a
stand-in collector and logging JSON lines to its output. Nothing of the worker is rebuilt here,
so its wiring cannot drift from production unseen.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.faults.harness import Stack, Workers, workers
from tests.http.support import ApiFactory
from tests.observability.conftest import LogLines, wait_until
from tests.observability.test_metrics import Scrape, scrape
from tests.observability.test_otlp_export import Collector
from tests.support.processes import eventually, free_port
from tests.support.rabbitmq import publish_raw
from tests.support.redis import REDIS_URL, delete_prefixed

pytestmark = pytest.mark.integration


def events(*ids: str, kind: str = "click") -> dict[str, Any]:
    return {"events": [{"id": event_id, "type": kind} for event_id in ids]}


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A stand-in OpenTelemetry collector keeping every export it is sent."""
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def one_worker(stack: Stack, **overrides: str) -> Iterator[Workers]:
    """One ``eventcore worker`` process on the stack's settings, consuming; killed at the end."""
    with workers(stack, 1, **overrides) as pool:
        pool.wait_consuming()
        yield pool


def committed_groups(pool: Workers) -> int:
    pool.check_running()
    return pool.slots[0].output().count('"worker.batch_committed"')


def worker_logs(pool: Workers) -> LogLines:
    """The worker's JSON log lines (every line of its output must be one)."""
    return LogLines(io.StringIO(pool.slots[0].output()))


# Spans, whichever process recorded them


@dataclass(frozen=True)
class SpanView:
    name: str
    kind: SpanKind
    trace_id: int
    span_id: int
    parent_id: int | None
    parent_is_remote: bool
    attributes: dict[str, Any]


def from_memory(span: ReadableSpan) -> SpanView:
    assert span.context is not None
    return SpanView(
        name=span.name,
        kind=span.kind,
        trace_id=span.context.trace_id,
        span_id=span.context.span_id,
        parent_id=span.parent.span_id if span.parent is not None else None,
        parent_is_remote=span.parent is not None and span.parent.is_remote,
        attributes=dict(span.attributes or {}),
    )


_OTLP_KINDS = {
    OtlpSpan.SPAN_KIND_INTERNAL: SpanKind.INTERNAL,
    OtlpSpan.SPAN_KIND_SERVER: SpanKind.SERVER,
    OtlpSpan.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    OtlpSpan.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    OtlpSpan.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    return getattr(value, which) if which is not None else None


def from_otlp(span: OtlpSpan) -> SpanView:
    assert span.flags & SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, "parent remoteness unsent"
    return SpanView(
        name=span.name,
        kind=_OTLP_KINDS[span.kind],
        trace_id=int.from_bytes(span.trace_id, "big"),
        span_id=int.from_bytes(span.span_id, "big"),
        parent_id=int.from_bytes(span.parent_span_id, "big") if span.parent_span_id else None,
        parent_is_remote=bool(span.flags & SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK),
        attributes={attribute.key: _value(attribute.value) for attribute in span.attributes},
    )


def exported(collector: Collector) -> list[SpanView]:
    """Every span the worker exported to the collector so far."""
    found = []
    for path, content_type, body in list(collector.received):
        assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                found += [from_otlp(span) for span in scope.spans]
    return found


def in_trace(spans: list[SpanView], trace_id: int) -> list[SpanView]:
    return [span for span in spans if span.trace_id == trace_id]


async def test_one_trace_links_the_request_the_publish_and_the_worker_commit(
    stack: Stack,
    make_api: ApiFactory,
    spans: InMemorySpanExporter,
    logs: LogLines,
    collector: Collector,
) -> None:
    """The HTTP request's span is the ancestor of the publish, and through the AMQP headers'
    traceparent, of the worker's processing of the batch and of its database transaction; the
    worker's log lines carry the same trace id, the batch id and the workspace."""
    api = make_api(stack.settings)
    tenant = api.tenant()

    with one_worker(stack, otlp_endpoint=collector.url) as pool:
        response = api.ingest(tenant, events("t-1", "t-2"))
        assert response.status_code == 202, response.text
        (server,) = [
            from_memory(span)
            for span in spans.get_finished_spans()
            if span.name == "POST /v1/ingest" and span.kind is SpanKind.SERVER
        ]
        trace_id = server.trace_id
        await wait_until(lambda: committed_groups(pool) == 1, what="the worker's commit")
        # Stopped as a process manager stops it, which also hands its last spans to the exporter.
        assert pool.terminate() == [0], pool.output()
        await wait_until(
            lambda: any(
                s.name == "postgresql append" for s in in_trace(exported(collector), trace_id)
            ),
            what="the worker's commit exported in the request's trace",
        )

    api_side = in_trace([from_memory(span) for span in spans.get_finished_spans()], trace_id)
    worker_side = in_trace(exported(collector), trace_id)
    trace = {span.name: span for span in api_side + worker_side}
    publish = trace[f"publish {stack.names.main}"]
    process = trace[f"process {stack.names.main}"]
    append = trace["postgresql append"]
    # Recorded where they belong: the request and the publish in the API, the rest in the worker.
    assert {publish.span_id} == {span.span_id for span in api_side if span.name == publish.name}
    assert {process.span_id, append.span_id} <= {span.span_id for span in worker_side}
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent_id == server.span_id
    assert process.kind is SpanKind.CONSUMER
    assert process.parent_id == publish.span_id
    assert process.parent_is_remote
    assert append.kind is SpanKind.CLIENT
    assert append.parent_id == process.span_id
    assert append.attributes["eventcore.inserted"] == 2

    (committed,) = worker_logs(pool).named("worker.batch_committed")
    assert committed["trace_id"] == f"{trace_id:032x}"
    assert committed["workspace_ids"] == [tenant.owner.workspace_id]
    assert committed["batch_id"] == process.attributes["eventcore.batch_id"]
    assert (committed["inserted"], committed["duplicates"]) == (2, 0)
    (access,) = [line for line in logs.named("http.request") if line["route"] == "/v1/ingest"]
    assert access["trace_id"] == f"{trace_id:032x}"


async def test_the_api_reports_queue_lengths_and_publish_latency(
    stack: Stack, make_api: ApiFactory
) -> None:
    """/metrics reads the queue's length from RabbitMQ when scraped, and times each publish
    until the broker confirmed it; /health/ready reports the database, the queue and Redis."""
    api = make_api(stack.settings)
    tenant = api.tenant()
    ready = api.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "queue": "ok", "redis": "ok"}
    before = scrape(api)

    for n in range(3):
        assert api.ingest(tenant, events(f"q-{n}")).status_code == 202

    def main_queue_holds_three() -> bool:
        return scrape(api).value("eventcore_queue_messages", queue="main") == 3

    await wait_until(main_queue_holds_three, what="three messages reported in the main queue")
    after = scrape(api)
    assert after.value("eventcore_queue_consumers", queue="main") == 0
    assert after.has("eventcore_queue_messages", queue="dead_letter")
    assert after.value("eventcore_queue_messages", queue="dead_letter") == 0
    assert after.value("eventcore_queue_messages", queue="retry") == 0
    confirmed = "eventcore_queue_publish_seconds_count"
    assert (
        after.value(confirmed, outcome="confirmed") - before.value(confirmed, outcome="confirmed")
        == 3
    )


async def read_worker_metrics(port: int) -> Scrape:
    def get() -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)

    response = await asyncio.to_thread(get)
    assert response.status_code == 200
    return Scrape(response.text)


def serving_metrics(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


async def forget_committed_keys(stack: Stack) -> None:
    """Lose everything the stack keeps in Redis, as a Redis restart or eviction would."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await delete_prefixed(client, stack.prefix)
    finally:
        await client.aclose()


async def test_the_worker_reports_batches_commits_retries_and_dead_letters(
    stack: Stack, make_api: ApiFactory
) -> None:
    """The worker's metrics port serves batch sizes, commit latency, inserted and duplicate
    events, retries and dead-lettered messages (by reason), as they happen."""
    api = make_api(stack.settings)
    tenant = api.tenant()
    port = free_port()

    with one_worker(stack, worker_metrics_port=str(port)) as pool:
        eventually(lambda: serving_metrics(port), within=30, what="the worker's metrics port")
        before = await read_worker_metrics(port)

        async def delta(name: str, **labels: str) -> float:
            return (await read_worker_metrics(port)).value(name, **labels) - before.value(
                name, **labels
            )

        async def reaches(name: str, target: float, **labels: str) -> None:
            async def probe() -> float:
                pool.check_running()
                return await delta(name, **labels)

            await wait_for_value(probe, target, what=f"{name}{labels} to grow by {target}")

        assert api.ingest(tenant, events("w-1", "w-2", "w-3")).status_code == 202
        await reaches("eventcore_worker_events_total", 3, outcome="inserted")
        # The API's fast path (the committed keys in Redis) would answer a resend itself; with
        # Redis emptied the resend is queued, and the store is what finds it already there.
        await forget_committed_keys(stack)
        assert api.ingest(tenant, events("w-1", "w-2", "w-3")).status_code == 202
        await reaches("eventcore_worker_events_total", 3, outcome="duplicate")

        await publish_raw(stack.names, b"not a batch")
        await reaches("eventcore_worker_dead_lettered_total", 1, reason="undecodable")

        with psycopg.connect(stack.dsn, autocommit=True) as owner:
            owner.execute(
                "CREATE FUNCTION eventcore.refuse_poison() RETURNS trigger"
                " LANGUAGE plpgsql AS $$ BEGIN IF NEW.type = 'poison' THEN"
                " RAISE EXCEPTION 'poison refused'; END IF; RETURN NEW; END $$;"
                " CREATE TRIGGER refuse_poison BEFORE INSERT ON eventcore.events"
                " FOR EACH ROW EXECUTE FUNCTION eventcore.refuse_poison()"
            )
        assert api.ingest(tenant, events("p-1", kind="poison")).status_code == 202
        await reaches("eventcore_worker_dead_lettered_total", 1, reason="retries_exhausted")

        # Read while the worker still serves them: everything above is counted by now (the
        # last failure is counted before its message is dead-lettered).
        retries = stack.names.max_retries
        assert await delta("eventcore_worker_retries_total") == retries
        assert await delta("eventcore_worker_commit_failures_total", kind="error") == retries + 1
        groups = await delta("eventcore_worker_batch_events_count")
        assert groups >= 2 + retries + 1
        assert await delta("eventcore_worker_commit_seconds_count") == groups - (retries + 1)
        assert await delta("eventcore_worker_batch_events_sum") == 3 + 3 + retries + 1
        assert pool.terminate() == [0], pool.output()


async def wait_for_value(
    probe: Callable[[], Any], target: float, *, within: float = 30.0, what: str
) -> None:
    last = await probe()
    try:
        async with asyncio.timeout(within):
            while last < target:
                await asyncio.sleep(0.05)
                last = await probe()
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {within} s (last: {last})")
    assert last == target, f"{what}: went past it, to {last}"
