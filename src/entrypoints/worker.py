"""The queue worker: consume ingest batches from RabbitMQ and commit them exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import structlog
from dependency_injector import providers

from eventcore import failpoints
from eventcore.entrypoints.container import build_container, start, stop
from eventcore.entrypoints.settings import ConfigurationError, Settings
from eventcore.entrypoints.telemetry import (
    flush_spans,
    observed_handler,
    serve_worker_metrics,
    setup_tracing,
)

log = structlog.get_logger("eventcore.worker")


async def run_worker(settings: Settings) -> None:
    """Consume until SIGTERM or SIGINT; the batch in flight is committed and acked, or left unacked."""
    if not settings.distributed:
        raise ConfigurationError(
            "`eventcore worker` consumes RabbitMQ: set EVENTCORE_AMQP_URL (and a PostgreSQL "
            "EVENTCORE_DATABASE_URL). The embedded profile needs no worker."
        )
    from eventcore.adapters.rabbitmq import RabbitConsumer

    install_failpoints(settings.failpoints)
    setup_tracing(settings, service="eventcore-worker")
    container = build_container(settings)
    # A worker consumes; it never publishes, so it opens no publisher of its own.
    container.gateways.queue.override(providers.Object(None))
    platform = await start(container)
    metrics = serve_worker_metrics(settings.worker_metrics_host, settings.worker_metrics_port)
    consumer = RabbitConsumer(
        settings.amqp_url, settings.queue_names, max_length=settings.queue_max_length
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, consumer.stop)
    log.info(
        "worker.started",
        queue=settings.queue_name,
        batch_events=settings.worker_batch_events,
        batch_wait_ms=settings.worker_batch_wait_ms,
    )
    try:
        await consumer.run(
            observed_handler(platform.processor.process),
            max_events=settings.worker_batch_events,
            max_wait=settings.worker_batch_wait_ms / 1000,
            prefetch=settings.worker_prefetch,
        )
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        # Already stopping: a repeated SIGTERM must not cut the closing of connections short
        # (the worker would end by the signal, not with status 0).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        await stop(container)
        if metrics is not None:
            metrics.close()
        flush_spans()
        log.info("worker.stopped")


# The status of a process killed by SIGKILL as a shell reports it (128 + 9).
FAILPOINT_EXIT_STATUS = 137


def install_failpoints(spec: str) -> None:
    """For testing only: ``EVENTCORE_FAILPOINTS="after_insert:3"`` ends the worker abruptly on
    the 3rd pass through that point, as a power cut or SIGKILL would (no cleanup, no acks, no
    COMMIT), so crash tests can stop it exactly between two steps of the commit path."""
    for name, nth in failpoints.parse(spec).items():
        log.warning("worker.failpoint_armed", failpoint=name, hit=nth)
        failpoints.install(name, failpoints.on_nth_hit(nth, _die_at(name)))


def _die_at(name: str) -> failpoints.Hook:
    def die() -> None:
        # Written straight to the descriptor: os._exit flushes no buffer.
        os.write(sys.stderr.fileno(), f"eventcore worker: failpoint {name} reached\n".encode())
        os._exit(FAILPOINT_EXIT_STATUS)

    return die
