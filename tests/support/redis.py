"""Test access to the real Redis on 127.0.0.1:6379: isolated gateways and a proxy to cut it off."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from eventcore.adapters.redis import RedisGateway

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"

_START_HINT = (
    "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no "
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


async def require_redis() -> None:
    """Fail (never skip) the test when Redis does not answer on 127.0.0.1:6379."""
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        pytest.fail(
            f"Redis is not answering on {REDIS_HOST}:{REDIS_PORT} ({exc!r}); "
            f"these tests need it. Start it (as root) with: {_START_HINT}",
            pytrace=False,
        )
    finally:
        await client.aclose()


def unique_prefix() -> str:
    """A key prefix no other test run uses, so runs never see each other's keys."""
    return f"ectest-{secrets.token_hex(6)}"


async def delete_prefixed(client: aioredis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])


@contextlib.asynccontextmanager
async def redis_gateway(
    url: str = REDIS_URL,
    *,
    prefix: str | None = None,
    cooldown: float = 1.0,
    socket_timeout: float = 0.25,
) -> AsyncIterator[RedisGateway]:
    """A gateway to the real Redis under ``prefix`` (a fresh one by default); its keys are
    deleted afterwards.

    Open a second one with the first one's prefix to play another process on the same keys.
    ``url`` may point at a :class:`TcpProxy`; the keys are still deleted straight from Redis.
    """
    await require_redis()
    chosen = prefix or unique_prefix()
    gateway = await RedisGateway.open(
        url, prefix=chosen, cooldown=cooldown, socket_timeout=socket_timeout
    )
    try:
        yield gateway
    finally:
        await gateway.close()
        cleaner = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        try:
            await delete_prefixed(cleaner, chosen)
        finally:
            await cleaner.aclose()


async def scan_keys(gateway: RedisGateway) -> list[str]:
    """Every key stored under the gateway's prefix, once (SCAN may return a key twice)."""
    return sorted(
        {key.decode() async for key in gateway.client.scan_iter(match=f"{gateway.prefix}:*")}
    )


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TcpProxy:
    """A local TCP proxy that can be stopped and started to make a server vanish and come back.

    Stopping closes the listening socket and cuts every open connection, as a crashed server
    would; starting listens again on the same port.
    """

    def __init__(self, target_host: str = REDIS_HOST, target_port: int = REDIS_PORT) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        pipes = [
            asyncio.create_task(_pipe(reader, upstream_writer)),
            asyncio.create_task(_pipe(upstream_reader, writer)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._tasks.difference_update(pipes)
            for end in (writer, upstream_writer):
                self._writers.discard(end)
                end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


@contextlib.asynccontextmanager
async def redis_proxy() -> AsyncIterator[TcpProxy]:
    """A running proxy in front of the real Redis, stopped afterwards."""
    await require_redis()
    proxy = TcpProxy()
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
