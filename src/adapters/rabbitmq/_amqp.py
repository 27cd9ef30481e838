"""AMQP plumbing shared by the publisher, the consumer and the tools: connect, errors, headers.

Every failure of the broker becomes an eventcore error here and only here: :func:`unavailable`
makes :class:`QueueUnavailable` (unreachable, refused, unroutable, unconfirmed) or
:class:`QueueFull` (the main queue at its maximum length), and :func:`publish_confirmed` and
:func:`open_connection` decide which.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import aiormq
from aiormq.abc import AbstractChannel, AbstractConnection
from pamqp import commands as spec
from pamqp.common import FieldTable, FieldValue

from eventcore.adapters.rabbitmq._options import RabbitOptions, node_urls
from eventcore.adapters.rabbitmq._topology import declare_topology
from eventcore.errors import QueueFull, QueueUnavailable, Unavailable

# What a broker that went away, refused, timed out or closed our channel looks like from aiormq:
# its own errors, socket errors (TimeoutError is one) and RuntimeError for a closed connection
# (ChannelInvalidStateError is one).
AMQP_FAILURES: tuple[type[BaseException], ...] = (aiormq.AMQPError, OSError, RuntimeError)

ATTEMPT_HEADER = "x-attempt"
LAST_ERROR_HEADER = "x-last-error"
ATTEMPTS_HEADER = "x-attempts"
DEAD_REASON_HEADER = "x-dead-reason"
MAX_ERROR_TEXT = 1000

# Headers RabbitMQ adds on dead-lettering and on quorum-queue redelivery; a message published
# anew starts its own history.
_BROKER_HEADER_PREFIXES = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def unavailable(reason: str, *, full: bool = False, retry_after: float = 1.0) -> Unavailable:
    """The error for a queue that cannot take a message: full, or not there to take it."""
    if full:
        return QueueFull(reason, retry_after=retry_after)
    return QueueUnavailable(reason, retry_after=retry_after)


def _rotation(count: int, first: int) -> list[int]:
    """Every node number once, starting at ``first`` (modulo the count)."""
    return [(first + step) % count for step in range(count)]


async def _connect_node(url: str, within: float) -> AbstractConnection:
    context = aiormq.connect(url)
    try:
        async with asyncio.timeout(within):
            return await context
    except BaseException:
        await close_quietly(context.connection)
        raise


async def open_connection(
    url: str, *, within: float, retry_after: float = 1.0
) -> AbstractConnection:
    """Connect to the first node of ``url`` (see :func:`node_urls`) that answers, each within
    ``within`` seconds; Unavailable if none does."""
    nodes = node_urls(url)
    failures: list[str] = []
    for node in nodes:
        try:
            return await _connect_node(node, within)
        except AMQP_FAILURES as exc:
            failures.append(f"{redact(node)}: {describe(exc)}")
    raise unavailable(_unreachable(failures), retry_after=retry_after)


def _unreachable(failures: list[str]) -> str:
    return f"The message broker cannot be reached ({'; '.join(failures) or 'no node named'})."[
        :MAX_ERROR_TEXT
    ]


async def open_channel(
    connection: AbstractConnection, *, confirms: bool, within: float
) -> AbstractChannel:
    return await connection.channel(publisher_confirms=confirms, timeout=within)


class Opened(NamedTuple):
    """A connection to one node of the cluster and a channel on which the topology is declared;
    ``node`` is the node's number in :attr:`RabbitOptions.nodes`."""

    connection: AbstractConnection
    channel: AbstractChannel
    node: int


async def open_declared(options: RabbitOptions, *, confirms: bool, first: int = 0) -> Opened:
    """A connection to the first node that answers, trying them in turn from node ``first``,
    and a channel on which the topology is declared, each node within the connect timeout;
    QueueUnavailable (and nothing left open) if no node can take the queues.

    A node that accepts the connection but cannot declare the queues (e.g. one cut off from the
    rest of its cluster, where a quorum queue has no leader) counts as failed too.
    """
    nodes = options.nodes
    failures: list[str] = []
    for number in _rotation(len(nodes), first):
        try:
            connection = await _connect_node(nodes[number], options.connect_timeout)
        except AMQP_FAILURES as exc:
            failures.append(f"{redact(nodes[number])}: {describe(exc)}")
            continue
        try:
            async with asyncio.timeout(options.connect_timeout):
                channel = await open_channel(
                    connection, confirms=confirms, within=options.connect_timeout
                )
                await declare_topology(
                    channel,
                    options.names,
                    max_length=options.max_length,
                    replicas=options.replicas,
                )
        except BaseException as exc:
            await close_quietly(connection)
            if not isinstance(exc, AMQP_FAILURES):
                raise
            failures.append(
                f"{redact(nodes[number])}: the ingest queue cannot be set up: {describe(exc)}"
            )
            continue
        return Opened(connection, channel, number)
    raise unavailable(_unreachable(failures), retry_after=options.retry_after)


async def close_quietly(connection: AbstractConnection | None, within: float = 2.0) -> None:
    """Close a connection that may be half-open or already gone, without raising."""
    if connection is None or not connection.is_opened or connection.is_closed:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(within):
            await connection.close()


def describe(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_TEXT]


def carried_headers(properties: spec.Basic.Properties) -> FieldTable:
    """The message's own headers, without the broker's bookkeeping of earlier deliveries."""
    return {
        name: value
        for name, value in (properties.headers or {}).items()
        if not name.startswith(_BROKER_HEADER_PREFIXES)
    }


def header_int(headers: Mapping[str, FieldValue] | None, name: str) -> int:
    value = (headers or {}).get(name)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str | bytes):
        with contextlib.suppress(ValueError):
            return int(value)
    return 0


def header_text(headers: Mapping[str, FieldValue] | None, name: str) -> str | None:
    value = (headers or {}).get(name)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None:
        return None
    return str(value)


def persistent(
    headers: FieldTable, content_type: str | None = "application/json"
) -> spec.Basic.Properties:
    """Properties of a message the broker must keep on disk (delivery mode 2)."""
    return spec.Basic.Properties(delivery_mode=2, content_type=content_type, headers=headers)


async def publish_confirmed(
    channel: AbstractChannel,
    body: bytes,
    *,
    exchange: str,
    routing_key: str,
    properties: spec.Basic.Properties,
    within: float,
    retry_after: float = 1.0,
) -> None:
    """Publish with ``mandatory`` and return once the broker confirmed; raise QueueFull or
    QueueUnavailable if not.

    The channel must be in confirm mode; no confirm within ``within`` seconds is a failure. Many
    calls may be in flight on one channel: aiormq holds its channel lock only while writing the
    frames, not while waiting for the Basic.Ack.
    """
    try:
        await channel.basic_publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            properties=properties,
            mandatory=True,
            timeout=within,
        )
    except aiormq.PublishError as exc:
        # Basic.Return: no queue is bound under this name (deleted, or never declared).
        raise unavailable(
            f"The broker has no queue {routing_key!r} to hold the message.", retry_after=retry_after
        ) from exc
    except aiormq.DeliveryError as exc:
        # Basic.Nack: with x-overflow reject-publish, the queue is at its x-max-length.
        raise unavailable(
            f"The queue {routing_key!r} is full; try again later.",
            full=True,
            retry_after=retry_after,
        ) from exc
    except asyncio.CancelledError:
        # A channel closing under us cancels our pending confirmation; only a cancellation
        # aimed at this task itself must propagate as such.
        task = asyncio.current_task()
        if task is not None and task.cancelling() == 0:
            raise unavailable(
                "The connection to the message broker was lost before it confirmed.",
                retry_after=retry_after,
            ) from None
        raise
    except AMQP_FAILURES as exc:
        raise unavailable(
            f"The message broker did not confirm the message: {describe(exc)}",
            retry_after=retry_after,
        ) from exc
