"""Traces and the worker's metrics: OpenTelemetry set up once per process, Prometheus for workers.

Tracing. Every process gets one SDK tracer provider (unless the program embedding eventcore set
its own first, which is then used as it is). Spans are recorded only while something exports
them: with no ``EVENTCORE_OTLP_ENDPOINT`` the sampler drops every span, which still gives each
request and batch a trace id (for the logs, and carried to the worker in the AMQP headers) at
almost no cost. With the endpoint set, spans go to an OTLP/HTTP collector in batches.

Worker metrics. ``eventcore worker`` serves the default Prometheus registry on its own small port
(``EVENTCORE_WORKER_METRICS_PORT``); :func:`observed_handler` wraps the core's batch processor so
that the core itself never records anything.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from prometheus_client import Counter, Histogram, start_http_server

from eventcore.entrypoints.settings import Settings
from eventcore.errors import Unavailable
from eventcore.events import IngestBatch
from eventcore.ports import AppendResult

log = structlog.get_logger("eventcore.telemetry")


class _Exporters(SpanProcessor):
    """The span processors currently attached; spans are recorded only while there is one."""

    def __init__(self) -> None:
        self._processors: tuple[SpanProcessor, ...] = ()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._processors)

    def add(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._processors = (*self._processors, processor)

    def remove(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._processors = tuple(p for p in self._processors if p is not processor)

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        for processor in self._processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self._processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(processor.force_flush(timeout_millis) for processor in self._processors)


class _RecordWhileExporting(Sampler):
    """Parent-based sampling while spans are exported; otherwise drop (ids are still made)."""

    def __init__(self, exporters: _Exporters) -> None:
        self._exporters = exporters
        self._exporting = ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        sampler = self._exporting if self._exporters.active else ALWAYS_OFF
        return sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "RecordWhileExporting"


_EXPORTERS = _Exporters()
_setup_lock = threading.Lock()
_endpoints: set[str] = set()
# Whether this process's tracer provider is eventcore's own (it records only while exporting).
_own_provider: list[bool] = []


def recording() -> bool:
    """Whether spans made now would be recorded: eventcore's provider is exporting, or the
    program embedding eventcore installed a provider of its own (its sampler decides). When not,
    the request path makes no span objects at all and carries trace ids by itself."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        return False
    return _EXPORTERS.active or not _own_provider


def setup_tracing(settings: Settings, service: str) -> None:
    """Install this process's tracer provider (once) and the OTLP exporter if one is configured.

    ``service`` names the process in traces unless ``OTEL_SERVICE_NAME`` says otherwise.
    """
    with _setup_lock:
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            provider = TracerProvider(
                sampler=_RecordWhileExporting(_EXPORTERS),
                resource=Resource.create({SERVICE_NAME: service}),
            )
            provider.add_span_processor(_EXPORTERS)
            trace.set_tracer_provider(provider)
            _own_provider.append(True)
        endpoint = settings.otlp_endpoint
        if endpoint and endpoint not in _endpoints:
            # Imported here: the exporter pulls in protobuf and requests, which a process that
            # exports nothing does not need to load.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _endpoints.add(endpoint)
            add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
            log.info("tracing.exporting", endpoint=traces_url(endpoint))


def traces_url(endpoint: str) -> str:
    """The collector's OTLP/HTTP traces URL: a bare ``http://host:4318`` gets ``/v1/traces``."""
    if urlsplit(endpoint).path.strip("/"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def add_span_processor(processor: SpanProcessor) -> None:
    """Send every span of this process to ``processor`` too (and record spans from now on)."""
    _EXPORTERS.add(processor)


def remove_span_processor(processor: SpanProcessor) -> None:
    _EXPORTERS.remove(processor)


def flush_spans(timeout_seconds: float = 5.0) -> None:
    """Hand the spans still buffered to the exporters, e.g. before the process ends."""
    _EXPORTERS.force_flush(int(timeout_seconds * 1000))


class WorkerMetrics(NamedTuple):
    batch_events: Histogram
    commit_seconds: Histogram
    stored_events: Counter
    commit_failures: Counter


@functools.cache
def worker_metrics() -> WorkerMetrics:
    """The worker's metrics (the consumer's own, retries and dead letters, live in
    eventcore.adapters.rabbitmq), registered on first use so that the API does not export them."""
    metrics = WorkerMetrics(
        batch_events=Histogram(
            "eventcore_worker_batch_events",
            "Events in each group of batches a worker commits in one transaction.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
        ),
        commit_seconds=Histogram(
            "eventcore_worker_commit_seconds",
            "Time to commit one group: the database transaction, then the fast-path and cache "
            "updates.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        ),
        stored_events=Counter(
            "eventcore_worker_events_total",
            "Events a worker committed, by outcome: inserted (new) or duplicate (already stored).",
            ["outcome"],
        ),
        commit_failures=Counter(
            "eventcore_worker_commit_failures_total",
            "Groups whose commit failed, by kind: unavailable (a dependency is down) or error.",
            ["kind"],
        ),
    )
    for outcome in ("inserted", "duplicate"):
        metrics.stored_events.labels(outcome)
    for kind in ("unavailable", "error"):
        metrics.commit_failures.labels(kind)
    return metrics


Process = Callable[[Sequence[IngestBatch]], Awaitable[AppendResult]]


def observed_handler(process: Process) -> Callable[[list[IngestBatch]], Awaitable[AppendResult]]:
    """``process`` (the core's BatchProcessor.process) with the worker's metrics and one log line
    per committed group."""

    metrics = worker_metrics()

    async def handle(batches: list[IngestBatch]) -> AppendResult:
        events = sum(len(batch.events) for batch in batches)
        metrics.batch_events.observe(events)
        started = time.perf_counter()
        try:
            result = await process(batches)
        except Unavailable:
            metrics.commit_failures.labels("unavailable").inc()
            raise
        except Exception:
            metrics.commit_failures.labels("error").inc()
            raise
        elapsed = time.perf_counter() - started
        metrics.commit_seconds.observe(elapsed)
        metrics.stored_events.labels("inserted").inc(result.inserted)
        metrics.stored_events.labels("duplicate").inc(result.duplicates)
        log.info(
            "worker.batch_committed",
            messages=len(batches),
            events=events,
            inserted=result.inserted,
            duplicates=result.duplicates,
            duration_ms=round(elapsed * 1000, 2),
        )
        return result

    return handle


class MetricsServer:
    """The worker's Prometheus endpoint: a small HTTP server on a thread of its own."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        port: int = self._server.server_port
        return port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_worker_metrics(host: str, port: int) -> MetricsServer | None:
    """Serve ``/metrics`` on ``host:port`` (0: not at all). A port already taken is logged, not
    fatal: a worker without metrics still commits, and Prometheus reports the target down."""
    if port == 0:
        return None
    worker_metrics()
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        log.error("worker.metrics_unavailable", host=host, port=port, error=str(exc))
        return None
    log.info("worker.metrics_serving", host=host, port=server.server_port)
    return MetricsServer(server, thread)
