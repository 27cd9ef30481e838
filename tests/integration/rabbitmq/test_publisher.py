"""RabbitPublisher: confirmed, persistent, pipelined publishes; every failure is Unavailable."""

from __future__ import annotations

import asyncio

import aiormq
import pytest
from pamqp import commands as spec
from tests.support.rabbitmq import (
    AMQP_URL,
    Recorder,
    TcpProxy,
    batch,
    closed_port,
    event_ids,
    numbered_batch,
    running,
)

from eventcore.adapters.rabbitmq import (
    QueueNames,
    RabbitConsumer,
    RabbitOptions,
    RabbitPublisher,
    decode_message,
    queue_depth,
)
from eventcore.errors import QueueFull, QueueUnavailable, Unavailable
from eventcore.events import IngestBatch, encode_batch

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def take_all(names: QueueNames) -> list[IngestBatch]:
    """Every batch waiting in the main queue, in queue order, taken off it."""
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        taken: list[IngestBatch] = []
        while True:
            message = await channel.basic_get(names.main, no_ack=True)
            if not isinstance(message.delivery, spec.Basic.GetOk):
                return taken
            taken.extend(decode_message(message.body))
    finally:
        await connection.close()


def first_ids(batches: list[IngestBatch]) -> list[str]:
    return [b.events[0].id for b in batches]


async def test_published_batch_is_consumed_unchanged(names: QueueNames) -> None:
    """A published batch reaches the consumer's handler exactly as it was sent."""
    sent = batch("e1", "e2", "e3", workspace_id="ws-a", project_id="p-a")
    async with await RabbitPublisher.open(RabbitOptions(AMQP_URL, names)) as publisher:
        await publisher.publish(sent)
    recorder = Recorder()
    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names)), recorder):
        await recorder.wait_for_batches(1)
    assert recorder.batches == [sent]
    assert await queue_depth(AMQP_URL, names) == 0


async def test_message_is_persistent_with_attempt_zero_and_trace_headers(names: QueueNames) -> None:
    """The message is persistent, starts at x-attempt 0 and carries the caller's traceparent."""
    sent = numbered_batch(1)
    async with await RabbitPublisher.open(RabbitOptions(AMQP_URL, names)) as publisher:
        await publisher.publish(sent, headers={"traceparent": TRACEPARENT})
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        message = await channel.basic_get(names.main, no_ack=True)
        assert isinstance(message.delivery, spec.Basic.GetOk)
        properties = message.header.properties
        assert properties.delivery_mode == 2
        assert properties.headers is not None
        assert properties.headers["x-attempt"] == 0
        assert properties.headers["traceparent"] == TRACEPARENT
        assert decode_message(message.body) == [sent]
    finally:
        await connection.close()


class CountingPublish:
    """Counts the broker messages sent (aiormq's basic_publish) and how many are in flight; the
    messages numbered in ``nacked`` are answered with a Basic.Nack instead of being sent."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, nacked: frozenset[int] = frozenset()
    ) -> None:
        self.messages: list[bytes] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.sent = asyncio.Event()
        original = aiormq.Channel.basic_publish

        async def counting(channel: aiormq.Channel, body: bytes, **kwargs: object) -> object:
            if len(self.messages) in nacked:
                self.messages.append(body)
                await asyncio.sleep(0)
                raise aiormq.exceptions.DeliveryError(None, spec.Basic.Nack())
            self.messages.append(body)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.sent.set()
            try:
                return await original(channel, body, **kwargs)  # type: ignore[arg-type]
            finally:
                self.in_flight -= 1

        monkeypatch.setattr(aiormq.Channel, "basic_publish", counting)


async def test_concurrent_publishes_share_messages_and_are_all_confirmed(
    names: QueueNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishes made together share broker messages; every batch is held exactly once."""
    async with await RabbitPublisher.open(RabbitOptions(AMQP_URL, names)) as publisher:
        counting = CountingPublish(monkeypatch)
        await asyncio.gather(*(publisher.publish(numbered_batch(n)) for n in range(200)))
    assert 1 <= len(counting.messages) < 200
    held = await take_all(names)
    assert sorted(first_ids(held)) == sorted(f"b{n}-e0" for n in range(200))
    assert await queue_depth(AMQP_URL, names) == 0


async def test_publishes_made_while_a_message_is_in_flight_share_the_next(
    names: QueueNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish with nothing in flight goes alone and at once; those made while its confirm is
    awaited wait for it and then go together, in the order they were made."""
    options = RabbitOptions(AMQP_URL, names, coalesce_wait=5.0)
    async with await RabbitPublisher.open(options) as publisher:
        counting = CountingPublish(monkeypatch)
        first = asyncio.create_task(publisher.publish(numbered_batch(0)))
        await counting.sent.wait()
        assert not first.done()  # its confirm is still to come
        others = [asyncio.create_task(publisher.publish(numbered_batch(n))) for n in (1, 2, 3)]
        await asyncio.gather(first, *others)
    assert [decode_message(body) for body in counting.messages] == [
        [numbered_batch(0)],
        [numbered_batch(1), numbered_batch(2), numbered_batch(3)],
    ]
    assert first_ids(await take_all(names)) == ["b0-e0", "b1-e0", "b2-e0", "b3-e0"]


async def test_a_message_holds_at_most_max_message_bytes(
    names: QueueNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches beyond the size bound go in further messages; a batch larger than it goes alone."""
    part = len(encode_batch(numbered_batch(0)))
    options = RabbitOptions(AMQP_URL, names, max_message_bytes=3 * (part + 1) + 1)
    async with await RabbitPublisher.open(options) as publisher:
        counting = CountingPublish(monkeypatch)
        await asyncio.gather(*(publisher.publish(numbered_batch(n)) for n in range(7)))
        await publisher.publish(numbered_batch(9, events=20))
    assert [len(decode_message(body)) for body in counting.messages] == [3, 3, 1, 1]
    assert all(len(body) <= options.max_message_bytes for body in counting.messages[:3])
    assert sorted(first_ids(await take_all(names))) == sorted(
        [*(f"b{n}-e0" for n in range(7)), "b9-e0"]
    )


async def test_a_refused_message_fails_exactly_its_publishes(
    names: QueueNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of three messages in flight together, the one the broker refuses fails its own publishes
    with queue_full, each with an error object of its own; the others' are confirmed and held.
    (The refusal is a Basic.Nack put in aiormq's place: a quorum queue at its length limit may
    still take a message or two, so a real full queue cannot pick which message it refuses.)"""
    part = len(encode_batch(numbered_batch(10)))  # every number below has two digits
    options = RabbitOptions(AMQP_URL, names, max_message_bytes=4 * (part + 1) + 1)
    async with await RabbitPublisher.open(options) as publisher:
        counting = CountingPublish(monkeypatch, nacked=frozenset({1}))
        outcomes = await asyncio.gather(
            *(publisher.publish(numbered_batch(n)) for n in range(10, 22)), return_exceptions=True
        )
    assert [len(decode_message(body)) for body in counting.messages] == [4, 4, 4]
    assert outcomes[:4] == outcomes[8:] == [None] * 4
    assert all(isinstance(outcome, QueueFull) for outcome in outcomes[4:8]), outcomes
    assert len({id(outcome) for outcome in outcomes[4:8]}) == 4
    held = first_ids(await take_all(names))
    assert sorted(held) == sorted(f"b{n}-e0" for n in (10, 11, 12, 13, 18, 19, 20, 21))


async def test_each_batch_of_a_shared_message_keeps_its_trace_context(
    names: QueueNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message of several batches carries each one's traceparent (none: empty) in order."""
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with await RabbitPublisher.open(RabbitOptions(AMQP_URL, names)) as publisher:
        counting = CountingPublish(monkeypatch)
        await asyncio.gather(
            publisher.publish(numbered_batch(1), headers={"traceparent": TRACEPARENT}),
            publisher.publish(numbered_batch(2)),
            publisher.publish(numbered_batch(3), headers={"traceparent": other}),
        )
    assert len(counting.messages) == 1
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        message = await channel.basic_get(names.main, no_ack=True)
        assert isinstance(message.delivery, spec.Basic.GetOk)
        headers = message.header.properties.headers
        assert headers is not None
        assert headers["traceparent"] == TRACEPARENT
        assert headers["x-traceparents"] == [TRACEPARENT, "", other]
        assert headers["x-attempt"] == 0
        assert decode_message(message.body) == [numbered_batch(n) for n in (1, 2, 3)]
    finally:
        await connection.close()


async def test_full_queue_refuses_and_keeps_what_it_accepted(names: QueueNames) -> None:
    """A full queue makes publish raise queue_full, and every batch it confirmed is still there."""
    accepted = []
    refused = []
    async with await RabbitPublisher.open(
        RabbitOptions(AMQP_URL, names, max_length=3)
    ) as publisher:
        for number in range(8):
            sent = numbered_batch(number)
            try:
                await publisher.publish(sent)
            except Unavailable as exc:
                refused.append(exc)
            else:
                accepted.append(sent)
    assert refused
    assert {exc.code for exc in refused} == {"queue_full"}
    assert all(isinstance(exc, QueueFull) for exc in refused)
    assert all(exc.retry_after > 0 for exc in refused)
    assert len(accepted) >= 3
    assert await queue_depth(AMQP_URL, names) == len(accepted)
    recorder = Recorder()
    async with running(RabbitConsumer(RabbitOptions(AMQP_URL, names, max_length=3)), recorder):
        await recorder.wait_for_batches(len(accepted))
    assert event_ids(recorder.batches) == event_ids(accepted)


async def test_unreachable_broker_is_unavailable() -> None:
    """Opening a publisher on a port where no broker listens raises Unavailable."""
    url = f"amqp://guest:guest@127.0.0.1:{closed_port()}/"
    with pytest.raises(Unavailable) as raised:
        await RabbitPublisher.open(
            RabbitOptions(url, QueueNames("never.declared"), connect_timeout=2)
        )
    assert raised.value.code == "queue_unavailable"
    assert isinstance(raised.value, QueueUnavailable)
    assert "guest:guest" not in raised.value.message


async def test_publish_to_unreachable_broker_is_unavailable() -> None:
    """A publisher made without connecting raises Unavailable on publish and on ping."""
    url = f"amqp://guest:guest@127.0.0.1:{closed_port()}/"
    publisher = RabbitPublisher(RabbitOptions(url, QueueNames("never.declared"), connect_timeout=2))
    try:
        with pytest.raises(Unavailable) as raised:
            await publisher.publish(numbered_batch(1))
        assert raised.value.code == "queue_unavailable"
        with pytest.raises(Unavailable):
            await publisher.ping()
    finally:
        await publisher.close()


async def test_ping_answers_when_connected(names: QueueNames) -> None:
    """ping succeeds while connected with the main queue declared, and fails once it is gone."""
    async with await RabbitPublisher.open(RabbitOptions(AMQP_URL, names)) as publisher:
        await publisher.ping()
        await publisher.ping()
        assert await queue_depth(AMQP_URL, names) == 0, "ping published something"

        connection = await aiormq.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            await channel.queue_delete(names.main)
        finally:
            await connection.close()
        with pytest.raises(Unavailable) as raised:
            await publisher.ping()
    assert raised.value.code == "queue_unavailable"


async def test_unroutable_publish_is_unavailable(names: QueueNames) -> None:
    """If the main queue was deleted under the publisher, publish raises Unavailable."""
    async with await RabbitPublisher.open(RabbitOptions(AMQP_URL, names)) as publisher:
        connection = await aiormq.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            await channel.queue_delete(names.main)
        finally:
            await connection.close()
        with pytest.raises(Unavailable) as raised:
            await publisher.publish(numbered_batch(1))
        assert raised.value.code == "queue_unavailable"


async def test_publisher_reconnects_after_the_broker_comes_back(
    names: QueueNames, proxy: TcpProxy
) -> None:
    """After the connection is cut publish raises Unavailable; once restored the same publisher works."""
    publisher = await RabbitPublisher.open(RabbitOptions(proxy.url, names, reconnect_interval=0))
    try:
        await publisher.publish(numbered_batch(1))
        proxy.cut()
        with pytest.raises(Unavailable) as raised:
            await publisher.publish(numbered_batch(2))
        assert raised.value.code == "queue_unavailable"
        with pytest.raises(Unavailable):
            await publisher.publish(numbered_batch(3))
        proxy.restore()
        await publisher.publish(numbered_batch(4))
        await publisher.ping()
    finally:
        await publisher.close()
    assert await take_all(names) == [numbered_batch(1), numbered_batch(4)]


async def test_concurrent_publishes_share_one_reconnect(
    names: QueueNames, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishes that find the connection gone wait for one reconnect attempt together."""
    publisher = await RabbitPublisher.open(RabbitOptions(proxy.url, names, reconnect_interval=0))
    connects = 0
    original = aiormq.Connection.connect

    async def counting_connect(self: aiormq.Connection, *args: object, **kwargs: object) -> bool:
        nonlocal connects
        connects += 1
        return await original(self, *args, **kwargs)  # type: ignore[arg-type]

    try:
        proxy.cut()
        with pytest.raises(Unavailable):
            await publisher.publish(numbered_batch(0))
        proxy.restore()
        monkeypatch.setattr(aiormq.Connection, "connect", counting_connect)
        await asyncio.gather(*(publisher.publish(numbered_batch(n)) for n in range(1, 21)))
    finally:
        await publisher.close()
    assert connects == 1
    assert sorted(first_ids(await take_all(names))) == sorted(f"b{n}-e0" for n in range(1, 21))


async def test_closed_publisher_refuses(names: QueueNames) -> None:
    """A closed publisher raises Unavailable rather than reconnecting."""
    publisher = await RabbitPublisher.open(RabbitOptions(AMQP_URL, names))
    await publisher.close()
    with pytest.raises(Unavailable):
        await publisher.publish(numbered_batch(1))
    assert await queue_depth(AMQP_URL, names) == 0


async def test_publishes_in_flight_when_the_connection_drops_fail_cleanly(
    names: QueueNames, proxy: TcpProxy
) -> None:
    """Publishes caught by a cut either were confirmed or raise Unavailable; none hangs or is lost."""
    part = len(encode_batch(numbered_batch(0)))
    options = RabbitOptions(
        proxy.url, names, reconnect_interval=0, max_message_bytes=10 * (part + 1) + 1
    )
    publisher = await RabbitPublisher.open(options)
    try:
        # Ten batches a message: thirty messages in flight together.
        pending = [asyncio.create_task(publisher.publish(numbered_batch(n))) for n in range(300)]
        # Cut once the first confirms are in, while many others are still on the wire.
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        proxy.cut()
        async with asyncio.timeout(10):
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
    finally:
        await publisher.close()
    failures = [outcome for outcome in outcomes if outcome is not None]
    assert all(isinstance(failure, Unavailable) for failure in failures), failures
    confirmed = len(outcomes) - len(failures)
    assert confirmed >= 1
    # Every confirmed batch is held; some refused ones may have reached the queue as well.
    held = set(first_ids(await take_all(names)))
    assert {f"b{n}-e0" for n, outcome in enumerate(outcomes) if outcome is None} <= held


async def test_publisher_starts_afresh_when_confirms_stop_coming(
    names: QueueNames, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish left unconfirmed past its timeout raises Unavailable and the next one reconnects."""
    publisher = await RabbitPublisher.open(
        RabbitOptions(proxy.url, names, publish_timeout=0.3, reconnect_interval=0)
    )
    connects = 0
    original = aiormq.Connection.connect

    async def counting_connect(self: aiormq.Connection, *args: object, **kwargs: object) -> bool:
        nonlocal connects
        connects += 1
        return await original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(aiormq.Connection, "connect", counting_connect)
    try:
        proxy.freeze()
        with pytest.raises(Unavailable) as raised:
            await publisher.publish(numbered_batch(1))
        assert raised.value.code == "queue_unavailable"
        proxy.thaw()
        await publisher.publish(numbered_batch(2))
    finally:
        await publisher.close()
    assert connects == 1
    # The unconfirmed first batch may have reached the queue; the one after the reconnect did.
    assert sorted(first_ids(await take_all(names))) in (["b2-e0"], ["b1-e0", "b2-e0"])
