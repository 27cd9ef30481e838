"""A real 3-node RabbitMQ cluster: quorum queues replicated on every node, and ingestion that
survives the SIGKILL of the node the API publishes to, then of the node a worker consumes from,
with every acknowledged event stored exactly once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventcore.adapters.rabbitmq import RabbitOptions, RabbitPublisher
from tests.faults.harness import (
    LoadGenerator,
    assert_exactly_once,
    distributed_stack,
    drain,
    eventually,
    open_tenant,
    verdict,
    workers,
)
from tests.support.postgres import run_coroutine
from tests.support.processes import Process
from tests.support.rabbitmq import delete_queues, numbered_batch, unique_names
from tests.support.rabbitmq_cluster import RabbitCluster, rabbitmq_cluster

pytestmark = pytest.mark.integration

# From a node's SIGKILL until its clients are on another node and the quorum queues have a
# leader again (RabbitMQ's election takes a few seconds): the only time 503s may be answered.
FAILOVER_SECONDS = 20.0
# Batches acknowledged after each failover before the next step: ingestion goes on.
BATCHES_BETWEEN = 30


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    with rabbitmq_cluster(tmp_path_factory.mktemp("rabbitmq-cluster")) as started:
        yield started


def test_quorum_queues_have_a_member_on_every_node(cluster: RabbitCluster) -> None:
    """Every queue of the pipeline, declared through the node list, is replicated on all three
    nodes (x-quorum-initial-group-size from the nodes named), whichever node declared it."""
    names = unique_names()

    async def declare_and_publish() -> None:
        options = RabbitOptions(cluster.url([3, 1, 2]), names)
        async with await RabbitPublisher.open(options) as publisher:
            await publisher.publish(numbered_batch(1))

    run_coroutine(declare_and_publish())
    try:
        every_node = sorted(node.name for node in cluster.nodes)
        for queue in names.queues:
            assert sorted(cluster.members(queue)) == every_node, queue
    finally:
        run_coroutine(delete_queues(names, cluster.url()))


def last_node(process: Process, event: str, cluster: RabbitCluster) -> int | None:
    """The node named by the last ``event`` log line of the process (JSON logs), if any."""
    found = None
    for line in process.output().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found = cluster.number_of(str(entry["url"]))
    return found


def test_killing_the_publishers_node_then_the_consumers_node_loses_nothing(
    cluster: RabbitCluster, tmp_path: Path, fault_report: Callable[..., None]
) -> None:
    """Under accounted load (every 202 recorded), SIGKILL the node the API publishes to, start it
    again, then SIGKILL the node the worker consumes from: API and worker move to other nodes
    without a restart, every acknowledged event is stored exactly once, and any answer other
    than 202 (503, or no answer) came within the seconds of a failover."""
    api_order, worker_order = [1, 2, 3], [2, 3, 1]
    with (
        distributed_stack(tmp_path, amqp_url=cluster.url(api_order)) as stack,
        stack.api() as api,
        workers(stack, 1, amqp_url=cluster.url(worker_order)) as pool,
    ):
        pool.wait_consuming()
        [worker] = pool.slots
        tenant = open_tenant(api, "cluster")
        kills: list[float] = []
        load = LoadGenerator(str(api.client.base_url), tenant, run="cluster", senders=3)
        with load:
            load.wait_for_acknowledged(BATCHES_BETWEEN)
            publishing = last_node(api, "rabbitmq.publisher_connected", cluster)
            assert publishing == api_order[0], api.output()[-3000:]

            kills.append(time.monotonic())
            cluster.kill(publishing)
            load.wait_for_acknowledged(
                len(load.acknowledged_batches()) + BATCHES_BETWEEN, within=60
            )
            moved = last_node(api, "rabbitmq.publisher_connected", cluster)
            assert moved not in (None, publishing), api.output()[-3000:]
            cluster.restart(publishing)

            consuming = last_node(worker, "rabbitmq.consumer_started", cluster)
            assert consuming == worker_order[0], worker.output()[-3000:]
            kills.append(time.monotonic())
            cluster.kill(consuming)
            eventually(
                lambda: (
                    last_node(worker, "rabbitmq.consumer_started", cluster) not in (None, consuming)
                ),
                within=60,
                what="the worker consuming from another node",
            )
            load.wait_for_acknowledged(
                len(load.acknowledged_batches()) + BATCHES_BETWEEN, within=60
            )
            load.stop()
        load.check()
        pool.check_running()
        drain(stack, tenant, load.acknowledged_ids)
        result = verdict(stack, api, tenant, load.acknowledged_ids, load.sent_ids)
        assert_exactly_once(stack, result)

    refused = [
        attempt.at - kill
        for batch in load.batches
        for attempt in batch.attempts
        if attempt.outcome != "202"
        for kill in kills
        if kill <= attempt.at <= kill + FAILOVER_SECONDS
    ]
    fault_report(
        "SIGKILL the API's broker node, then the worker's",
        acknowledged=result.acknowledged,
        lost=result.lost,
        duplicated=result.duplicated,
        not_202=len(refused),
        last_not_202_after_kill_s=max(refused, default=0.0),
    )
    outside = [
        (round(attempt.at - kills[0], 1), attempt.outcome)
        for batch in load.batches
        for attempt in batch.attempts
        if attempt.outcome != "202"
        and not any(kill <= attempt.at <= kill + FAILOVER_SECONDS for kill in kills)
    ]
    assert not outside, f"answers other than 202 outside the failovers: {outside[:10]}"
    assert result.acknowledged >= 3 * BATCHES_BETWEEN * 20
