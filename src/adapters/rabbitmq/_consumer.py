"""The worker side of the queue: take batches in groups, commit them, ack only afterwards."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NamedTuple

import structlog
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp.common import FieldTable

from eventcore.adapters.rabbitmq._amqp import (
    AMQP_FAILURES,
    ATTEMPT_HEADER,
    ATTEMPTS_HEADER,
    DEAD_REASON_HEADER,
    LAST_ERROR_HEADER,
    carried_headers,
    close_quietly,
    describe,
    header_int,
    open_declared,
    persistent,
    publish_confirmed,
    redact,
)
from eventcore.adapters.rabbitmq._message import (
    batch_headers,
    decode_message,
    encode_message,
    part_headers,
)
from eventcore.adapters.rabbitmq._options import RabbitOptions
from eventcore.adapters.rabbitmq._telemetry import consumer_metrics, processing_group
from eventcore.adapters.rabbitmq._topology import QueueNames
from eventcore.defaults import WORKER_BATCH_EVENTS, WORKER_BATCH_WAIT_MS, WORKER_PREFETCH
from eventcore.errors import Unavailable
from eventcore.events import IngestBatch

log = structlog.get_logger(__name__)

Handler = Callable[[list[IngestBatch]], Awaitable[object]]


class _Signal(enum.Enum):
    ARRIVED = "arrived"  # a delivery is waiting in the turns
    STOP = "stop"
    CHANNEL_CLOSED = "channel_closed"
    CONSUMER_CANCELLED = "consumer_cancelled"


class _Delivery(NamedTuple):
    message: DeliveredMessage
    batches: list[IngestBatch]


class _ConnectionLost(Exception):
    """The channel went away mid-session; unacked deliveries are back in the queue."""


class _Turns:
    """Deliveries waiting, per main queue, taken from each queue in turn: a partition holding a
    flood of one workspace's messages gives one, then the next partition gives one, so the
    other workspaces' messages are not held back behind the whole prefetch of the flood."""

    def __init__(self, queues: tuple[str, ...]) -> None:
        self._order = queues
        self._waiting: dict[str, collections.deque[DeliveredMessage]] = {
            queue: collections.deque() for queue in queues
        }
        self._next = 0

    def add(self, queue: str, message: DeliveredMessage) -> None:
        self._waiting[queue].append(message)

    def take(self) -> DeliveredMessage:
        for step in range(len(self._order)):
            index = (self._next + step) % len(self._order)
            waiting = self._waiting[self._order[index]]
            if waiting:
                self._next = index + 1
                return waiting.popleft()
        raise RuntimeError("no delivery is waiting")


# What ends a session and calls for a reconnect, rather than for stopping the worker.
_SESSION_ENDS: tuple[type[BaseException], ...] = (_ConnectionLost, Unavailable, *AMQP_FAILURES)


class RabbitConsumer:
    """Consumes the main queue and hands groups of batches to a handler, with manual acks.

    The handler (``BatchProcessor.process``) commits a group; its messages are acked only after
    it returns, so a crash at any point means redelivery, which the store makes a no-op. One
    group is in flight at a time.

    When the handler raises on a group of several batches, it is given each batch alone, so one
    bad batch fails by itself. A failed batch goes to the delay queue of its next retry
    (``x-attempt`` + 1), or to the dead-letter queue once the retries are spent, with the error
    text in ``x-last-error``: its message as it is when it holds that batch only, else a new
    message holding just that batch (the others of its message were committed). The original is
    acked only after that publish is confirmed, and if the publish fails it is returned to the
    queue instead (never lost). One exception:
    :class:`Unavailable` from the handler means a dependency is down (e.g. the database), not
    that the batches are bad, so they go back to the main queue without spending a retry and
    the consumer backs off before the next group.
    """

    def __init__(self, options: RabbitOptions) -> None:
        self._options = options
        self._names = options.names
        self._stopping = asyncio.Event()
        self._inbox: asyncio.Queue[_Signal] | None = None
        self._consuming = False
        self._failures = 0
        self._running = False
        self._metrics = consumer_metrics()
        # The node of the last session (a number in options.nodes), None before the first.
        self._node: int | None = None

    @property
    def names(self) -> QueueNames:
        return self._names

    async def ping(self) -> None:
        """The broker answers and the queues are declared; QueueUnavailable if not."""
        opened = await open_declared(self._options, confirms=False)
        await close_quietly(opened.connection)

    def stop(self) -> None:
        """Finish the group in flight (handler, then acks), then make :meth:`run` return.

        Messages received but not yet handed to the handler are left unacked and the broker
        gives them to another consumer. Cancelling the task running :meth:`run` instead stops at
        once: whatever was not acked yet is redelivered.
        """
        self._stopping.set()
        if self._inbox is not None:
            self._inbox.put_nowait(_Signal.STOP)

    async def run(
        self,
        handler: Handler,
        *,
        max_events: int = WORKER_BATCH_EVENTS,
        max_wait: float = WORKER_BATCH_WAIT_MS / 1000,
        prefetch: int = WORKER_PREFETCH,
    ) -> None:
        """Consume until :meth:`stop`, reconnecting with backoff whenever the broker goes away.

        A group closes at ``max_events`` events or ``max_wait`` seconds after its first message,
        whichever comes first; ``prefetch`` bounds the messages held unacked.
        """
        if self._running:
            raise RuntimeError("this consumer is already running")
        if max_events < 1 or prefetch < 1 or max_wait < 0:
            raise ValueError("max_events and prefetch must be positive, max_wait not negative")
        self._running = True
        delay = self._options.reconnect_delay
        try:
            while not self._stopping.is_set():
                self._consuming = False
                try:
                    await self._session(handler, max_events, max_wait, prefetch)
                except _SESSION_ENDS as exc:
                    if self._stopping.is_set():
                        break
                    if self._consuming:
                        delay = self._options.reconnect_delay
                    log.warning(
                        "rabbitmq.consumer_disconnected",
                        queue=self._names.main,
                        error=describe(exc),
                        retry_in=delay,
                    )
                    await self._sleep_unless_stopped(delay)
                    delay = min(delay * 2, self._options.max_reconnect_delay)
        finally:
            self._running = False
            self._stopping.clear()
            log.info("rabbitmq.consumer_stopped", queue=self._names.main)

    async def _session(
        self, handler: Handler, max_events: int, max_wait: float, prefetch: int
    ) -> None:
        # A cluster: a new session starts with the node after the last one, the one least
        # likely to be down as well.
        first = 0 if self._node is None else self._node + 1
        connection, channel, self._node = await open_declared(
            self._options, confirms=True, first=first
        )
        try:
            await channel.basic_qos(prefetch_count=prefetch)
            inbox: asyncio.Queue[_Signal] = asyncio.Queue()
            turns = _Turns(self._names.main_queues)
            channel.closing.add_done_callback(lambda _: inbox.put_nowait(_Signal.CHANNEL_CLOSED))
            # The broker cancels a consumer whose queue was deleted; declaring it again
            # on a new session is the way back.
            channel.on_consumer_cancel_callbacks.add(
                lambda _: inbox.put_nowait(_Signal.CONSUMER_CANCELLED)
            )
            self._inbox = inbox
            if self._stopping.is_set():
                return
            # Each main queue (partition) is one consumer, holding up to ``prefetch`` messages.
            for queue in self._names.main_queues:
                await channel.basic_consume(queue, _arrival(queue, turns, inbox), no_ack=False)
            self._consuming = True
            log.info(
                "rabbitmq.consumer_started",
                url=redact(self._options.nodes[self._node]),
                queue=self._names.main,
                partitions=self._names.partitions,
                prefetch=prefetch,
            )
            while not self._stopping.is_set():
                group = await self._gather(channel, inbox, turns, max_events, max_wait)
                if group is None:
                    break
                with processing_group(
                    self._names.main,
                    [batch for delivery in group for batch in delivery.batches],
                    [
                        headers
                        for delivery in group
                        for headers in batch_headers(
                            delivery.message.header.properties.headers, len(delivery.batches)
                        )
                    ],
                ):
                    await self._settle(channel, group, handler)
            if not self._stopping.is_set():
                raise _ConnectionLost(
                    "the channel to the broker closed"
                    if channel.is_closed
                    else "the broker cancelled the consumer"
                )
        finally:
            self._inbox = None
            # Closing the connection hands every unacked delivery back to the broker.
            await close_quietly(connection)

    async def _gather(
        self,
        channel: AbstractChannel,
        inbox: asyncio.Queue[_Signal],
        turns: _Turns,
        max_events: int,
        max_wait: float,
    ) -> list[_Delivery] | None:
        """The next group, or None when stopping or the channel closed."""
        loop = asyncio.get_running_loop()
        group: list[_Delivery] = []
        events = 0
        deadline: float | None = None
        while events < max_events:
            item: _Signal
            if deadline is None:
                item = await inbox.get()
            else:
                try:
                    item = inbox.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        async with asyncio.timeout(remaining):
                            item = await inbox.get()
                    except TimeoutError:
                        break
            if item is not _Signal.ARRIVED or self._stopping.is_set() or channel.is_closed:
                return None
            delivery = await self._admit(channel, turns.take())
            if delivery is None:
                continue
            group.append(delivery)
            events += sum(len(batch.events) for batch in delivery.batches)
            if deadline is None:
                deadline = loop.time() + max_wait
        return group

    async def _admit(self, channel: AbstractChannel, message: DeliveredMessage) -> _Delivery | None:
        """Decode a delivery; one that is not an ingest message goes to the dead-letter queue."""
        try:
            batches = decode_message(message.body)
        except Exception as exc:
            error = describe(exc)
            log.warning(
                "rabbitmq.undecodable_message",
                queue=self._names.main,
                size=len(message.body),
                error=error,
            )
            headers = carried_headers(message.header.properties)
            headers[DEAD_REASON_HEADER] = "undecodable"
            headers[LAST_ERROR_HEADER] = error
            headers[ATTEMPTS_HEADER] = 0
            if await self._forward(channel, message, self._names.dead_letter, headers):
                self._metrics.dead_lettered.labels("undecodable").inc()
            else:
                await self._back_off()
            return None
        return _Delivery(message, batches)

    async def _settle(
        self, channel: AbstractChannel, group: list[_Delivery], handler: Handler
    ) -> None:
        batches = [batch for delivery in group for batch in delivery.batches]
        try:
            await handler(batches)
        except Unavailable as exc:
            log.warning(
                "rabbitmq.handler_unavailable",
                queue=self._names.main,
                messages=len(group),
                error=exc.message,
            )
            for delivery in group:
                await self._requeue(channel, delivery.message)
            await self._back_off()
            return
        except Exception as exc:
            log.warning(
                "rabbitmq.handler_failed",
                queue=self._names.main,
                messages=len(group),
                batches=len(batches),
                error=describe(exc),
                exc_info=True,
            )
            if len(batches) > 1:
                # One bad batch must not take the good ones of its group along to the retry
                # queues (and, mixed with new traffic there, fail them again): handle each
                # alone. Batches already committed are duplicates then, which changes nothing.
                await self._settle_one_by_one(channel, group, handler)
            else:
                await self._retry_later(channel, group, describe(exc))
            return
        self._failures = 0
        await self._ack(channel, [_tag(delivery.message) for delivery in group])

    async def _settle_one_by_one(
        self, channel: AbstractChannel, group: list[_Delivery], handler: Handler
    ) -> None:
        for index, delivery in enumerate(group):
            failed: list[tuple[int, str]] = []
            for position, batch in enumerate(delivery.batches):
                try:
                    await handler([batch])
                except Unavailable:
                    for rest in group[index:]:
                        await self._requeue(channel, rest.message)
                    await self._back_off()
                    return
                except Exception as exc:
                    failed.append((position, describe(exc)))
            if not failed:
                await self._ack(channel, [_tag(delivery.message)])
            elif len(delivery.batches) == 1:
                if not await self._retry_one(channel, delivery.message, failed[0][1]):
                    await self._back_off()
            elif not await self._retry_parts(channel, delivery, failed):
                await self._back_off()

    async def _retry_parts(
        self, channel: AbstractChannel, delivery: _Delivery, failed: list[tuple[int, str]]
    ) -> bool:
        """A message of several batches of which some failed: each failed batch goes on alone,
        in a message of its own, to its retry (or the dead-letter queue); the others are
        committed. The original is acked once every such copy is confirmed, and returned to
        the queue if one is not (its committed batches are duplicates the next time)."""
        message = delivery.message
        headers = carried_headers(message.header.properties)
        traced = batch_headers(message.header.properties.headers, len(delivery.batches))
        for position, error in failed:
            own = part_headers(headers, traced[position])
            body = encode_message([delivery.batches[position]])
            queue = self._route_failed(own, error)
            if not await self._publish_copy(channel, body, queue, own, message):
                await self._requeue(channel, message)
                return False
            self._count_moved(queue)
        try:
            await channel.basic_ack(_tag(message))
        except AMQP_FAILURES as exc:
            # The failed batches are safe in their new queues; the original comes back and is
            # processed again, which the store makes harmless.
            log.warning("rabbitmq.ack_failed", queue=self._names.main, error=describe(exc))
        return True

    async def _ack(self, channel: AbstractChannel, tags: list[int]) -> None:
        """Ack handled deliveries; if that fails, end the session (they will be redelivered).

        With one main queue, one Basic.Ack with ``multiple`` for the highest tag: every
        delivery below it on this channel is either in the group or was settled already (moved,
        requeued), since one group at a time is handled and each is taken in delivery order."""
        try:
            if self._names.partitions == 1:
                await channel.basic_ack(max(tags), multiple=len(tags) > 1)
            else:
                # Deliveries are taken from the partitions in turn, not in delivery order: one
                # of an earlier tag may still be waiting, so each is acked by its own tag.
                for tag in sorted(tags):
                    await channel.basic_ack(tag)
        except AMQP_FAILURES as exc:
            # Committed but not acked: the broker redelivers and the store ignores the repeat.
            log.warning("rabbitmq.ack_failed", queue=self._names.main, error=describe(exc))
            raise _ConnectionLost("acks could not be sent") from exc

    async def _retry_later(
        self, channel: AbstractChannel, group: list[_Delivery], error: str
    ) -> None:
        forwarded = await asyncio.gather(
            *(self._retry_one(channel, delivery.message, error) for delivery in group)
        )
        if not all(forwarded):
            await self._back_off()

    async def _retry_one(
        self, channel: AbstractChannel, message: DeliveredMessage, error: str
    ) -> bool:
        headers = carried_headers(message.header.properties)
        queue = self._route_failed(headers, error)
        if forwarded := await self._forward(channel, message, queue, headers):
            self._count_moved(queue)
        return forwarded

    def _route_failed(self, headers: FieldTable, error: str) -> str:
        """The queue a failed message goes to next, its headers updated to say so: the delay
        queue of its next attempt, or the dead-letter queue once the retries are spent."""
        attempt = max(0, header_int(headers, ATTEMPT_HEADER))
        headers[LAST_ERROR_HEADER] = error
        if attempt < self._names.max_retries:
            headers[ATTEMPT_HEADER] = attempt + 1
            return self._names.retry_queues[attempt]
        headers[ATTEMPTS_HEADER] = attempt + 1
        headers[DEAD_REASON_HEADER] = "retries_exhausted"
        log.error(
            "rabbitmq.dead_lettered",
            queue=self._names.dead_letter,
            attempts=attempt + 1,
            error=error,
        )
        return self._names.dead_letter

    def _count_moved(self, queue: str) -> None:
        if queue == self._names.dead_letter:
            self._metrics.dead_lettered.labels("retries_exhausted").inc()
        else:
            self._metrics.retries.inc()

    async def _forward(
        self,
        channel: AbstractChannel,
        message: DeliveredMessage,
        routing_key: str,
        headers: FieldTable,
    ) -> bool:
        """Move a delivery to another queue: confirmed publish, then ack; on failure, requeue."""
        if not await self._publish_copy(channel, message.body, routing_key, headers, message):
            await self._requeue(channel, message)
            return False
        try:
            await channel.basic_ack(_tag(message))
        except AMQP_FAILURES as exc:
            # The copy is safe in its new queue; the original comes back and is processed
            # again, which the store makes harmless.
            log.warning("rabbitmq.ack_failed", queue=self._names.main, error=describe(exc))
        return True

    async def _publish_copy(
        self,
        channel: AbstractChannel,
        body: bytes,
        routing_key: str,
        headers: FieldTable,
        original: DeliveredMessage,
    ) -> bool:
        """Publish ``body`` to ``routing_key``, confirmed; False (logged) if it was not."""
        try:
            await publish_confirmed(
                channel,
                body,
                exchange=self._names.exchange,
                routing_key=routing_key,
                properties=persistent(headers, original.header.properties.content_type),
                within=self._options.forward_timeout,
            )
        except Unavailable as exc:
            log.error("rabbitmq.forward_failed", queue=routing_key, error=exc.message)
            return False
        return True

    async def _requeue(self, channel: AbstractChannel, message: DeliveredMessage) -> None:
        self._metrics.requeued.inc()
        # A closed channel returns the message by itself.
        with contextlib.suppress(*AMQP_FAILURES):
            await channel.basic_nack(_tag(message), requeue=True)

    async def _back_off(self) -> None:
        self._failures += 1
        delay = min(
            self._options.reconnect_delay * 2 ** (self._failures - 1),
            self._options.max_reconnect_delay,
        )
        await self._sleep_unless_stopped(delay)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()


def _arrival(
    queue: str, turns: _Turns, inbox: asyncio.Queue[_Signal]
) -> Callable[[DeliveredMessage], Coroutine[Any, Any, None]]:
    """The consumer callback of one main queue: the delivery waits its turn."""

    async def arrived(message: DeliveredMessage) -> None:
        turns.add(queue, message)
        inbox.put_nowait(_Signal.ARRIVED)

    return arrived


def _tag(message: DeliveredMessage) -> int:
    tag = message.delivery_tag
    if tag is None:  # only a Basic.GetEmpty or a Return has none, never a delivery
        raise RuntimeError("a delivery without a delivery tag")
    return tag
