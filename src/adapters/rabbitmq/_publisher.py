"""The API side of the queue: publish ingest batches with publisher confirms, reconnecting."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from types import TracebackType
from typing import NamedTuple, Self

import structlog
from aiormq.abc import AbstractChannel, AbstractConnection
from pamqp.common import FieldTable

from eventcore.adapters.rabbitmq._amqp import (
    AMQP_FAILURES,
    ATTEMPT_HEADER,
    close_quietly,
    describe,
    open_channel,
    open_declared,
    persistent,
    publish_confirmed,
    redact,
    unavailable,
)
from eventcore.adapters.rabbitmq._message import TRACEPARENTS_HEADER, frame
from eventcore.adapters.rabbitmq._options import RabbitOptions
from eventcore.adapters.rabbitmq._telemetry import publishing
from eventcore.adapters.rabbitmq._topology import QueueNames
from eventcore.errors import QueueFull, Unavailable
from eventcore.events import IngestBatch, encode_batch

log = structlog.get_logger(__name__)


class _Message:
    """Batches gathered for one broker message, and the publishes waiting for its confirm."""

    __slots__ = ("_headers", "parts", "routing_key", "size", "traceparents", "waiters")

    def __init__(self, routing_key: str) -> None:
        self.routing_key = routing_key
        self.parts: list[bytes] = []
        self.traceparents: list[str] = []
        self.waiters: list[asyncio.Future[None]] = []
        self.size = 2
        self._headers: FieldTable | None = None

    def add(self, part: bytes, headers: FieldTable, waiter: asyncio.Future[None]) -> None:
        if self._headers is None:
            self._headers = headers
        traceparent = headers.get("traceparent")
        self.traceparents.append(traceparent if isinstance(traceparent, str) else "")
        self.parts.append(part)
        self.waiters.append(waiter)
        self.size += len(part) + 1

    def body(self) -> bytes:
        return frame(self.parts)

    def headers(self) -> FieldTable:
        """The first batch's headers; with several batches, each one's traceparent as well."""
        headers: FieldTable = dict(self._headers or {})
        if len(self.parts) > 1 and any(self.traceparents):
            headers[TRACEPARENTS_HEADER] = list(self.traceparents)
        return headers

    def confirm(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)

    def fail(self, exc: Unavailable) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                # One exception object each: every caller raises (and so changes) its own.
                again = type(exc)(exc.message, retry_after=exc.retry_after)
                again.__cause__ = exc.__cause__
                waiter.set_exception(again)


class QueueLength(NamedTuple):
    """What a passive declare says about a queue."""

    messages: int
    consumers: int


class RabbitPublisher:
    """An :class:`eventcore.ports.IngestQueue` on RabbitMQ.

    ``publish`` returns only after the broker's Basic.Ack for a persistent message on a quorum
    queue, so a returned call means the batch is durably held. Every failure (queue full,
    unroutable, connection lost, broker unreachable, no confirm in time) raises
    :class:`QueueFull` or :class:`QueueUnavailable`: the caller answers 503 and the client sends
    the batch again.

    Publishes are coalesced: a batch published while nothing is in flight is sent at the next
    turn of the event loop, together with whatever else that turn published; batches published
    while a message awaits its confirm wait for it (at most ``options.coalesce_wait`` seconds)
    and then share the next message, up to ``options.max_message_bytes``. Every batch of a
    message is answered by that message's confirm, and a refused or unconfirmed message fails
    exactly its batches. See ``_message`` for the message format.

    One connection and one confirm-mode channel serve every message; confirmations are matched
    by delivery tag, so messages are pipelined rather than taking turns. After a
    failure, the next publish reconnects; concurrent publishes share that one attempt, and for
    ``options.reconnect_interval`` seconds after a failed attempt publishes fail at once instead
    of each waiting for a broker that was just found down.
    """

    def __init__(self, options: RabbitOptions) -> None:
        self._options = options
        self._names = options.names
        self._publish_timeout = options.publish_timeout
        self._retry_after = options.retry_after
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._connecting: asyncio.Task[AbstractChannel] | None = None
        self._last_failure: Unavailable | None = None
        self._retry_at = 0.0
        self._closed = False
        self._background: set[asyncio.Task[None]] = set()
        self._wait = options.coalesce_wait
        self._max_bytes = options.max_message_bytes
        # The message being formed for each main queue (partition).
        self._forming: dict[str, _Message] = {}
        self._flush_at: asyncio.Handle | None = None
        self._in_flight = 0
        self._sending: set[asyncio.Task[None]] = set()
        # The node connected to last (a number in options.nodes), None before the first.
        self._node: int | None = None

    @classmethod
    async def open(cls, options: RabbitOptions) -> Self:
        """Connect and declare the topology now; QueueUnavailable if the broker cannot be reached.

        Constructing the class directly instead connects on the first publish or ping.
        """
        publisher = cls(options)
        await publisher._ready_channel()
        return publisher

    @property
    def names(self) -> QueueNames:
        return self._names

    @property
    def node(self) -> str | None:
        """The URL (without password) of the node publishes go to, None while not connected."""
        if self._node is None or self._channel is None or self._channel.is_closed:
            return None
        return redact(self._options.nodes[self._node])

    async def publish(
        self, batch: IngestBatch, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Hold the batch durably or raise QueueFull or QueueUnavailable; ``headers`` carry e.g. a
        W3C traceparent.

        The current trace context is added to the headers (``traceparent``), so the worker's
        processing joins the trace of the request that published the batch. The batch may share
        its message with others (see the class docstring); its trace context travels with it.
        """
        message_headers: FieldTable = dict(headers or {})
        queue = self._names.partition(batch.workspace_id)
        with publishing(queue, batch, message_headers):
            await self._enqueue(queue, encode_batch(batch), message_headers)

    async def _enqueue(self, queue: str, part: bytes, headers: FieldTable) -> None:
        if self._closed:
            raise unavailable("The publisher is closed.", retry_after=self._retry_after)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        forming = self._forming.get(queue)
        if forming is not None and forming.size + len(part) > self._max_bytes:
            self._flush()
            forming = None
        if forming is None:
            forming = self._forming[queue] = _Message(queue)
        forming.add(part, headers, waiter)
        if forming.size >= self._max_bytes:
            self._flush()
        elif self._flush_at is None:
            if self._in_flight == 0 or self._wait <= 0:
                # Nothing in flight: send at the next turn of the loop, with whatever else
                # this turn adds.
                self._flush_at = loop.call_soon(self._flush)
            else:
                # Company is coming (a confirm is due): wait for it, but not longer than this.
                self._flush_at = loop.call_later(self._wait, self._flush)
        await waiter

    def _flush(self) -> None:
        """Send the messages being formed (one per main queue) in a task of their own each."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        messages, self._forming = self._forming, {}
        for message in messages.values():
            self._in_flight += 1
            sending = asyncio.get_running_loop().create_task(self._send(message))
            self._sending.add(sending)
            sending.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._in_flight -= 1
        if self._forming:
            # A confirm the waiting batches were holding out for is in: send them now.
            self._flush()

    async def _send(self, message: _Message) -> None:
        """Publish one message and answer every batch in it: confirmed, or the same failure."""
        try:
            await self._publish(message.routing_key, message.body(), message.headers())
        except Unavailable as exc:
            message.fail(exc)
        except BaseException:
            message.fail(unavailable("The publisher was closed.", retry_after=self._retry_after))
            raise
        else:
            message.confirm()

    async def _publish(self, queue: str, body: bytes, message_headers: FieldTable) -> None:
        message_headers[ATTEMPT_HEADER] = 0
        channel = await self._ready_channel()
        try:
            await publish_confirmed(
                channel,
                body,
                exchange=self._names.exchange,
                routing_key=queue,
                properties=persistent(message_headers),
                within=self._publish_timeout,
                retry_after=self._retry_after,
            )
        except Unavailable as exc:
            if channel.is_closed:
                log.warning("rabbitmq.publish_connection_lost", error=exc.message)
            elif isinstance(exc.__cause__, TimeoutError):
                # No confirm in time: the broker may be gone without closing the socket, which
                # heartbeats would notice only minutes later. Start afresh on the next publish.
                log.warning("rabbitmq.publish_unconfirmed", error=exc.message)
                if self._channel is channel:
                    self._channel = None
            else:
                log.info("rabbitmq.publish_refused", code=exc.code, error=exc.message)
                if isinstance(exc, QueueFull) and self._channel is channel:
                    # A Basic.Nack: the queue is at its maximum length, or its leader died
                    # and the channel still refuses for it although a new one was elected
                    # (a channel's quorum-queue client stays blocked; seen on RabbitMQ 3.10).
                    # The next publish starts afresh (in a cluster, on the next node); under a
                    # queue that is really full that costs one reconnect per refusal.
                    self._channel = None
            raise

    async def ping(self) -> None:
        """Readiness: connected (reconnecting if needed) and the main queue exists."""
        channel = await self._ready_channel()
        try:
            await channel.queue_declare(
                self._names.main, passive=True, timeout=self._publish_timeout
            )
        except AMQP_FAILURES as exc:
            raise unavailable(
                f"The ingest queue is not available: {describe(exc)}",
                retry_after=self._retry_after,
            ) from exc

    async def queue_lengths(self) -> dict[str, QueueLength]:
        """Ready messages and consumers of the ``main`` queues (messages summed over the
        partitions), the ``retry`` queues (summed) and the ``dead_letter`` queue, for metrics; QueueUnavailable if the broker cannot say.

        Read with passive declares on a short-lived channel of their own: a declare that fails
        closes its channel, which must never be the one the publishes share.
        """
        await self._ready_channel()
        connection = self._connection
        if connection is None:
            raise unavailable("The publisher is not connected.", retry_after=self._retry_after)
        lengths: dict[str, QueueLength] = {}
        try:
            channel = await open_channel(connection, confirms=False, within=self._publish_timeout)
            try:
                roles = [("main", queue) for queue in self._names.main_queues]
                roles.append(("dead_letter", self._names.dead_letter))
                roles += [("retry", queue) for queue in self._names.retry_queues]
                for role, queue in roles:
                    declared = await channel.queue_declare(
                        queue, passive=True, timeout=self._publish_timeout
                    )
                    seen = lengths.get(role, QueueLength(0, 0))
                    # Every worker consumes each partition: count its consumers once.
                    partition = role == "main" and queue != self._names.main
                    lengths[role] = QueueLength(
                        seen.messages + int(declared.message_count or 0),
                        seen.consumers + (0 if partition else int(declared.consumer_count or 0)),
                    )
            finally:
                with contextlib.suppress(*AMQP_FAILURES):
                    await channel.close()
        except AMQP_FAILURES as exc:
            raise unavailable(
                f"The queue lengths cannot be read: {describe(exc)}", retry_after=self._retry_after
            ) from exc
        return lengths

    async def close(self) -> None:
        """Send what is waiting for a message, wait for the answers in flight, then close."""
        self._closed = True
        self._flush()
        await asyncio.gather(*self._sending, return_exceptions=True)
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
        connection, self._connection, self._channel = self._connection, None, None
        await close_quietly(connection)
        await asyncio.gather(*self._background, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _ready_channel(self) -> AbstractChannel:
        if self._closed:
            raise unavailable("The publisher is closed.", retry_after=self._retry_after)
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        connecting = self._connecting
        if connecting is None:
            loop = asyncio.get_running_loop()
            failure = self._last_failure
            if failure is not None and loop.time() < self._retry_at:
                raise unavailable(failure.message, retry_after=failure.retry_after)
            connecting = self._connecting = asyncio.create_task(self._reconnect())
            connecting.add_done_callback(self._reconnected)
        # Shielded: a caller that gives up (its HTTP client went away) must not cancel the
        # attempt that the other publishes are waiting for.
        return await asyncio.shield(connecting)

    def _reconnected(self, task: asyncio.Task[AbstractChannel]) -> None:
        if self._connecting is task:
            self._connecting = None
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, Unavailable):
            log.warning("rabbitmq.publisher_connect_failed", error=exc.message)
            self._last_failure = exc
            self._retry_at = asyncio.get_running_loop().time() + self._options.reconnect_interval
        elif exc is None:
            self._last_failure = None

    async def _reconnect(self) -> AbstractChannel:
        stale, self._connection, self._channel = self._connection, None, None
        if stale is not None:
            # Closing a connection to a vanished broker waits for its own timeout; nobody
            # needs to wait for that.
            closing = asyncio.create_task(close_quietly(stale))
            self._background.add(closing)
            closing.add_done_callback(self._background.discard)
        # A cluster: start with the node after the one that just failed us, the one least
        # likely to be down as well.
        first = 0 if self._node is None else self._node + 1
        connection, channel, node = await open_declared(self._options, confirms=True, first=first)
        if self._closed:
            await close_quietly(connection)
            raise unavailable("The publisher is closed.", retry_after=self._retry_after)
        self._connection, self._channel, self._node = connection, channel, node
        log.info(
            "rabbitmq.publisher_connected",
            url=redact(self._options.nodes[node]),
            queue=self._names.main,
        )
        return channel
