"""The RabbitMQ adapter of the distributed profile: the ingest queue, its worker and its tools.

Topology (all named after one base, by default ``eventcore.defaults.QUEUE_NAME``): a durable
quorum main queue that refuses publishes when full, one delay queue per retry whose expired
messages flow back to the main queue, and a dead-letter queue, all bound to one direct exchange.
The publisher and the consumer are both given one :class:`RabbitOptions`.
"""

from eventcore.adapters.rabbitmq._consumer import Handler, RabbitConsumer
from eventcore.adapters.rabbitmq._deadletter import DeadLetter, dlq_list, dlq_replay, queue_depth
from eventcore.adapters.rabbitmq._message import decode_message, encode_message
from eventcore.adapters.rabbitmq._options import RabbitOptions
from eventcore.adapters.rabbitmq._publisher import QueueLength, RabbitPublisher
from eventcore.adapters.rabbitmq._topology import QueueNames, declare_topology, delete_topology

__all__ = [
    "DeadLetter",
    "Handler",
    "QueueLength",
    "QueueNames",
    "RabbitConsumer",
    "RabbitOptions",
    "RabbitPublisher",
    "declare_topology",
    "decode_message",
    "delete_topology",
    "dlq_list",
    "dlq_replay",
    "encode_message",
    "queue_depth",
]
