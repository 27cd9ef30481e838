"""The RabbitMQ adapter of the distributed profile: the ingest queue, its worker and its tools.

Topology (all named after one base, default ``eventcore.ingest``): a durable quorum main queue
that refuses publishes when full, one delay queue per retry whose expired messages flow back
to the main queue, and a dead-letter queue, all bound to one direct exchange.
"""

from eventcore.adapters.rabbitmq._consumer import Handler, RabbitConsumer
from eventcore.adapters.rabbitmq._deadletter import DeadLetter, dlq_list, dlq_replay, queue_depth
from eventcore.adapters.rabbitmq._publisher import RabbitPublisher
from eventcore.adapters.rabbitmq._topology import (
    DEFAULT_BASE,
    DEFAULT_MAX_LENGTH,
    DEFAULT_RETRY_DELAYS,
    QueueNames,
    declare_topology,
    delete_topology,
)

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_RETRY_DELAYS",
    "DeadLetter",
    "Handler",
    "QueueNames",
    "RabbitConsumer",
    "RabbitPublisher",
    "declare_topology",
    "delete_topology",
    "dlq_list",
    "dlq_replay",
    "queue_depth",
]
