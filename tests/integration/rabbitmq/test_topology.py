"""The ingest topology: names derived from one base, declared idempotently, counted."""

from __future__ import annotations

import aiormq
import pytest
from tests.support.rabbitmq import AMQP_URL, numbered_batch

from eventcore.adapters.rabbitmq import (
    QueueNames,
    RabbitOptions,
    RabbitPublisher,
    declare_topology,
    queue_depth,
)
from eventcore.defaults import QUEUE_NAME

pytestmark = pytest.mark.integration


def test_names_derive_from_one_base() -> None:
    """Every queue and the exchange are named after the base, one delay queue per retry."""
    names = QueueNames()
    assert names.main == QUEUE_NAME == "eventcore.ingest"
    assert names.retry_queues == (
        "eventcore.ingest.retry.1",
        "eventcore.ingest.retry.2",
        "eventcore.ingest.retry.3",
    )
    assert names.dead_letter == "eventcore.ingest.dead"
    assert names.exchange == "eventcore.ingest.exchange"
    assert names.max_retries == 3
    assert QueueNames("x", retry_delays=(0.1,)).queues == ("x", "x.retry.1", "x.dead")


def test_names_reject_nonsense() -> None:
    """An empty base or a non-positive delay is refused up front."""
    with pytest.raises(ValueError, match="base"):
        QueueNames("")
    with pytest.raises(ValueError, match="positive"):
        QueueNames("x", retry_delays=(1.0, 0.0))


async def test_declaring_twice_changes_nothing(names: QueueNames) -> None:
    """Declaring the topology again, as every process does at start, keeps queued messages."""
    async with await RabbitPublisher.open(
        RabbitOptions(AMQP_URL, names, max_length=10)
    ) as publisher:
        await publisher.publish(numbered_batch(1))
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await declare_topology(channel, names, max_length=10)
        await declare_topology(channel, names, max_length=10)
        assert await queue_depth(channel, names) == 1
        for queue in names.queues:
            declared = await channel.queue_declare(queue, passive=True)
            assert declared.queue == queue
    finally:
        await connection.close()


async def test_main_queue_is_a_durable_quorum_queue(names: QueueNames) -> None:
    """Redeclaring the main queue as a classic queue is refused: it is a quorum queue."""
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await declare_topology(channel, names, max_length=10)
        with pytest.raises(aiormq.ChannelPreconditionFailed):
            await channel.queue_declare(
                names.main, durable=True, arguments={"x-queue-type": "classic"}
            )
    finally:
        await connection.close()


async def test_queue_depth_counts_ready_messages_by_url(names: QueueNames) -> None:
    """queue_depth given a URL opens its own connection and counts the main queue."""
    async with await RabbitPublisher.open(RabbitOptions(AMQP_URL, names)) as publisher:
        for number in range(3):
            await publisher.publish(numbered_batch(number))
    assert await queue_depth(AMQP_URL, names) == 3
