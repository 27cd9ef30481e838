"""RabbitConsumer: groups, acks only after the handler, retries, dead letters, redelivery."""

from __future__ import annotations

import asyncio
import contextlib

import aiormq
import pytest
from tests.support.rabbitmq import (
    AMQP_URL,
    Recorder,
    TcpProxy,
    eventually,
    numbered_batch,
    publish_raw,
    rabbitmq_topology,
    running,
    unique_names,
)

from eventcore.adapters.rabbitmq import (
    QueueNames,
    RabbitConsumer,
    RabbitOptions,
    RabbitPublisher,
    decode_message,
    dlq_list,
    dlq_replay,
    encode_message,
    queue_depth,
)
from eventcore.errors import Unavailable
from eventcore.events import IngestBatch, encode_batch

pytestmark = pytest.mark.integration


async def publish(names: QueueNames, *numbers: int, events: int = 1) -> None:
    async with await RabbitPublisher.open(RabbitOptions(AMQP_URL, names)) as publisher:
        for number in numbers:
            await publisher.publish(numbered_batch(number, events))


async def test_groups_close_at_max_events(names: QueueNames) -> None:
    """Batches are handed over in groups that close once they hold max_events events."""
    await publish(names, 1, 2, 3, 4, 5, events=10)
    recorder = Recorder()
    async with running(
        RabbitConsumer(RabbitOptions(AMQP_URL, names)),
        recorder,
        max_events=20,
        max_wait=5.0,
        prefetch=10,
    ):
        await recorder.wait_for_batches(4)
    assert [len(group) for group in recorder.groups[:2]] == [2, 2]
    assert [b.events[0].id for b in recorder.batches[:4]] == ["b1-e0", "b2-e0", "b3-e0", "b4-e0"]


async def test_group_closes_after_max_wait(names: QueueNames) -> None:
    """A group smaller than max_events is handed over once max_wait has passed."""
    await publish(names, 1, 2, 3)
    recorder = Recorder()
    async with running(
        RabbitConsumer(RabbitOptions(AMQP_URL, names)), recorder, max_events=1000, max_wait=0.2
    ):
        await recorder.wait_for_batches(3)
        assert await queue_depth(AMQP_URL, names) == 0
    assert len(recorder.batches) == 3


async def test_acks_follow_the_handlers_return(
    names: QueueNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the handler runs its messages are delivered but not acked; after it returns they
    are acked together, with one Basic.Ack for the highest tag and ``multiple``."""
    await publish(names, 1, 2, 3)
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    acked: list[tuple[int, bool]] = []
    original = aiormq.Channel.basic_ack

    async def recording_ack(
        self: aiormq.Channel, delivery_tag: int, multiple: bool = False, **kwargs: object
    ) -> None:
        acked.append((delivery_tag, multiple))
        await original(self, delivery_tag, multiple, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(aiormq.Channel, "basic_ack", recording_ack)
    consumer = RabbitConsumer(RabbitOptions(AMQP_URL, names))
    async with running(consumer, recorder, max_events=1000, max_wait=0.3) as task:
        await recorder.wait_for_batches(3)
        assert await queue_depth(AMQP_URL, names) == 0
        assert acked == []
        recorder.gate.set()
        await eventually(lambda: asyncio.sleep(0, len(acked)), lambda count: count == 1)
        assert acked == [(3, True)]
        consumer.stop()
        await task
    assert recorder.returned == [0]
    # Acked for good: closing the consumer's connection brought nothing back.
    assert await queue_depth(AMQP_URL, names) == 0


async def test_messages_of_an_unfinished_group_are_redelivered(names: QueueNames) -> None:
    """A consumer that dies while its handler runs leaves the group to the next consumer."""
    await publish(names, 1, 2)
    stuck = Recorder()
    stuck.gate = asyncio.Event()
    task = asyncio.create_task(
        RabbitConsumer(RabbitOptions(AMQP_URL, names)).run(stuck, max_wait=0.2)
    )
    try:
        await stuck.wait_for_batches(2)
        assert await queue_depth(AMQP_URL, names) == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert stuck.returned == []
    await eventually(lambda: queue_depth(AMQP_URL, names), lambda depth: depth == 2)
    recorder = Recorder()
    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), recorder, max_wait=0.2):
        await recorder.wait_for_batches(2)
    assert sorted(b.events[0].id for b in recorder.batches) == ["b1-e0", "b2-e0"]


async def test_stop_finishes_the_group_in_flight(names: QueueNames) -> None:
    """stop() while the handler runs lets it finish and ack, then run() returns."""
    await publish(names, 1)
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    consumer = RabbitConsumer(RabbitOptions(AMQP_URL, names))
    task = asyncio.create_task(consumer.run(recorder))
    await recorder.wait_for_batches(1)
    consumer.stop()
    await asyncio.sleep(0.05)
    assert not task.done()
    recorder.gate.set()
    async with asyncio.timeout(10):
        await task
    assert recorder.returned == [0]
    assert await queue_depth(AMQP_URL, names) == 0


async def test_failing_batch_is_retried_then_dead_lettered_then_replayed(names: QueueNames) -> None:
    """A batch whose handler keeps failing is retried 3 times, dead-lettered with its error, and replayed."""
    await publish(names, 7, events=4)
    failing = Recorder()
    failing.fail_with = lambda call: RuntimeError(f"database on fire (call {call})")
    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), failing, max_wait=0.01):
        letters = await eventually(lambda: dlq_list(AMQP_URL, names), lambda found: len(found) == 1)
    assert len(failing.groups) == 1 + names.max_retries
    assert all(group == [numbered_batch(7, 4)] for group in failing.groups)
    letter = letters[0]
    assert letter.reason == "retries_exhausted"
    assert letter.attempts == 4
    assert letter.last_error == "RuntimeError: database on fire (call 3)"
    assert (letter.workspace_id, letter.project_id, letter.events) == ("ws1", "p1", 4)
    assert await queue_depth(AMQP_URL, names) == 0

    assert await dlq_replay(AMQP_URL, names) == 1
    assert await dlq_list(AMQP_URL, names) == []
    working = Recorder()
    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), working, max_wait=0.01):
        await working.wait_for_batches(1)
    assert working.batches == [numbered_batch(7, 4)]
    assert await dlq_list(AMQP_URL, names) == []


async def test_batch_succeeding_on_a_retry_is_not_dead_lettered(names: QueueNames) -> None:
    """A batch that fails once goes through the delay queue and is committed on its retry."""
    await publish(names, 1)
    recorder = Recorder()
    recorder.fail_with = lambda call: RuntimeError("transient") if call == 0 else None
    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), recorder, max_wait=0.01):
        await recorder.wait_for_calls(2)
        await eventually(lambda: asyncio.sleep(0, recorder.returned), lambda done: done == [1])
    assert recorder.groups == [[numbered_batch(1)], [numbered_batch(1)]]
    assert await dlq_list(AMQP_URL, names) == []


async def test_undecodable_message_goes_to_the_dead_letter_queue(names: QueueNames) -> None:
    """A message that is not an ingest batch is dead-lettered and never reaches the handler."""
    await publish_raw(names, b"certainly not a batch")
    await publish(names, 1)
    recorder = Recorder()
    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), recorder, max_wait=0.01):
        await recorder.wait_for_batches(1)
        letters = await eventually(lambda: dlq_list(AMQP_URL, names), lambda found: len(found) == 1)
    assert recorder.batches == [numbered_batch(1)]
    letter = letters[0]
    assert letter.reason == "undecodable"
    assert letter.size == len(b"certainly not a batch")
    assert letter.attempts == 0
    assert letter.workspace_id is None
    assert letter.events is None
    assert letter.last_error is not None
    assert "Not an ingest message" in letter.last_error
    assert await queue_depth(AMQP_URL, names) == 0


async def test_unavailable_dependency_requeues_without_spending_retries() -> None:
    """Unavailable from the handler returns the batch to the main queue instead of a delay queue."""
    # Delays far longer than the test: the batch can only come back through the main queue.
    async with rabbitmq_topology(unique_names((60.0, 60.0, 60.0))) as names:
        await publish(names, 1)
        recorder = Recorder()
        recorder.fail_with = lambda call: Unavailable("database down") if call < 2 else None
        consumer = RabbitConsumer(RabbitOptions(AMQP_URL, names, reconnect_delay=0.01))
        async with running(consumer, recorder, max_wait=0.01):
            await recorder.wait_for_calls(3)
            await eventually(lambda: asyncio.sleep(0, recorder.returned), lambda done: done == [2])
        assert recorder.groups == [[numbered_batch(1)]] * 3
        assert await dlq_list(AMQP_URL, names) == []


async def test_consumer_reconnects_after_the_connection_drops(
    names: QueueNames, proxy: TcpProxy
) -> None:
    """A consumer whose connection is cut reconnects by itself and goes on consuming.

    A batch whose ack was lost with the connection comes again: at least once, never lost.
    """
    recorder = Recorder()
    consumer = RabbitConsumer(
        RabbitOptions(proxy.url, names, reconnect_delay=0.05, max_reconnect_delay=0.2)
    )
    async with running(consumer, recorder, max_wait=0.01):
        await publish(names, 1)
        await recorder.wait_for_batches(1)
        proxy.cut()
        await asyncio.sleep(0.2)
        await publish(names, 2)
        proxy.restore()
        await eventually(
            lambda: asyncio.sleep(0, {b.events[0].id for b in recorder.batches}),
            lambda seen: seen == {"b1-e0", "b2-e0"},
        )
    assert await queue_depth(AMQP_URL, names) == 0


async def delete_queue(queue: str) -> None:
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()


async def queue_exists(queue: str) -> bool:
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.queue_declare(queue, passive=True)
    except aiormq.ChannelNotFoundEntity:
        return False
    finally:
        await connection.close()
    return True


async def test_batch_is_kept_when_it_cannot_be_moved_to_a_retry_queue(names: QueueNames) -> None:
    """If the retry queue refuses the republish, the original goes back to the main queue, not lost."""
    await publish(names, 1)
    recorder = Recorder()
    gate = asyncio.Event()
    recorder.gate = gate
    recorder.fail_with = lambda call: RuntimeError("first try fails") if call == 0 else None
    consumer = RabbitConsumer(RabbitOptions(AMQP_URL, names, reconnect_delay=0.01))
    async with running(consumer, recorder, max_wait=0.01):
        await recorder.wait_for_calls(1)
        # The delay queue vanishes while the handler runs: the retry publish is returned.
        await delete_queue(names.retry_queues[0])
        gate.set()
        await recorder.wait_for_calls(2)
        await eventually(lambda: asyncio.sleep(0, recorder.returned), lambda done: done == [1])
    assert recorder.groups == [[numbered_batch(1)], [numbered_batch(1)]]
    assert await dlq_list(AMQP_URL, names) == []


async def test_consumer_comes_back_when_its_queue_is_deleted(names: QueueNames) -> None:
    """A consumer whose queue is deleted declares the topology again and goes on consuming."""
    recorder = Recorder()
    consumer = RabbitConsumer(RabbitOptions(AMQP_URL, names, reconnect_delay=0.01))
    async with running(consumer, recorder, max_wait=0.01):
        await publish(names, 1)
        await recorder.wait_for_batches(1)
        await delete_queue(names.main)
        # The consumer's next session declares the queue again. (Had a publisher redeclared
        # it first, RabbitMQ might not cancel the consumer at all: let the consumer see it.)
        await eventually(lambda: queue_exists(names.main), lambda exists: exists)
        await publish(names, 2)
        await recorder.wait_for_batches(2)
    assert [b.events[0].id for b in recorder.batches] == ["b1-e0", "b2-e0"]


async def test_one_bad_batch_does_not_take_its_group_to_the_retry_queues(names: QueueNames) -> None:
    """When a group fails, each batch is tried alone: good ones commit, only the bad one retries."""
    for number in (1, 2, 3):
        await publish(names, number)
    poison = numbered_batch(2)
    committed: list[IngestBatch] = []
    groups: list[int] = []

    async def handler(batches: list[IngestBatch]) -> None:
        groups.append(len(batches))
        if poison in batches:
            raise RuntimeError("cannot store this one")
        committed.extend(batches)

    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), handler, max_wait=0.3):
        letters = await eventually(lambda: dlq_list(AMQP_URL, names), lambda found: len(found) == 1)
    assert sorted(committed, key=lambda b: b.events[0].id) == [numbered_batch(1), numbered_batch(3)]
    assert groups[0] == 3  # they did arrive as one group
    assert letters[0].attempts == 1 + names.max_retries
    assert letters[0].events == len(poison.events)


async def test_a_message_of_several_batches_reaches_the_handler_as_its_batches(
    names: QueueNames,
) -> None:
    """A shared message's batches are handed over in order; one acked message per delivery."""
    held = [numbered_batch(1), numbered_batch(2, workspace_id="ws2"), numbered_batch(3)]
    await publish_raw(names, encode_message(held))
    recorder = Recorder()
    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), recorder, max_wait=0.01):
        await recorder.wait_for_batches(3)
    assert recorder.groups == [held]
    assert await eventually(lambda: queue_depth(AMQP_URL, names), lambda depth: depth == 0) == 0


async def test_a_message_of_one_batch_object_is_still_read(names: QueueNames) -> None:
    """A body that is one batch object (the format before shared messages) is one batch."""
    await publish_raw(names, encode_batch(numbered_batch(5, events=3)))
    recorder = Recorder()
    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), recorder, max_wait=0.01):
        await recorder.wait_for_batches(1)
    assert recorder.groups == [[numbered_batch(5, events=3)]]


async def test_a_bad_batch_of_a_shared_message_retries_alone_with_its_own_trace(
    names: QueueNames,
) -> None:
    """The good batches of a shared message are committed; the bad one leaves it in a message of
    its own, with its own traceparent and the shared message's attempt + 1, and is retried alone
    until it is dead-lettered; nothing else is retried."""
    traceparents = [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "",
    ]
    held = [numbered_batch(1), numbered_batch(2, events=2), numbered_batch(3)]
    poison = held[1]
    await publish_raw(
        names,
        encode_message(held),
        {"x-attempt": 0, "traceparent": traceparents[0], "x-traceparents": traceparents},
    )
    committed: list[IngestBatch] = []
    groups: list[list[IngestBatch]] = []

    async def handler(batches: list[IngestBatch]) -> None:
        groups.append(list(batches))
        if poison in batches:
            raise RuntimeError("cannot store this one")
        committed.extend(batches)

    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), handler, max_wait=0.01):
        letters = await eventually(lambda: dlq_list(AMQP_URL, names), lambda found: len(found) == 1)
    assert committed == [numbered_batch(1), numbered_batch(3)]
    assert groups[0] == held
    assert groups[1:4] == [[batch] for batch in held]
    assert groups[4:] == [[poison]] * names.max_retries
    assert (letters[0].attempts, letters[0].events) == (1 + names.max_retries, 2)
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        letter = await channel.basic_get(names.dead_letter, no_ack=True)
        headers = letter.header.properties.headers or {}
        assert decode_message(letter.body) == [poison]
        assert headers["traceparent"] == traceparents[1]
        assert "x-traceparents" not in headers
        assert headers["x-dead-reason"] == "retries_exhausted"
    finally:
        await connection.close()
    assert await queue_depth(AMQP_URL, names) == 0
