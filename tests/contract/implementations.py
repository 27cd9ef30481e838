"""The registry of port implementations the contract suites run against.

Each port has a list of named factories. A factory takes a :class:`Scratch` (a fresh directory
and a unique name for databases, key prefixes or queues) and is an async context manager that
yields the implementation ready to use and cleans up after it. To put a new adapter under a
contract, append one factory to the port's list, marked ``pytest.mark.integration`` when it needs
a server; every contract test then runs against it too. For example (the real one is below)::

    @asynccontextmanager
    async def redis_query_cache(scratch: Scratch) -> AsyncIterator[Timed[QueryCache]]:
        async with redis_gateway(prefix=scratch.name) as gateway:  # keys deleted on exit
            yield Timed(RedisQueryCache(gateway), advance=real_time)

    QUERY_CACHES.append(Implementation("redis", redis_query_cache, INTEGRATION))

Ports whose behaviour depends on time are yielded as :class:`Timed`: the in-memory fakes run on
a :class:`ManualClock` that ``advance`` moves; a real server's implementation passes
:func:`real_time`, which sleeps (about 3.5 s in all over the time-based tests).

Registered today: memory and SQLite, the embedded profile's inline queue (which commits to SQLite
as it publishes), and the real servers' adapters (PostgreSQL, Redis, RabbitMQ on 127.0.0.1)
marked integration, so ``-m "not integration"`` runs the suites without servers. An
implementation that is known to break one contract test lists it in ``known_gaps`` with the
reason; that test is then a strict xfail for it, so the gap stays visible and the xfail turns
into a failure the day the implementation is fixed. None has a known gap today.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiormq
import pytest
from msgspec import Raw
from pamqp import commands as spec

from eventcore.adapters.clock import ManualClock, SystemClock
from eventcore.adapters.memory import (
    MemoryCommittedKeys,
    MemoryKeyCache,
    MemoryMembershipCache,
    MemoryProjectCache,
    MemoryQueryCache,
    MemoryQueue,
    MemoryRateLimiter,
    MemoryStore,
    MemoryTicketStore,
)
from eventcore.adapters.postgres import PostgresStore
from eventcore.adapters.rabbitmq import RabbitOptions, RabbitPublisher, decode_message
from eventcore.adapters.redis import (
    RedisAdmission,
    RedisCommittedKeys,
    RedisGateway,
    RedisQueryCache,
    RedisRateLimiter,
)
from eventcore.adapters.redis.live import RedisLivePublisher, RedisLiveWatch, RedisTicketStore
from eventcore.adapters.sqlite import SqliteQueryCache, SqliteStore
from eventcore.events import Event, IngestBatch
from eventcore.live import InProcessLive, LiveHub
from eventcore.ports import (
    Admission,
    ApiKeyCache,
    CommittedKeys,
    IngestQueue,
    LivePublisher,
    LiveWatch,
    MembershipCache,
    ProjectCache,
    QueryCache,
    RateLimiter,
    Store,
    TicketStore,
)
from eventcore.usecases.ingest import SeparateAdmission
from eventcore.usecases.processing import BatchProcessor, InlineQueue
from tests.support.postgres import PORT as POSTGRES_PORT
from tests.support.postgres import delete_counts, dsn_through, postgres_store, shared_database
from tests.support.proxy import fault_proxy
from tests.support.rabbitmq import AMQP_URL, rabbitmq_topology, tcp_proxy
from tests.support.redis import redis_gateway

T = TypeVar("T")

INTEGRATION = (pytest.mark.integration,)

# The rate limiter every implementation is built with for its contract: events per second, and
# the burst allowed at once. Chosen so that refilling the whole burst takes half a second.
RATE = 20.0
BURST = 10
# How long a store cut off from its database waits for it before it is DatabaseUnavailable.
UNREACHABLE_WAIT_MS = 300


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
    # Contract test function name -> why this implementation does not (yet) pass it.
    known_gaps: Mapping[str, str] = field(default_factory=dict)

    def param(self) -> Any:
        return pytest.param(self, id=self.name, marks=self.marks)

    @property
    def needs_server(self) -> bool:
        return any(mark.name == "integration" for mark in self.marks)

    def expect_gaps(self, request: pytest.FixtureRequest) -> None:
        """Mark the requesting test a strict xfail if it is one of this implementation's gaps."""
        reason = self.known_gaps.get(request.node.originalname)
        if reason is not None:
            request.applymarker(pytest.mark.xfail(reason=f"{self.name}: {reason}", strict=True))


@dataclass(frozen=True)
class Timed(Generic[T]):
    """A port whose entries expire, with the means to let time pass for it."""

    port: T
    advance: Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class StoreKit:
    """A store, how to damage its count tables behind its back (to test the repair), and
    another store of the same kind that cannot reach its database while ``unreachable`` lasts
    (None for a store with no database to lose, as memory).
    """

    store: Store
    wipe_counts: Callable[[], Awaitable[None]]
    unreachable: Callable[[], AbstractAsyncContextManager[Store]] | None = None


@dataclass(frozen=True)
class Held:
    """One event a queue holds, with what its batch says about it (tenant, time received)."""

    workspace_id: str
    project_id: str
    received_at: datetime
    event: Event


def holding(batches: Iterable[IngestBatch]) -> list[Held]:
    """What a queue that was given ``batches``, in this order, holds: every event of each."""
    return [Held(b.workspace_id, b.project_id, b.received_at, e) for b in batches for e in b.events]


@dataclass(frozen=True)
class QueueKit:
    """A queue, a look at what it holds, and a way to take what it depends on away for a while.

    ``held`` answers what the queue holds once publish has returned, in publish order, read from
    where it is kept and never on the publisher's word: the broker's main queue (taken off it),
    the in-memory list (taken), or, for the inline queue, which commits as it publishes, the
    events committed to the database file, read through a connection of its own. A queue that
    holds a batch is one that will get it stored (or, inline, already has), so what a batch is
    held as is its events, each with its batch's tenant and receipt time.
    """

    queue: IngestQueue
    held: Callable[[], Awaitable[list[Held]]]
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
        store.sketches.clear()
        store.tallies.clear()

    yield StoreKit(store, wipe_counts)


@asynccontextmanager
async def sqlite_store(scratch: Scratch) -> AsyncIterator[StoreKit]:
    path = scratch.directory / "eventcore.sqlite3"

    def delete_counts() -> None:
        # A second connection, as an operator's sqlite3 shell would be.
        with _connection(path) as connection:
            connection.execute("DELETE FROM counts_minute")
            connection.execute("DELETE FROM counts_hour")
            connection.execute("DELETE FROM users_hour")
            connection.execute("DELETE FROM users_day")
            connection.execute("DELETE FROM dims_day")

    async def wipe_counts() -> None:
        await asyncio.to_thread(delete_counts)

    @asynccontextmanager
    async def unreachable() -> AsyncIterator[Store]:
        # The file locked by another process (an operator's sqlite3 shell, a backup) for longer
        # than this second store waits, made short so the test is quick.
        async with await SqliteStore.open(path, busy_timeout_ms=UNREACHABLE_WAIT_MS) as locked_out:
            with _connection(path) as locker:
                locker.execute("BEGIN IMMEDIATE")
                try:
                    yield locked_out
                finally:
                    locker.execute("ROLLBACK")

    async with await SqliteStore.open(path) as store:
        yield StoreKit(store, wipe_counts, unreachable)


@contextmanager
def _connection(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        yield connection
    finally:
        connection.close()


@asynccontextmanager
async def postgres_store_kit(scratch: Scratch) -> AsyncIterator[StoreKit]:
    # One migrated database per test process; postgres_store empties its tables first, so each
    # test (and each hypothesis example) starts from nothing.
    dsn = shared_database()
    async with postgres_store(dsn) as store:

        async def wipe_counts() -> None:
            await delete_counts(dsn)

        @asynccontextmanager
        async def unreachable() -> AsyncIterator[Store]:
            # A second store whose pool reaches the server through a fault proxy, then cut:
            # its connections are reset and new ones refused, as with a server that went down.
            with fault_proxy(POSTGRES_PORT) as proxy:
                cut_off = await PostgresStore.open(
                    dsn_through(dsn, proxy.port),
                    max_size=1,
                    pool_timeout=UNREACHABLE_WAIT_MS / 1000,
                )
                async with cut_off:
                    proxy.cut()
                    yield cut_off

        yield StoreKit(store, wipe_counts, unreachable)


STORES: list[Implementation[StoreKit]] = [
    Implementation("memory", memory_store),
    Implementation("sqlite", sqlite_store),
    Implementation("postgres", postgres_store_kit, INTEGRATION),
]
# The stores in front of a database, which can be cut off from it (the reference store in
# memory has nothing to lose, so outage tests are not parametrized with it).
DATABASE_STORES = [implementation for implementation in STORES if implementation.name != "memory"]


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
async def sqlite_query_cache(scratch: Scratch) -> AsyncIterator[Timed[QueryCache]]:
    """Answers in memory, generations in the file, as each embedded process serving one has."""
    clock = ManualClock()
    store = await SqliteStore.open(scratch.directory / "cache.sqlite3")
    try:
        yield Timed(SqliteQueryCache(store, clock), manual_time(clock))
    finally:
        await store.close()


@asynccontextmanager
async def memory_project_cache(scratch: Scratch) -> AsyncIterator[Timed[ProjectCache]]:
    clock = ManualClock()
    yield Timed(MemoryProjectCache(clock), manual_time(clock))


@asynccontextmanager
async def memory_membership_cache(scratch: Scratch) -> AsyncIterator[Timed[MembershipCache]]:
    clock = ManualClock()
    yield Timed(MemoryMembershipCache(clock), manual_time(clock))


@asynccontextmanager
async def memory_rate_limiter(scratch: Scratch) -> AsyncIterator[Timed[RateLimiter]]:
    clock = ManualClock()
    yield Timed(MemoryRateLimiter(clock, rate=RATE, burst=BURST), manual_time(clock))


@asynccontextmanager
async def memory_queue(scratch: Scratch) -> AsyncIterator[QueueKit]:
    queue = MemoryQueue()

    async def held() -> list[Held]:
        return holding(queue.take())

    @asynccontextmanager
    async def outage() -> AsyncIterator[None]:
        queue.available = False
        try:
            yield
        finally:
            queue.available = True

    yield QueueKit(queue, held, outage)


# How long the inline queue's store waits for a locked database file before it is Unavailable
# (the embedded profile waits 5 s).
INLINE_BUSY_TIMEOUT_MS = 300


@asynccontextmanager
async def inline_queue(scratch: Scratch) -> AsyncIterator[QueueKit]:
    # The embedded profile's queue, wired as build_platform wires it when there is no broker:
    # over the processor on the SQLite store, with the in-process committed keys and query
    # cache. Its outage is the database file locked by another process (an operator's sqlite3
    # shell, a backup) for longer than the store waits, made short here so the test is quick.
    path = scratch.directory / "eventcore.sqlite3"
    async with await SqliteStore.open(path, busy_timeout_ms=INLINE_BUSY_TIMEOUT_MS) as store:
        processor = BatchProcessor(store, MemoryCommittedKeys(), MemoryQueryCache(SystemClock()))

        async def held() -> list[Held]:
            return await asyncio.to_thread(_committed_events, path)

        @asynccontextmanager
        async def outage() -> AsyncIterator[None]:
            with _connection(path) as locker:
                locker.execute("BEGIN IMMEDIATE")
                try:
                    yield
                finally:
                    locker.execute("ROLLBACK")

        yield QueueKit(InlineQueue(processor), held, outage)


def _committed_events(path: Path) -> list[Held]:
    """Every event committed to the SQLite file, in commit order, read as another process would."""
    with _connection(path) as connection:
        rows = connection.execute(
            "SELECT workspace_id, project_id, received_at, event_id, event_type, ts,"
            " CAST(properties AS BLOB) FROM events ORDER BY seq"
        ).fetchall()
    return [
        Held(workspace, project, _moment(received), Event(id_, type_, _moment(ts), Raw(properties)))
        for workspace, project, received, id_, type_, ts, properties in rows
    ]


def _moment(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


# The Redis adapters fail open: a command that times out answers a miss or "allowed" instead of
# raising. A generous timeout keeps a busy machine from turning into a wrong answer here.
REDIS_COMMAND_TIMEOUT = 5.0


@asynccontextmanager
async def _redis(scratch: Scratch) -> AsyncIterator[RedisGateway]:
    # Keys under the test's own prefix, all deleted when the test ends.
    async with redis_gateway(prefix=scratch.name, socket_timeout=REDIS_COMMAND_TIMEOUT) as gateway:
        yield gateway


@asynccontextmanager
async def redis_committed_keys(scratch: Scratch) -> AsyncIterator[CommittedKeys]:
    async with _redis(scratch) as gateway:
        yield RedisCommittedKeys(gateway)


@asynccontextmanager
async def redis_query_cache(scratch: Scratch) -> AsyncIterator[Timed[QueryCache]]:
    async with _redis(scratch) as gateway:
        yield Timed(RedisQueryCache(gateway), real_time)


@asynccontextmanager
async def redis_rate_limiter(scratch: Scratch) -> AsyncIterator[Timed[RateLimiter]]:
    async with _redis(scratch) as gateway:
        yield Timed(RedisRateLimiter(gateway, rate=RATE, burst=BURST), real_time)


@dataclass(frozen=True)
class AdmissionKit:
    """An Admission and the committed keys it reads (to make ids known), built with ADMISSION_RATE
    events per second and ADMISSION_BURST: so slow a refill that no test can see one."""

    admission: Admission
    committed: CommittedKeys


ADMISSION_RATE = 1 / 3600
ADMISSION_BURST = 5


@asynccontextmanager
async def memory_admission(scratch: Scratch) -> AsyncIterator[AdmissionKit]:
    committed = MemoryCommittedKeys()
    limiter = MemoryRateLimiter(ManualClock(), rate=ADMISSION_RATE, burst=ADMISSION_BURST)
    yield AdmissionKit(SeparateAdmission(limiter, committed), committed)


@asynccontextmanager
async def redis_admission(scratch: Scratch) -> AsyncIterator[AdmissionKit]:
    async with _redis(scratch) as gateway:
        committed = RedisCommittedKeys(gateway)
        admission = RedisAdmission(gateway, committed, ADMISSION_RATE, ADMISSION_BURST)
        yield AdmissionKit(admission, committed)


@asynccontextmanager
async def rabbitmq_queue(scratch: Scratch) -> AsyncIterator[QueueKit]:
    # Queues named for this test alone and deleted afterwards. The publisher reaches the broker
    # through a proxy that an outage cuts, so the same publisher meets the outage and then
    # reconnects (at once: reconnect_interval=0) when it is over. What was held is read straight
    # from the broker's main queue, never taken on the publisher's word.
    async with rabbitmq_topology() as names, tcp_proxy() as proxy:
        publisher = await RabbitPublisher.open(
            RabbitOptions(proxy.url, names, reconnect_interval=0)
        )
        async with publisher:

            async def held() -> list[Held]:
                return holding(await _take_all(names.main))

            @asynccontextmanager
            async def outage() -> AsyncIterator[None]:
                proxy.cut()
                try:
                    yield
                finally:
                    proxy.restore()

            yield QueueKit(publisher, held, outage)


@dataclass(frozen=True)
class LiveKit:
    """The live view's two ends as a deployment wires them: the publisher a committing process
    holds, and an API process's hub with the watch that feeds it (for Redis, a listener on a
    connection of its own; in process, the hub the publisher feeds)."""

    publisher: LivePublisher
    hub: LiveHub
    watch: LiveWatch


@asynccontextmanager
async def in_process_live(scratch: Scratch) -> AsyncIterator[LiveKit]:
    hub = LiveHub()
    live = InProcessLive(hub)
    yield LiveKit(live, hub, live)


@asynccontextmanager
async def redis_live(scratch: Scratch) -> AsyncIterator[LiveKit]:
    async with _redis(scratch) as worker, _redis(scratch) as api:
        hub = LiveHub()
        watch = RedisLiveWatch(api, hub)
        watch.start()
        try:
            yield LiveKit(RedisLivePublisher(worker), hub, watch)
        finally:
            await watch.close()


@asynccontextmanager
async def memory_tickets(scratch: Scratch) -> AsyncIterator[Timed[TicketStore]]:
    clock = ManualClock()
    yield Timed(MemoryTicketStore(clock), manual_time(clock))


@asynccontextmanager
async def redis_tickets(scratch: Scratch) -> AsyncIterator[Timed[TicketStore]]:
    async with _redis(scratch) as gateway:
        yield Timed(RedisTicketStore(gateway), real_time)


async def _take_all(queue: str) -> list[IngestBatch]:
    """Every batch waiting in ``queue``, in queue order, taken off it with Basic.Get."""
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        taken: list[IngestBatch] = []
        while True:
            message = await channel.basic_get(queue, no_ack=True)
            if not isinstance(message.delivery, spec.Basic.GetOk):
                return taken
            taken.extend(decode_message(message.body))
    finally:
        await connection.close()


KEY_CACHES: list[Implementation[Timed[ApiKeyCache]]] = [
    Implementation("memory", memory_key_cache),
]
COMMITTED_KEYS: list[Implementation[CommittedKeys]] = [
    Implementation("memory", memory_committed_keys),
    Implementation("redis", redis_committed_keys, INTEGRATION),
]
QUERY_CACHES: list[Implementation[Timed[QueryCache]]] = [
    Implementation("memory", memory_query_cache),
    Implementation("sqlite", sqlite_query_cache),
    Implementation("redis", redis_query_cache, INTEGRATION),
]
# In process only: the bound on a deleted project is the entry's lifetime, with no shared cache.
MEMBERSHIP_CACHES: list[Implementation[Timed[MembershipCache]]] = [
    Implementation("memory", memory_membership_cache),
]
PROJECT_CACHES: list[Implementation[Timed[ProjectCache]]] = [
    Implementation("memory", memory_project_cache),
]
RATE_LIMITERS: list[Implementation[Timed[RateLimiter]]] = [
    Implementation("memory", memory_rate_limiter),
    Implementation("redis", redis_rate_limiter, INTEGRATION),
]
ADMISSIONS: list[Implementation[AdmissionKit]] = [
    Implementation("memory", memory_admission),
    Implementation("redis", redis_admission, INTEGRATION),
]
INGEST_QUEUES: list[Implementation[QueueKit]] = [
    Implementation("memory", memory_queue),
    Implementation("inline", inline_queue),
    Implementation("rabbitmq", rabbitmq_queue, INTEGRATION),
]
LIVE: list[Implementation[LiveKit]] = [
    Implementation("in-process", in_process_live),
    Implementation("redis", redis_live, INTEGRATION),
]
TICKET_STORES: list[Implementation[Timed[TicketStore]]] = [
    Implementation("memory", memory_tickets),
    Implementation("redis", redis_tickets, INTEGRATION),
]
