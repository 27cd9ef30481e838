"""What the publisher and the consumer are given: the broker, the queues, and how long to wait."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field

from eventcore.adapters.rabbitmq._topology import QueueNames
from eventcore.defaults import QUEUE_MAX_LENGTH


def node_urls(url: str) -> tuple[str, ...]:
    """The broker nodes ``url`` names: one ``amqp://`` URL, or the URLs of a cluster's nodes
    separated by commas, in the order given."""
    return tuple(node for part in url.split(",") if (node := part.strip()))


@dataclass(frozen=True, slots=True)
class RabbitOptions:
    """One ingest pipeline on one broker, as every process of a deployment must see it.

    ``names``, ``max_length`` and ``replicas`` (the nodes named, or ``quorum_size``) are
    properties of the queues: every process declaring them must agree (RabbitMQ refuses a
    redeclaration with other arguments). The timings are each role's: the publisher's (``publish_timeout``, ``reconnect_interval``, ``retry_after``) bound what an
    API request waits for; the consumer's (``forward_timeout``, ``reconnect_delay``,
    ``max_reconnect_delay``) how a worker backs off.
    """

    # One node's URL, or the URLs of a cluster's nodes separated by commas (see ``nodes``).
    url: str
    names: QueueNames = field(default_factory=QueueNames)
    _: KW_ONLY
    max_length: int = QUEUE_MAX_LENGTH
    # Members of each quorum queue's replication group; 0: one on each node named in ``url``.
    quorum_size: int = 0
    # Both roles: connecting, opening a channel and declaring the topology.
    connect_timeout: float = 3.0
    # The publisher: a confirm not received within this is a failed publish.
    publish_timeout: float = 5.0
    # The publisher: after a failed connect, publishes fail at once for this long.
    reconnect_interval: float = 0.5
    # The publisher: the Retry-After its failures suggest to the client.
    retry_after: float = 1.0
    # The publisher: batches published while a message is in flight wait at most this long to
    # share the next message (0: each is sent at the next turn of the event loop) ...
    coalesce_wait: float = 0.001
    # ... and a message holds at most this many bytes of batches (a larger batch goes alone).
    max_message_bytes: int = 1024 * 1024
    # The consumer: a confirm of a move to a retry or dead-letter queue within this.
    forward_timeout: float = 10.0
    # The consumer: its first back-off after a failure, doubled up to the maximum.
    reconnect_delay: float = 0.1
    max_reconnect_delay: float = 5.0

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("the broker URL names no node")
        if self.quorum_size < 0:
            raise ValueError("quorum_size must not be negative")

    @property
    def nodes(self) -> tuple[str, ...]:
        """The URL of each broker node: a process connects to the first that answers and moves
        to the next when its node goes away."""
        return node_urls(self.url)

    @property
    def replicas(self) -> int | None:
        """The size of each quorum queue's replication group: ``quorum_size``, else one member
        on each node named when ``url`` names several, else (None) the broker's default."""
        if self.quorum_size > 0:
            return self.quorum_size
        count = len(self.nodes)
        return count if count > 1 else None
