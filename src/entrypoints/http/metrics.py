"""Application metrics beside the request metrics of the Prometheus middleware.

Recorded here, at the HTTP edge, so that the core never records anything. With
``eventcore serve --workers N`` each process has its own values; set ``PROMETHEUS_MULTIPROC_DIR``
to an empty directory and ``/metrics`` adds them up across the processes (see the README).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

import structlog
from prometheus_client import Counter, Gauge

from eventcore.errors import RateLimited
from eventcore.usecases.ingest import EventsRejected, IngestReceipt

log = structlog.get_logger("eventcore.metrics")

EVENTS = Counter(
    "eventcore_ingest_events_total",
    "Events received by the ingest API, by outcome (accepted, duplicate, rejected).",
    ["outcome", "reason"],
)
RATE_LIMITED = Counter(
    "eventcore_rate_limited_events_total",
    "Events refused (429) because their workspace was over its rate limit.",
)
QUEUE_MESSAGES = Gauge(
    "eventcore_queue_messages",
    "Messages ready in the ingest queues (main, retry, dead_letter), read from RabbitMQ when "
    "scraped; absent on the embedded profile or when RabbitMQ cannot say.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
QUEUE_CONSUMERS = Gauge(
    "eventcore_queue_consumers",
    "Consumers (workers) attached to the ingest queues, read from RabbitMQ when scraped.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
for _outcome in ("accepted", "duplicate"):
    EVENTS.labels(_outcome, "")

# How long a scrape waits for RabbitMQ's answer before it reports no queue length.
QUEUE_READ_TIMEOUT_SECONDS = 2.0


class QueueLength(Protocol):
    """What the broker says about one queue (or the retry queues together)."""

    @property
    def messages(self) -> int: ...

    @property
    def consumers(self) -> int: ...


# Reads the lengths by queue role: main, retry, dead_letter.
QueueLengths = Callable[[], Awaitable[Mapping[str, QueueLength]]]


def record_receipt(receipt: IngestReceipt) -> None:
    if receipt.accepted:
        EVENTS.labels("accepted", "").inc(receipt.accepted)
    if receipt.duplicates:
        EVENTS.labels("duplicate", "").inc(receipt.duplicates)
    for rejected in receipt.rejected:
        EVENTS.labels("rejected", rejected.code).inc()


@contextmanager
def counting_refusals(events: int) -> Iterator[None]:
    """Count the events of an ingest call that is refused as a whole: over the rate limit, or
    with no valid event (each counted as rejected, by reason)."""
    try:
        yield
    except RateLimited:
        RATE_LIMITED.inc(events)
        raise
    except EventsRejected as exc:
        for rejected in exc.rejected:
            EVENTS.labels("rejected", rejected.code).inc()
        raise


async def refresh_queue_gauges(read_lengths: QueueLengths | None) -> None:
    """Set the queue gauges from RabbitMQ now (a scrape is asking); clear them if it cannot say,
    so that a stale length is never reported as the current one. Without a queue (the
    embedded profile), there is nothing to report."""
    if read_lengths is None:
        _clear_queue_gauges()
        return
    try:
        lengths = await asyncio.wait_for(read_lengths(), QUEUE_READ_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("metrics.queue_lengths_unavailable", error=f"{type(exc).__name__}: {exc}")
        _clear_queue_gauges()
        return
    for queue, length in lengths.items():
        QUEUE_MESSAGES.labels(queue).set(length.messages)
        QUEUE_CONSUMERS.labels(queue).set(length.consumers)


def _clear_queue_gauges() -> None:
    QUEUE_MESSAGES.clear()
    QUEUE_CONSUMERS.clear()
