"""The registry of port implementations the contract suites run against.

Each port has a list of named factories. A factory takes a :class:`Scratch` (a fresh directory
and a unique name for databases, key prefixes or queues) and is an async context manager that
yields the implementation ready to use and cleans up after it. To put a new adapter under a
contract, append one factory to the port's list, marked ``pytest.mark.integration`` when it needs
a server; every contract test then runs against it too. For example::

    @asynccontextmanager
    async def redis_key_cache(scratch: Scratch) -> AsyncIterator[Timed[ApiKeyCache]]:
        gateway = ...  # keys under f"{scratch.name}:", deleted on exit
        yield Timed(RedisKeyCache(gateway), advance=real_time)

    KEY_CACHES.append(Implementation("redis", redis_key_cache, INTEGRATION))

Ports whose behaviour depends on time are yielded as :class:`Timed`: the in-memory fakes run on
a :class:`ManualClock` that ``advance`` moves; a real server's implementation passes
:func:`real_time`, which sleeps.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from adapters.clock import ManualClock
from adapters.memory import (
    MemoryCommittedKeys,
    MemoryKeyCache,
    MemoryQueryCache,
    MemoryQueue,
    MemoryRateLimiter,
    MemoryStore,
)
from adapters.sqlite import SqliteStore
from eventcore.events import IngestBatch
from eventcore.ports import (
    ApiKeyCache,
    CommittedKeys,
    IngestQueue,
    QueryCache,
    RateLimiter,
    Store,
)

T = TypeVar("T")

INTEGRATION = (pytest.mark.integration,)

# The rate limiter every implementation is built with for its contract: events per second, and
# the burst allowed at once. Chosen so that refilling the whole burst takes half a second.
RATE = 20.0
BURST = 10


@dataclass(frozen=True)
class Scratch:
    """Where an implementation under test may keep its state."""

    directory: Path
    name: str


@dataclass(frozen=True)
class Implementation(Generic[T]):
    name: str
    open: Callable[[Scratch], AbstractAsyncContextManager[T]]
    marks: tuple[pytest.MarkDecorator, ...] = ()

    def param(self) -> Any:
        return pytest.param(self, id=self.name, marks=self.marks)


@dataclass(frozen=True)
class Timed(Generic[T]):
    """A port whose entries expire, with the means to let time pass for it."""

    port: T
    advance: Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class StoreKit:
    """A store, and how to damage its count tables behind its back (to test the repair)."""

    store: Store
    wipe_counts: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class QueueKit:
    """A queue, the consumer's side of it, and a way to take the broker away for a while."""

    queue: IngestQueue
    receive: Callable[[], Awaitable[list[IngestBatch]]]
    outage: Callable[[], AbstractAsyncContextManager[None]]


async def real_time(seconds: float) -> None:
    await asyncio.sleep(seconds)


def manual_time(clock: ManualClock) -> Callable[[float], Awaitable[None]]:
    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    return advance


# stores


@asynccontextmanager
async def memory_store(scratch: Scratch) -> AsyncIterator[StoreKit]:
    store = MemoryStore()

    async def wipe_counts() -> None:
        store.counts.clear()

    yield StoreKit(store, wipe_counts)


@asynccontextmanager
async def sqlite_store(scratch: Scratch) -> AsyncIterator[StoreKit]:
    path = scratch.directory / "eventcore.sqlite3"

    def delete_counts() -> None:
        # A second connection, as an operator's sqlite3 shell would be.
        with _connection(path) as connection:
            connection.execute("DELETE FROM counts_minute")
            connection.execute("DELETE FROM counts_hour")

    async def wipe_counts() -> None:
        await asyncio.to_thread(delete_counts)

    async with await SqliteStore.open(path) as store:
        yield StoreKit(store, wipe_counts)


@contextmanager
def _connection(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        yield connection
    finally:
        connection.close()


STORES: list[Implementation[StoreKit]] = [
    Implementation("memory", memory_store),
    Implementation("sqlite", sqlite_store),
]


# caches, rate limiters, queues


@asynccontextmanager
async def memory_key_cache(scratch: Scratch) -> AsyncIterator[Timed[ApiKeyCache]]:
    clock = ManualClock()
    yield Timed(MemoryKeyCache(clock), manual_time(clock))


@asynccontextmanager
async def memory_committed_keys(scratch: Scratch) -> AsyncIterator[CommittedKeys]:
    yield MemoryCommittedKeys()


@asynccontextmanager
async def memory_query_cache(scratch: Scratch) -> AsyncIterator[Timed[QueryCache]]:
    clock = ManualClock()
    yield Timed(MemoryQueryCache(clock), manual_time(clock))


@asynccontextmanager
async def memory_rate_limiter(scratch: Scratch) -> AsyncIterator[Timed[RateLimiter]]:
    clock = ManualClock()
    yield Timed(MemoryRateLimiter(clock, rate=RATE, burst=BURST), manual_time(clock))


@asynccontextmanager
async def memory_queue(scratch: Scratch) -> AsyncIterator[QueueKit]:
    queue = MemoryQueue()

    async def receive() -> list[IngestBatch]:
        return queue.take()

    @asynccontextmanager
    async def outage() -> AsyncIterator[None]:
        queue.available = False
        try:
            yield
        finally:
            queue.available = True

    yield QueueKit(queue, receive, outage)


KEY_CACHES: list[Implementation[Timed[ApiKeyCache]]] = [
    Implementation("memory", memory_key_cache),
]
COMMITTED_KEYS: list[Implementation[CommittedKeys]] = [
    Implementation("memory", memory_committed_keys),
]
QUERY_CACHES: list[Implementation[Timed[QueryCache]]] = [
    Implementation("memory", memory_query_cache),
]
RATE_LIMITERS: list[Implementation[Timed[RateLimiter]]] = [
    Implementation("memory", memory_rate_limiter),
]
INGEST_QUEUES: list[Implementation[QueueKit]] = [
    Implementation("memory", memory_queue),
]
