"""An open-loop HTTP/1.1 load generator on raw asyncio sockets, run in a process of its own.

Open loop: request i is due at ``start + i / rate`` whatever happened to the earlier ones, and its
latency is counted from that due time (so a stalled server cannot hide its queueing, unlike a
closed-loop client that waits before sending more). Each request takes an idle keep-alive
connection or opens a new one, up to ``max_connections``; beyond that it waits, and the wait
counts. The generator measures its own CPU time, which the benchmark reports.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import resource
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

RequestFactory = Callable[[int], bytes]


@dataclass
class Sample:
    """One request: when it was due, when its answer ended, and the answer."""

    due: float
    done: float = 0.0
    status: int = 0
    body: bytes = b""


@dataclass
class LoadResult:
    samples: list[Sample]
    cpu_seconds: float
    wall_seconds: float
    connections: int
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class _Connection(asyncio.Protocol):
    """One keep-alive connection answering one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._try_complete()

    def _try_complete(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        marker = head.find(b"content-length:")
        if marker >= 0:
            stop = head.find(b"\r\n", marker)
            length = int(head[marker + 15 : stop if stop >= 0 else None])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter


class _Pool:
    def __init__(self, host: str, port: int, max_connections: int) -> None:
        self.host, self.port, self.max = host, port, max_connections
        self.idle: deque[_Connection] = deque()
        self.opened = 0
        self.waiting: deque[asyncio.Future[_Connection]] = deque()

    async def take(self) -> _Connection:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                return connection
            self.opened -= 1
        if self.opened < self.max:
            self.opened += 1
            try:
                _, connection = await asyncio.get_running_loop().create_connection(
                    _Connection, self.host, self.port
                )
            except BaseException:
                self.opened -= 1
                raise
            return connection
        waiter: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        return await waiter

    def give_back(self, connection: _Connection) -> None:
        if connection.closed:
            self.opened -= 1
            return
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    def close(self) -> None:
        for connection in self.idle:
            if connection.transport is not None:
                connection.transport.close()


async def _one(pool: _Pool, raw: bytes, sample: Sample, keep_body: bool) -> bool:
    connection = await pool.take()
    try:
        status, body = await connection.request(raw)
    except ConnectionError:
        pool.give_back(connection)
        sample.done = time.perf_counter()
        return False
    sample.done = time.perf_counter()
    sample.status = status
    if keep_body:
        sample.body = body
    pool.give_back(connection)
    return True


async def open_loop(
    host: str,
    port: int,
    make_request: RequestFactory,
    *,
    rate: float,
    seconds: float,
    max_connections: int = 256,
    keep_body: Callable[[int], bool] = lambda _: False,
    on_answer: Callable[[int, Sample], None] | None = None,
) -> LoadResult:
    """Send ``rate`` requests a second for ``seconds``; ``make_request(i)`` is request i's bytes."""
    pool = _Pool(host, port, max_connections)
    total = int(rate * seconds)
    samples = [Sample(0.0) for _ in range(total)]
    tasks: set[asyncio.Task[None]] = set()
    errors = 0

    async def run(index: int) -> None:
        nonlocal errors
        sample = samples[index]
        ok = await _one(pool, make_request(index), sample, keep_body(index))
        if not ok:
            errors += 1
        elif on_answer is not None:
            on_answer(index, sample)

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter() + 0.05
    interval = 1.0 / rate
    index = 0
    while index < total:
        now = time.perf_counter()
        # Everything due by now leaves now; then sleep until the next one is due.
        while index < total and start + index * interval <= now:
            samples[index].due = start + index * interval
            task = asyncio.create_task(run(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            index += 1
        if index < total:
            await asyncio.sleep(max(0.0, start + index * interval - time.perf_counter()))
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    pool.close()
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return LoadResult(samples, cpu, wall, pool.opened, errors)


def http_request(
    method: str, path: str, host: str, headers: Sequence[tuple[str, str]], body: bytes = b""
) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``values``; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def in_process(target: Callable[..., Any], *args: Any) -> Any:
    """Run ``target(*args)`` (which returns a picklable result) in a fresh process and return
    its result: the generator then never shares a CPU slice with the benchmark's own work."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(target, args)
