"""The queue worker: consume ingest batches from RabbitMQ and commit them exactly once."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import structlog

from eventcore.entrypoints.bootstrap import WorkerContainer, close_resources, resolve
from eventcore.entrypoints.preflight import open_checked
from eventcore.entrypoints.settings import ConfigurationError, Settings
from eventcore.entrypoints.telemetry import flush_spans, serve_worker_metrics, setup_tracing

log = structlog.get_logger("eventcore.worker")


async def run_worker(settings: Settings) -> None:
    """Consume until SIGTERM or SIGINT; the batch in flight is committed and acked, or left unacked.

    The gateways are opened and checked once (a server that cannot be reached raises
    :class:`~eventcore.entrypoints.preflight.CannotStart`), and the worker then runs on the very
    graph it checked.
    """
    if not settings.distributed:
        raise ConfigurationError(
            "`eventcore worker` consumes RabbitMQ: set EVENTCORE_AMQP_URL (and a PostgreSQL "
            "EVENTCORE_DATABASE_URL). The embedded profile needs no worker."
        )
    setup_tracing(settings, service="eventcore-worker")
    container = WorkerContainer(settings=settings)
    for name, nth in container.failpoints().armed.items():
        log.warning("worker.failpoint_armed", failpoint=name, hit=nth)
    await open_checked(container, container.readiness)
    try:
        handler = await resolve(container.handler)
        consumer = await resolve(container.consumer)
        metrics = serve_worker_metrics(settings.worker_metrics_host, settings.worker_metrics_port)
        loop = asyncio.get_running_loop()

        def stop(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(consumer.stop)

        # Plain signal handlers rather than the loop's: a loop's handler cannot be taken back
        # without resetting the signal to its default for a moment (a SIGTERM then would kill
        # the worker), and closing the loop resets it too.
        previous_interrupt = signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        log.info(
            "worker.started",
            queue=settings.queue_name,
            batch_events=settings.worker_batch_events,
            batch_wait_ms=settings.worker_batch_wait_ms,
        )
        try:
            await consumer.run(
                handler,
                max_events=settings.worker_batch_events,
                max_wait=settings.worker_batch_wait_ms / 1000,
                prefetch=settings.worker_prefetch,
            )
        finally:
            # Already stopping: a repeated SIGTERM must not cut the closing of connections short
            # (the worker would end by the signal, not with status 0). Ignored from here on, in
            # one step, and by the operating system: the interpreter puts a Python handler back
            # to the default as it exits, but leaves SIG_IGN alone. A second Ctrl-C interrupts
            # as it would anywhere.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(
                signal.SIGINT,
                signal.default_int_handler if previous_interrupt is None else previous_interrupt,
            )
            if metrics is not None:
                metrics.close()
    finally:
        await close_resources(container)
        flush_spans()
        log.info("worker.stopped")
