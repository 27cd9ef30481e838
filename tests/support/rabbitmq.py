"""Test access to the real RabbitMQ on 127.0.0.1:5672: unique topologies, builders, a cuttable proxy."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiormq
import msgspec
import pytest

from eventcore.adapters.rabbitmq import (
    QueueNames,
    RabbitConsumer,
    declare_topology,
    delete_topology,
)
from eventcore.adapters.rabbitmq._amqp import open_connection
from eventcore.events import Event, IngestBatch

RABBITMQ_HOST = "127.0.0.1"
RABBITMQ_PORT = 5672
AMQP_URL = f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/"

# Short delays keep the retry path fast; they grow as in production.
TEST_RETRY_DELAYS = (0.05, 0.1, 0.2)

_START_HINT = "rabbitmq-server -detached, then wait until `rabbitmq-diagnostics -q ping` succeeds"

T = TypeVar("T")


async def require_rabbitmq() -> None:
    """Fail (never skip) the test when RabbitMQ does not answer AMQP on 127.0.0.1:5672."""
    try:
        async with asyncio.timeout(5):
            connection = await aiormq.connect(AMQP_URL)
        await connection.close()
    except (aiormq.AMQPError, OSError) as exc:
        pytest.fail(
            f"RabbitMQ is not answering on {RABBITMQ_HOST}:{RABBITMQ_PORT} ({exc!r}); these tests "
            f"need it. Start it (as root) with: {_START_HINT}",
            pytrace=False,
        )


def unique_names(retry_delays: tuple[float, ...] = TEST_RETRY_DELAYS) -> QueueNames:
    """Queue names no other test or run uses, so runs never see each other's messages."""
    return QueueNames(base=f"ectest.{secrets.token_hex(6)}", retry_delays=retry_delays)


async def delete_queues(names: QueueNames, url: str = AMQP_URL) -> None:
    """Delete the pipeline's queues on the broker of ``url`` (its first node that answers)."""
    connection = await open_connection(url, within=10)
    try:
        channel = await connection.channel()
        await delete_topology(channel, names)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def rabbitmq_topology(names: QueueNames | None = None) -> AsyncIterator[QueueNames]:
    """Unique names for one test; whatever the test declared under them is deleted afterwards."""
    await require_rabbitmq()
    chosen = names or unique_names()
    try:
        yield chosen
    finally:
        await delete_queues(chosen)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just released by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((RABBITMQ_HOST, 0))
        port: int = probe.getsockname()[1]
    return port


NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def batch(
    *event_ids: str, workspace_id: str = "ws1", project_id: str = "p1", event_type: str = "click"
) -> IngestBatch:
    events = [Event(event_id, event_type, NOW, msgspec.Raw(b'{"n":1}')) for event_id in event_ids]
    return IngestBatch(
        workspace_id=workspace_id, project_id=project_id, received_at=NOW, events=events
    )


def numbered_batch(number: int, events: int = 1, workspace_id: str = "ws1") -> IngestBatch:
    return batch(*(f"b{number}-e{i}" for i in range(events)), workspace_id=workspace_id)


async def publish_raw(
    names: QueueNames,
    body: bytes,
    headers: dict[str, Any] | None = None,
    *,
    queue: str | None = None,
) -> None:
    """Put arbitrary bytes on a queue (the main one by default), as a misbehaving publisher would."""
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await declare_topology(channel, names)
        await channel.basic_publish(
            body,
            exchange=names.exchange,
            routing_key=queue or names.main,
            mandatory=True,
            properties=aiormq.spec.Basic.Properties(delivery_mode=2, headers=headers or {}),
        )
    finally:
        await connection.close()


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    within: float = 10.0,
    every: float = 0.05,
) -> T:
    """Poll ``probe`` until its value satisfies ``until``; fail with the last value otherwise."""
    value = await probe()
    try:
        async with asyncio.timeout(within):
            while not until(value):
                await asyncio.sleep(every)
                value = await probe()
    except TimeoutError:
        pytest.fail(f"condition not reached within {within} s; last value: {value!r}")
    return value


class Recorder:
    """A handler that records each group it is given and can be made to fail or to wait."""

    def __init__(self) -> None:
        self.groups: list[list[IngestBatch]] = []
        self.failures: list[BaseException] = []
        self.fail_with: Callable[[int], BaseException | None] = lambda call: None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.returned: list[int] = []
        self._changed = asyncio.Condition()

    @property
    def batches(self) -> list[IngestBatch]:
        return [b for group in self.groups for b in group]

    async def __call__(self, batches: list[IngestBatch]) -> object:
        call = len(self.groups)
        self.groups.append(list(batches))
        self.entered.set()
        async with self._changed:
            self._changed.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        failure = self.fail_with(call)
        if failure is not None:
            self.failures.append(failure)
            raise failure
        self.returned.append(call)
        return None

    async def wait_for_calls(self, count: int, within: float = 10.0) -> None:
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: len(self.groups) >= count)
        except TimeoutError:
            pytest.fail(f"handler called {len(self.groups)} times, expected {count}")

    async def wait_for_batches(self, count: int, within: float = 10.0) -> None:
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: len(self.batches) >= count)
        except TimeoutError:
            pytest.fail(f"handler saw {len(self.batches)} batches, expected {count}")


@contextlib.asynccontextmanager
async def running(
    consumer: RabbitConsumer,
    handler: Callable[[list[IngestBatch]], Awaitable[object]],
    **options: Any,
) -> AsyncIterator[asyncio.Task[None]]:
    """Run the consumer in a task; stop it gracefully at the end (cancel if it will not stop)."""
    task = asyncio.create_task(consumer.run(handler, **options))
    try:
        yield task
    finally:
        if not task.done():
            consumer.stop()
            try:
                async with asyncio.timeout(10):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class TcpProxy:
    """A TCP relay from 127.0.0.1:<port> to RabbitMQ that a test can cut and restore.

    ``cut`` closes every relayed connection at once (the client sees the broker vanish) and
    makes new ones close on arrival, until ``restore``. ``freeze`` stops relaying bytes without
    closing anything (a broker that hangs, or a network that drops packets), until ``thaw``.
    """

    def __init__(self, target_host: str = RABBITMQ_HOST, target_port: int = RABBITMQ_PORT) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.is_cut = False
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def relaying(self) -> int:
        """Client connections relayed right now."""
        return len(self._writers) // 2

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self.is_cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.is_cut = False

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        self._tasks.update(pumps)
        for pump in pumps:
            pump.add_done_callback(self._tasks.discard)
        await asyncio.gather(*pumps, return_exceptions=True)
        for end in (writer, upstream_writer):
            end.transport.abort()
            self._writers.discard(end)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


@contextlib.asynccontextmanager
async def tcp_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy()
    await proxy.start()
    try:
        yield proxy
    finally:
        proxy.thaw()
        await proxy.close()


def event_ids(batches: Sequence[IngestBatch]) -> list[str]:
    return [event.id for b in batches for event in b.events]
