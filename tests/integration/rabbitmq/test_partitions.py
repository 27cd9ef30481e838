"""Queue partitions: workspaces spread over several main queues by a hash of their id, and a
consumer that takes every partition in turn, so one workspace's backlog does not hold back the
others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tests.support.rabbitmq import (
    AMQP_URL,
    Recorder,
    eventually,
    numbered_batch,
    rabbitmq_topology,
    running,
    unique_names,
)

from eventcore.adapters.rabbitmq import (
    QueueNames,
    RabbitConsumer,
    RabbitOptions,
    RabbitPublisher,
    queue_depth,
)
from eventcore.adapters.rabbitmq._amqp import open_channel, open_connection
from eventcore.adapters.rabbitmq._deadletter import _declared_count

pytestmark = pytest.mark.integration

PARTITIONS = 4


@pytest.fixture
async def partitioned() -> AsyncIterator[QueueNames]:
    plain = unique_names()
    names = QueueNames(plain.base, plain.retry_delays, partitions=PARTITIONS)
    async with rabbitmq_topology(names) as chosen:
        yield chosen


def apart(names: QueueNames) -> tuple[str, str]:
    """Two workspace ids whose batches go to different partitions."""
    first = "ws-flood"
    other = next(
        f"ws-quiet-{n}"
        for n in range(1000)
        if names.partition(f"ws-quiet-{n}") != names.partition(first)
    )
    return first, other


async def ready_by_queue(names: QueueNames) -> dict[str, int]:
    connection = await open_connection(AMQP_URL, within=10)
    try:
        channel = await open_channel(connection, confirms=False, within=10)
        return {queue: await _declared_count(channel, queue) for queue in names.main_queues}
    finally:
        await connection.close()


def test_the_partition_is_a_stable_hash_of_the_workspace() -> None:
    """One partition: the main queue. Several: the same workspace always lands in the same one,
    and many workspaces use them all."""
    assert QueueNames("q").partition("any") == "q"
    assert QueueNames("q").main_queues == ("q",)
    names = QueueNames("q", partitions=PARTITIONS)
    assert names.main_queues == ("q", "q.p1", "q.p2", "q.p3")
    assert names.partition("ws-1") == names.partition("ws-1")
    assert {names.partition(f"ws-{n}") for n in range(200)} == set(names.main_queues)
    assert set(names.main_queues) <= set(names.queues)
    with pytest.raises(ValueError, match="partitions"):
        QueueNames("q", partitions=0)


async def test_batches_go_to_their_workspaces_partition(partitioned: QueueNames) -> None:
    """Each batch is published to its workspace's partition, and nowhere else."""
    flood, quiet = apart(partitioned)
    async with await RabbitPublisher.open(RabbitOptions(AMQP_URL, partitioned)) as publisher:
        await asyncio.gather(
            *(publisher.publish(numbered_batch(n, workspace_id=flood)) for n in range(5)),
            publisher.publish(numbered_batch(99, workspace_id=quiet)),
        )
        lengths = await publisher.queue_lengths()
    ready = await ready_by_queue(partitioned)
    assert ready[partitioned.partition(flood)] >= 1
    assert ready[partitioned.partition(quiet)] == 1
    assert sum(ready.values()) == ready[partitioned.partition(flood)] + 1
    assert lengths["main"].messages == sum(ready.values())


async def test_a_backlog_in_one_partition_does_not_hold_back_another(
    partitioned: QueueNames,
) -> None:
    """40 messages of one workspace wait before one of another workspace, all delivered to the
    consumer while its first group is being handled: the other workspace's batch is in the
    next group, not behind the 40. Every message is acked once (nothing comes back)."""
    flood, quiet = apart(partitioned)
    options = RabbitOptions(AMQP_URL, partitioned)
    async with await RabbitPublisher.open(options) as publisher:
        for n in range(40):
            await publisher.publish(numbered_batch(n, workspace_id=flood))
        await publisher.publish(numbered_batch(99, workspace_id=quiet))
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    consumer = RabbitConsumer(options)
    async with running(consumer, recorder, max_events=1, max_wait=0.01):
        await recorder.wait_for_calls(1)
        # Every message is with the consumer (none ready in the queues) before it goes on.
        await eventually(lambda: queue_depth(AMQP_URL, partitioned), lambda ready: ready == 0)
        recorder.gate.set()
        await recorder.wait_for_batches(41)
        workspaces = [group[0].workspace_id for group in recorder.groups]
        assert quiet in workspaces[:2], workspaces
        await eventually(lambda: asyncio.sleep(0, len(recorder.returned)), lambda n: n == 41)
    assert len(recorder.batches) == 41
    assert await queue_depth(AMQP_URL, partitioned) == 0
