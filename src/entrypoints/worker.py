"""The queue worker: consume ingest batches from RabbitMQ and commit them exactly once."""

from __future__ import annotations

import asyncio
import signal

import structlog

from entrypoints.container import build_container, start, stop
from entrypoints.settings import ConfigurationError, Settings

log = structlog.get_logger("eventcore.worker")


async def run_worker(settings: Settings) -> None:
    """Consume until SIGTERM or SIGINT; the batch in flight is committed and acked, or left unacked."""
    if not settings.distributed:
        raise ConfigurationError(
            "`eventcore worker` consumes RabbitMQ: set EVENTCORE_AMQP_URL (and a PostgreSQL "
            "EVENTCORE_DATABASE_URL). The embedded profile needs no worker."
        )
    from adapters.rabbitmq import RabbitConsumer

    container = build_container(settings)
    platform = await start(container)
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
            platform.processor.process,
            max_events=settings.worker_batch_events,
            max_wait=settings.worker_batch_wait_ms / 1000,
            prefetch=settings.worker_prefetch,
        )
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await stop(container)
        log.info("worker.stopped")
