"""The ingest queue's RabbitMQ topology: names derived from one base, declared idempotently."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from aiormq.abc import AbstractChannel
from pamqp.common import FieldTable

from eventcore.defaults import QUEUE_MAX_LENGTH, QUEUE_NAME, QUEUE_RETRY_DELAYS

_QUORUM: FieldTable = {"x-queue-type": "quorum"}
MAX_PARTITIONS = 64


@dataclass(frozen=True, slots=True)
class QueueNames:
    """Every queue and exchange of one ingest pipeline, all named after ``base``.

    ``retry_delays`` are the seconds a failed batch waits before its 1st, 2nd, ... retry; there
    is one delay queue per retry (a TTL is a property of a queue), so their count is the number
    of retries before the dead-letter queue.
    """

    base: str = QUEUE_NAME
    retry_delays: tuple[float, ...] = QUEUE_RETRY_DELAYS
    # Main queues the workspaces are spread over (by a hash of the workspace id), so that one
    # workspace's backlog does not hold back the others: workers consume every one in turn.
    partitions: int = 1

    def __post_init__(self) -> None:
        # Queue names are at most 255 bytes; leave room for the suffixes.
        if not self.base or len(self.base.encode()) > 200:
            raise ValueError("the base name must be 1 to 200 bytes long")
        if any(delay <= 0 for delay in self.retry_delays):
            raise ValueError("retry delays must be positive")
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be 1 to {MAX_PARTITIONS}")

    @property
    def main(self) -> str:
        """The first main queue: the only one without partitions, and where retried batches
        come back to (any worker takes them from there)."""
        return self.base

    @property
    def main_queues(self) -> tuple[str, ...]:
        """The quorum queues the API publishes to and every worker consumes from."""
        return (self.base, *(f"{self.base}.p{number}" for number in range(1, self.partitions)))

    def partition(self, workspace_id: str) -> str:
        """The main queue of a workspace's batches: a stable hash (CRC-32) of its id."""
        return self.main_queues[zlib.crc32(workspace_id.encode()) % self.partitions]

    @property
    def exchange(self) -> str:
        """The direct exchange every queue is bound to, each under its own name."""
        return f"{self.base}.exchange"

    @property
    def retry_queues(self) -> tuple[str, ...]:
        """Delay queues: a message expires from ``retry_queues[i]`` back into the main queue."""
        return tuple(f"{self.base}.retry.{number}" for number in range(1, self.max_retries + 1))

    @property
    def dead_letter(self) -> str:
        """Where batches go when retries are spent or when they cannot be decoded."""
        return f"{self.base}.dead"

    @property
    def max_retries(self) -> int:
        return len(self.retry_delays)

    @property
    def queues(self) -> tuple[str, ...]:
        return (*self.main_queues, *self.retry_queues, self.dead_letter)


async def declare_topology(
    channel: AbstractChannel,
    names: QueueNames,
    *,
    max_length: int = QUEUE_MAX_LENGTH,
    replicas: int | None = None,
) -> None:
    """Declare the exchange, the main, retry and dead-letter queues and their bindings.

    ``replicas``: each quorum queue's replication group, one member per node of the cluster,
    chosen among the nodes running when the queue is first declared (None: the broker's
    default). A quorum queue keeps taking and giving messages while a majority of its members
    is up.

    Idempotent as long as the arguments stay the same: RabbitMQ refuses to redeclare a queue
    with different ones (PRECONDITION_FAILED), so ``max_length``, ``replicas`` and the delays
    must agree between the API and the workers.
    """
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    if replicas is not None and replicas < 1:
        raise ValueError("replicas must be at least 1")
    quorum: FieldTable = dict(_QUORUM)
    if replicas is not None:
        quorum["x-quorum-initial-group-size"] = replicas
    await channel.exchange_declare(names.exchange, exchange_type="direct", durable=True)
    # A full main queue refuses publishes (Basic.Nack) instead of dropping the oldest
    # message: the API must answer 503, never accept a batch that then vanishes.
    for main in names.main_queues:
        await _declare_bound(
            channel,
            names,
            main,
            {**quorum, "x-max-length": max_length, "x-overflow": "reject-publish"},
        )
    for queue, delay in zip(names.retry_queues, names.retry_delays, strict=True):
        # At-least-once dead-lettering (quorum queues only, and it needs reject-publish) keeps
        # an expired message in the delay queue until the main queue has confirmed it.
        await _declare_bound(
            channel,
            names,
            queue,
            {
                **quorum,
                "x-message-ttl": max(1, round(delay * 1000)),
                "x-dead-letter-exchange": names.exchange,
                "x-dead-letter-routing-key": names.main,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
    await _declare_bound(channel, names, names.dead_letter, quorum)


async def delete_topology(channel: AbstractChannel, names: QueueNames) -> None:
    """Delete every queue and the exchange, with whatever messages they hold."""
    for queue in names.queues:
        await channel.queue_delete(queue)
    await channel.exchange_delete(names.exchange)


async def _declare_bound(
    channel: AbstractChannel, names: QueueNames, queue: str, arguments: FieldTable
) -> None:
    await channel.queue_declare(queue, durable=True, arguments=arguments)
    await channel.queue_bind(queue, names.exchange, routing_key=queue)
