"""A TCP fault proxy for any server: put it between eventcore and the server, then cut it.

The shared servers on this machine must never be stopped (other test runs use them at the same
moment), so a test makes a server vanish for eventcore alone: eventcore is configured with the
proxy's port, and the test cuts the proxy (every relayed connection is reset and new ones are
refused, as with a server that went down) and later restores it (the same port listens again).
``freeze`` instead stops relaying bytes without closing anything: a server that hangs.

The proxy runs its own event loop on a daemon thread, so synchronous tests (sleeping, waiting
for processes) and asynchronous ones can both drive it::

    with fault_proxy(5432) as proxy:
        dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/mydb"
        ...
        proxy.cut()
        ...
        proxy.restore()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_COMMAND_TIMEOUT = 10.0


class FaultProxy:
    """A relay from 127.0.0.1:``port`` to ``target_host``:``target_port`` that a test controls."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"fault-proxy-{target_port}", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing: asyncio.Event | None = None
        self.port = 0
        self.is_cut = False
        self.connections_made = 0

    def start(self) -> None:
        """Listen on a free port (kept for the proxy's lifetime)."""
        self._thread.start()
        self._call(self._start())

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_COMMAND_TIMEOUT)
        self._loop.close()

    def cut(self) -> None:
        """Reset every relayed connection and refuse new ones until :meth:`restore`."""
        self.is_cut = True
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again on the same port; new connections reach the server again."""
        self._call(self._listen())
        self.is_cut = False

    def freeze(self) -> None:
        """Stop relaying bytes in either direction, closing nothing (a hung server)."""
        self._call(self._set_flowing(False))

    def thaw(self) -> None:
        self._call(self._set_flowing(True))

    @property
    def open_connections(self) -> int:
        return len(self._writers) // 2

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_COMMAND_TIMEOUT)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None:  # cut while connecting upstream
            writer.transport.abort()
            upstream_writer.transport.abort()
            return
        self.connections_made += 1
        self._writers.update((writer, upstream_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            for end in (writer, upstream_writer):
                self._writers.discard(end)
                end.transport.abort()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        # One side closed: so does the other, as a real connection would.
        sink.transport.abort()


@contextlib.contextmanager
def fault_proxy(target_port: int, target_host: str = "127.0.0.1") -> Iterator[FaultProxy]:
    """A running proxy to ``target_host``:``target_port``, closed afterwards."""
    proxy = FaultProxy(target_port, target_host)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
