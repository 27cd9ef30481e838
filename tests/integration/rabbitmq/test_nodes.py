"""Several broker nodes in one URL: publisher and consumer take the first that answers and move to
another when theirs goes away, without a restart.

Each "node" here is a cuttable proxy in front of the one broker on 127.0.0.1:5672 (a real cluster
is started by tests/clusters); a closed port stands for a node that is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tests.support.rabbitmq import (
    AMQP_URL,
    Recorder,
    TcpProxy,
    closed_port,
    eventually,
    numbered_batch,
    running,
    tcp_proxy,
)

from eventcore.adapters.rabbitmq import (
    QueueNames,
    RabbitConsumer,
    RabbitOptions,
    RabbitPublisher,
    queue_depth,
)
from eventcore.adapters.rabbitmq._amqp import redact
from eventcore.errors import QueueUnavailable

pytestmark = pytest.mark.integration


@pytest.fixture
async def second_proxy() -> AsyncIterator[TcpProxy]:
    async with tcp_proxy() as opened:
        yield opened


def dead_node() -> str:
    return f"amqp://guest:guest@127.0.0.1:{closed_port()}/"


def seen_ids(recorder: Recorder) -> set[str]:
    return {b.events[0].id for b in recorder.batches}


async def test_the_publisher_skips_a_node_that_is_down(names: QueueNames) -> None:
    """A list whose first node is down: the publisher connects to the next and publishes."""
    options = RabbitOptions(f"{dead_node()}, {AMQP_URL}", names)
    async with await RabbitPublisher.open(options) as publisher:
        assert publisher.node == redact(AMQP_URL)
        await publisher.publish(numbered_batch(1))
    assert await queue_depth(AMQP_URL, names) == 1


async def test_no_node_answering_is_unavailable_naming_each(names: QueueNames) -> None:
    """Every node down: QueueUnavailable (a 503 for the API) whose message names each node,
    without its password."""
    first, second = dead_node(), dead_node()
    with pytest.raises(QueueUnavailable) as raised:
        await RabbitPublisher.open(RabbitOptions(f"{first},{second}", names))
    message = raised.value.message
    assert redact(first) in message
    assert redact(second) in message
    assert "guest:guest" not in message


async def test_the_publisher_moves_to_another_node_when_its_node_dies(
    names: QueueNames, proxy: TcpProxy, second_proxy: TcpProxy
) -> None:
    """The node published to goes away: the same publisher goes on through the next node."""
    options = RabbitOptions(f"{proxy.url},{second_proxy.url}", names, reconnect_interval=0)
    async with await RabbitPublisher.open(options) as publisher:
        await publisher.publish(numbered_batch(1))
        assert publisher.node == redact(proxy.url)
        proxy.cut()
        await eventually(lambda: asyncio.sleep(0, publisher.node), lambda node: node is None)
        await publisher.publish(numbered_batch(2))
        assert publisher.node == redact(second_proxy.url)
        # Back to the first when the second dies too and the first is back.
        proxy.restore()
        second_proxy.cut()
        await eventually(lambda: asyncio.sleep(0, publisher.node), lambda node: node is None)
        await publisher.publish(numbered_batch(3))
        assert publisher.node == redact(proxy.url)
    assert await queue_depth(AMQP_URL, names) == 3


async def test_a_publish_in_flight_when_its_node_dies_is_unavailable_never_confirmed(
    names: QueueNames, proxy: TcpProxy, second_proxy: TcpProxy
) -> None:
    """A publish waiting for its confirm when the node's connection dies raises
    QueueUnavailable (a 503: the client resends); the next one goes through the other node."""
    options = RabbitOptions(f"{proxy.url},{second_proxy.url}", names, reconnect_interval=0)
    async with await RabbitPublisher.open(options) as publisher:
        proxy.freeze()
        pending = asyncio.create_task(publisher.publish(numbered_batch(1)))
        await asyncio.sleep(0.2)
        assert not pending.done()
        proxy.cut()
        with pytest.raises(QueueUnavailable):
            await pending
        proxy.thaw()
        await publisher.publish(numbered_batch(2))
        assert publisher.node == redact(second_proxy.url)


async def test_the_consumer_moves_to_another_node_when_its_node_dies(
    names: QueueNames, proxy: TcpProxy, second_proxy: TcpProxy
) -> None:
    """The node consumed from goes away: the same consumer goes on consuming through the next
    node (the first being down), and nothing published meanwhile is missed."""
    recorder = Recorder()
    consumer = RabbitConsumer(
        RabbitOptions(
            f"{dead_node()},{proxy.url},{second_proxy.url}",
            names,
            reconnect_delay=0.05,
            max_reconnect_delay=0.2,
        )
    )
    # Three nodes named as well: every process must declare the same replication group.
    publishing = RabbitOptions(f"{AMQP_URL},{dead_node()},{dead_node()}", names)
    async with (
        await RabbitPublisher.open(publishing) as publisher,
        running(consumer, recorder, max_wait=0.01),
    ):
        await publisher.publish(numbered_batch(1))
        await recorder.wait_for_batches(1)
        proxy.cut()
        await publisher.publish(numbered_batch(2))
        await eventually(
            lambda: asyncio.sleep(0, seen_ids(recorder)),
            lambda seen: seen == {"b1-e0", "b2-e0"},
        )
        assert second_proxy.relaying == 1
    assert await queue_depth(AMQP_URL, names) == 0


def test_options_read_the_nodes_and_size_the_replication_group() -> None:
    """Commas separate nodes (blanks around them ignored); a list of nodes asks for one quorum
    member on each, a single URL for the broker's default."""
    one = RabbitOptions(AMQP_URL)
    assert one.nodes == (AMQP_URL,)
    assert one.replicas is None
    three = RabbitOptions("amqp://a:1/, amqp://b:2/ ,amqp://c:3/")
    assert three.nodes == ("amqp://a:1/", "amqp://b:2/", "amqp://c:3/")
    assert three.replicas == 3
    assert RabbitOptions("amqp://a:1/,amqp://b:2/", quorum_size=5).replicas == 5
    assert RabbitOptions(AMQP_URL, quorum_size=1).replicas == 1
    with pytest.raises(ValueError, match="no node"):
        RabbitOptions(" , ")


async def test_processes_naming_other_node_counts_cannot_share_the_queues(
    names: QueueNames,
) -> None:
    """The replication group is a property of the queues: a process that declares another size
    is refused (QueueUnavailable, saying why) rather than silently using other queues."""
    async with await RabbitPublisher.open(RabbitOptions(f"{AMQP_URL},{AMQP_URL}", names)):
        with pytest.raises(QueueUnavailable, match="x-quorum-initial-group-size"):
            await RabbitPublisher.open(RabbitOptions(AMQP_URL, names, quorum_size=3))
