"""Traces and metrics across the API and a worker, on the real RabbitMQ and PostgreSQL.

The API runs in process (the production app on the distributed profile) and the worker side is a
real ``RabbitConsumer`` feeding a real ``BatchProcessor`` on its own ``PostgresStore``, wrapped as
``eventcore worker`` wraps it; spans are captured in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.http.support import ApiFactory
from tests.observability.conftest import LogLines, Stack, wait_until
from tests.observability.test_metrics import Scrape, scrape
from tests.support.processes import free_port
from tests.support.rabbitmq import AMQP_URL, publish_raw, running

from adapters.clock import SystemClock
from adapters.memory import MemoryCommittedKeys, MemoryQueryCache
from adapters.postgres import PostgresStore
from adapters.rabbitmq import RabbitConsumer
from entrypoints.telemetry import observed_handler, serve_worker_metrics
from eventcore.usecases.processing import BatchProcessor

pytestmark = pytest.mark.integration


def events(*ids: str, kind: str = "click") -> dict[str, Any]:
    return {"events": [{"id": event_id, "type": kind} for event_id in ids]}


@asynccontextmanager
async def worker_side(stack: Stack) -> AsyncIterator[RabbitConsumer]:
    """A consumer committing through a BatchProcessor of its own, as a worker process would."""
    async with await PostgresStore.open(stack.dsn, max_size=2) as store:
        processor = BatchProcessor(store, MemoryCommittedKeys(), MemoryQueryCache(SystemClock()))
        consumer = RabbitConsumer(AMQP_URL, stack.names)
        async with running(consumer, observed_handler(processor.process), max_wait=0.02):
            yield consumer


def in_trace(spans: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [
        span
        for span in spans.get_finished_spans()
        if span.context is not None and span.context.trace_id == trace_id
    ]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_one_trace_links_the_request_the_publish_and_the_worker_commit(
    stack: Stack, make_api: ApiFactory, spans: InMemorySpanExporter, logs: LogLines
) -> None:
    """The HTTP request's span is the ancestor of the publish, and through the AMQP headers'
    traceparent, of the worker's processing of the batch and of its database transaction; the
    worker's log lines carry the same trace id, the batch id and the workspace."""
    api = make_api(stack.env)
    tenant = api.tenant()

    async with worker_side(stack):
        response = api.ingest(tenant, events("t-1", "t-2"))
        assert response.status_code == 202, response.text
        (server,) = [
            span
            for span in spans.get_finished_spans()
            if span.name == "POST /v1/ingest" and span.kind is SpanKind.SERVER
        ]
        assert server.context is not None
        trace_id = server.context.trace_id
        await wait_until(
            lambda: any(s.name == "postgresql append" for s in in_trace(spans, trace_id)),
            what="the worker's commit in the request's trace",
        )

    trace = {span.name: span for span in in_trace(spans, trace_id)}
    publish = trace[f"publish {stack.names.main}"]
    process = trace[f"process {stack.names.main}"]
    append = trace["postgresql append"]
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent is not None
    assert publish.parent.span_id == span_id(server)
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None
    assert process.parent.span_id == span_id(publish)
    assert process.parent.is_remote
    assert append.kind is SpanKind.CLIENT
    assert append.parent is not None
    assert append.parent.span_id == span_id(process)
    assert append.attributes is not None
    assert append.attributes["eventcore.inserted"] == 2

    (committed,) = logs.named("worker.batch_committed")
    assert committed["trace_id"] == f"{trace_id:032x}"
    assert committed["workspace_ids"] == [tenant.owner.workspace_id]
    assert process.attributes is not None
    assert committed["batch_id"] == process.attributes["eventcore.batch_id"]
    assert (committed["inserted"], committed["duplicates"]) == (2, 0)
    (access,) = [line for line in logs.named("http.request") if line["route"] == "/v1/ingest"]
    assert access["trace_id"] == f"{trace_id:032x}"


async def test_the_api_reports_queue_lengths_and_publish_latency(
    stack: Stack, make_api: ApiFactory
) -> None:
    """/metrics reads the queue's length from RabbitMQ when scraped, and times each publish
    until the broker confirmed it; /health/ready reports the database and the queue."""
    api = make_api(stack.env)
    tenant = api.tenant()
    ready = api.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "queue": "ok"}
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


async def test_the_worker_reports_batches_commits_retries_and_dead_letters(
    stack: Stack, make_api: ApiFactory
) -> None:
    """The worker's metrics port serves batch sizes, commit latency, inserted and duplicate
    events, retries and dead-lettered messages (by reason), as they happen."""
    api = make_api(stack.env)
    tenant = api.tenant()
    port = free_port()
    server = serve_worker_metrics("127.0.0.1", port)
    assert server is not None
    try:
        before = await read_worker_metrics(port)

        async def delta(name: str, **labels: str) -> float:
            return (await read_worker_metrics(port)).value(name, **labels) - before.value(
                name, **labels
            )

        async def reaches(name: str, target: float, **labels: str) -> None:
            async def probe() -> float:
                return await delta(name, **labels)

            await wait_for_value(probe, target, what=f"{name}{labels} to grow by {target}")

        async with worker_side(stack):
            assert api.ingest(tenant, events("w-1", "w-2", "w-3")).status_code == 202
            await reaches("eventcore_worker_events_total", 3, outcome="inserted")
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

        retries = stack.names.max_retries
        assert await delta("eventcore_worker_retries_total") == retries
        assert await delta("eventcore_worker_commit_failures_total", kind="error") == retries + 1
        groups = await delta("eventcore_worker_batch_events_count")
        assert groups >= 2 + retries + 1
        assert await delta("eventcore_worker_commit_seconds_count") == groups - (retries + 1)
        assert await delta("eventcore_worker_batch_events_sum") == 3 + 3 + retries + 1
    finally:
        server.close()


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
