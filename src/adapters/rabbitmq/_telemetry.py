"""Traces and metrics of the queue: the W3C trace context in AMQP headers, spans, counters.

The publisher injects the current trace context (``traceparent``) into each message's headers;
the consumer extracts it from every message of a group and processes the group in one CONSUMER
span, a child of the first message's publish and linked to the others'. Retries and
dead-lettering carry the headers along, so a retried batch stays in its trace.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import structlog
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, SpanKind
from pamqp.common import FieldTable, FieldValue
from prometheus_client import Counter, Histogram

from eventcore.errors import Unavailable
from eventcore.events import IngestBatch

_tracer = trace.get_tracer("eventcore.adapters.rabbitmq")

PUBLISH_SECONDS = Histogram(
    "eventcore_queue_publish_seconds",
    "Time from publishing an ingest batch to the broker's confirm (or the failure), by outcome: "
    "confirmed, queue_full, unavailable.",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_PUBLISH_SECONDS = {
    outcome: PUBLISH_SECONDS.labels(outcome)
    for outcome in ("confirmed", "queue_full", "unavailable")
}


class ConsumerMetrics(NamedTuple):
    retries: Counter
    dead_lettered: Counter
    requeued: Counter


@functools.cache
def consumer_metrics() -> ConsumerMetrics:
    """The consumer's counters, registered once a consumer exists, so that a process that only
    publishes (the API) does not export them as zeros."""
    dead_lettered = Counter(
        "eventcore_worker_dead_lettered_total",
        "Messages a worker moved to the dead-letter queue, by reason: retries_exhausted, "
        "undecodable.",
        ["reason"],
    )
    for reason in ("retries_exhausted", "undecodable"):
        dead_lettered.labels(reason)
    return ConsumerMetrics(
        retries=Counter(
            "eventcore_worker_retries_total",
            "Batches a worker sent to a retry (delay) queue because their commit failed.",
        ),
        dead_lettered=dead_lettered,
        requeued=Counter(
            "eventcore_worker_requeued_total",
            "Messages a worker handed back to the queue unprocessed (a dependency was down, or "
            "a retry could not be published); they are delivered again.",
        ),
    )


class _HeaderGetter(Getter[FieldTable]):
    """Reads propagation fields from AMQP headers, whose strings may arrive as bytes."""

    def get(self, carrier: FieldTable, key: str) -> list[str] | None:
        value: FieldValue = carrier.get(key)
        if isinstance(value, bytes):
            return [value.decode("latin-1")]
        if isinstance(value, str):
            return [value]
        return None

    def keys(self, carrier: FieldTable) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


@contextmanager
def publishing(queue: str, batch: IngestBatch, headers: FieldTable) -> Iterator[None]:
    """A PRODUCER span around one publish, its context injected into ``headers`` (unless they
    carry one already); the time to the broker's answer is recorded by outcome.

    Outside a recorded trace (no exporter: the request's span is not recording) no span is made;
    the caller's trace context, if any, still travels in the headers."""
    started = time.perf_counter()
    outcome = "confirmed"
    try:
        if trace.get_current_span().is_recording():
            with _tracer.start_as_current_span(
                f"publish {queue}",
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": queue,
                    "eventcore.workspace_id": batch.workspace_id,
                    "eventcore.events": len(batch.events),
                },
            ):
                _inject(headers)
                yield
        else:
            _inject(headers)
            yield
    except Unavailable as exc:
        outcome = "queue_full" if exc.code == "queue_full" else "unavailable"
        raise
    finally:
        _PUBLISH_SECONDS[outcome].observe(time.perf_counter() - started)


def _inject(headers: FieldTable) -> None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for name, value in carrier.items():
        # A context the caller put in the headers itself is theirs to choose.
        headers.setdefault(name, value)


def producer_context(headers: FieldTable | None) -> Context | None:
    """The trace context a message was published in, if its headers carry a valid one."""
    if not headers:
        return None
    extracted = propagate.extract(headers, getter=_GETTER)
    span_context = trace.get_current_span(extracted).get_span_context()
    return extracted if span_context.is_valid else None


@contextmanager
def processing_group(
    queue: str, batches: Sequence[IngestBatch], headers: Iterable[FieldTable | None]
) -> Iterator[None]:
    """One CONSUMER span and one log context (``batch_id``, ``workspace_ids``) per group."""
    contexts = [ctx for ctx in (producer_context(h) for h in headers) if ctx is not None]
    parent = contexts[0] if contexts else None
    links = [Link(trace.get_current_span(ctx).get_span_context()) for ctx in contexts[1:]]
    workspace_ids = sorted({batch.workspace_id for batch in batches})
    batch_id = uuid.uuid4().hex
    with (
        structlog.contextvars.bound_contextvars(batch_id=batch_id, workspace_ids=workspace_ids),
        _tracer.start_as_current_span(
            f"process {queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": queue,
                "messaging.batch.message_count": len(batches),
                "eventcore.batch_id": batch_id,
                "eventcore.workspace_ids": workspace_ids,
                "eventcore.events": sum(len(batch.events) for batch in batches),
            },
        ),
    ):
        yield
