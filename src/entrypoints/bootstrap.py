"""The composition root: one container per kind of process, over the gateways they share.

``Gateways`` holds what every process talks to: the store and Redis (``providers.Resource``\\s,
opened by ``init_resources()`` and closed by ``shutdown_resources()``; Redis is ``None`` when it is
not configured) and the caches built on them. Each kind of process has its own container:

- :class:`ApiContainer` (``eventcore serve``, embedding): its gateways add the publisher (RabbitMQ,
  or ``None``: the inline queue), the key cache and the rate limiters; it builds the whole
  :class:`~eventcore.platform.Platform` and what ``/health/ready`` asks.
- :class:`WorkerContainer` (``eventcore worker``): the queue consumer and the batch processor it
  feeds, with the crash tests' failpoints around the ports when they are armed. A worker
  publishes nothing, so it has no publisher.
- :class:`CommandContainer` (``eventcore rollup``): the maintenance use case.

Which adapter serves each port is chosen from the settings here (only ``eventcore migrate`` opens
a database by itself, to create its schema). Tests build the same containers and swap a
provider with ``.override()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

from dependency_injector import containers, providers

from eventcore.adapters.clock import SystemClock
from eventcore.adapters.memory import (
    MemoryCommittedKeys,
    MemoryKeyCache,
    MemoryMembershipCache,
    MemoryProjectCache,
    MemoryRateLimiter,
    MemoryTicketStore,
    NoQueryCache,
    UnlimitedRateLimiter,
)
from eventcore.adapters.security import Argon2Hasher, BoundedHasher, JwtCodec
from eventcore.cursors import CursorCodec
from eventcore.defaults import SIGNUP_BURST
from eventcore.entrypoints.failpoints import AFTER_INSERT, Failpoints
from eventcore.entrypoints.origin import HttpRequestContext
from eventcore.entrypoints.settings import Settings, jwt_secret
from eventcore.entrypoints.telemetry import observed_handler
from eventcore.events import IngestBatch
from eventcore.live import InProcessLive, LiveHub
from eventcore.platform import Platform, build_platform
from eventcore.ports import (
    Admission,
    ApiKeyCache,
    Clock,
    CommittedKeys,
    IngestQueue,
    LivePublisher,
    LiveWatch,
    MembershipCache,
    PasswordHasher,
    ProjectCache,
    QueryCache,
    RateLimiter,
    Store,
    TicketStore,
    TokenCodec,
    WorkspaceCaches,
)
from eventcore.usecases.maintenance import Maintenance
from eventcore.usecases.processing import BatchProcessor

if TYPE_CHECKING:
    from eventcore.adapters.rabbitmq import RabbitConsumer, RabbitOptions
    from eventcore.adapters.redis import RedisGateway
    from eventcore.entrypoints.http.metrics import QueueLengths


class StoreGateway(Store, Protocol):
    """The store as a process holds it: the port, plus a health probe and a way to close it."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class QueueGateway(IngestQueue, Protocol):
    """The publisher as the API holds it: the port, plus a health probe."""

    async def ping(self) -> None: ...


Check = Callable[[], Awaitable[object]]


class Probe(NamedTuple):
    """One dependency /health/ready and the start-up check ask: its ping, and whether a process
    can serve without it (it can without Redis: no cache, no fast path)."""

    ping: Check
    critical: bool


# By the name each dependency has in /health/ready's answer.
Readiness = Mapping[str, Probe]
Handler = Callable[[list[IngestBatch]], Awaitable[object]]
T = TypeVar("T")


# Gateways: opened and closed with the process.


async def open_store(
    settings: Settings, before_commit: Callable[[], None] | None = None
) -> AsyncIterator[StoreGateway]:
    """PostgreSQL or the embedded SQLite file. ``before_commit`` runs inside every append
    transaction, before its COMMIT (only the crash tests set one, and only on PostgreSQL)."""
    store: StoreGateway
    if settings.uses_postgres:
        from eventcore.adapters.postgres import PostgresStore

        store = await PostgresStore.open(
            settings.database_url,
            read_dsn=settings.database_read_url,
            read_wait=settings.database_read_wait_seconds,
            before_commit=before_commit,
        )
    else:
        from eventcore.adapters.sqlite import SqliteStore

        store = await SqliteStore.open(settings.sqlite_path)
    try:
        yield store
    finally:
        await store.close()


async def open_redis(settings: Settings) -> AsyncIterator[RedisGateway | None]:
    """The Redis gateway when EVENTCORE_REDIS_URL is set, else None (in-process caches)."""
    if not settings.redis_url:
        yield None
        return
    from eventcore.adapters.redis import RedisGateway

    gateway = await RedisGateway.open(settings.redis_url, prefix=settings.redis_prefix)
    try:
        yield gateway
    finally:
        await gateway.close()


def rabbit_options(settings: Settings) -> RabbitOptions:
    """The ingest queue as every process of the deployment must see it."""
    from eventcore.adapters.rabbitmq import QueueNames, RabbitOptions

    return RabbitOptions(
        settings.amqp_url,
        QueueNames(settings.queue_name, settings.retry_delays, settings.queue_partitions),
        max_length=settings.queue_max_length,
        quorum_size=settings.queue_replicas,
    )


async def open_publisher(settings: Settings) -> AsyncIterator[QueueGateway | None]:
    """RabbitMQ when EVENTCORE_AMQP_URL is set, else None: batches are committed inline."""
    if not settings.distributed:
        yield None
        return
    from eventcore.adapters.rabbitmq import RabbitPublisher

    publisher = await RabbitPublisher.open(rabbit_options(settings))
    try:
        yield publisher
    finally:
        await publisher.close()


def key_cache(clock: Clock) -> ApiKeyCache:
    """API keys are looked up in process, each for at most API_KEY_CACHE_SECONDS (the bound on a
    revocation made by another process): a shared cache would cost every request a round trip
    to save the store one lookup per key and second."""
    return MemoryKeyCache(clock)


def project_cache(clock: Clock) -> ProjectCache:
    """Projects known to exist are remembered in process, each for PROJECT_CACHE_SECONDS (the
    bound on a deleted project still being answered for): the analytics routes then check their
    project without a store round trip."""
    return MemoryProjectCache(clock)


def membership_cache(clock: Clock) -> MembershipCache:
    """Memberships' current roles are remembered in process, each for MEMBERSHIP_CACHE_SECONDS
    (the bound on a removed or demoted member keeping the old rights on another process): an
    access token's membership is checked on every request without a store round trip each."""
    return MemoryMembershipCache(clock)


def workspace_caches(redis: RedisGateway | None) -> WorkspaceCaches | None:
    """Redis's keys of a deleted workspace are removed with it; without Redis the caches are
    each process's own, unreachable once the workspace is gone, and they expire."""
    if redis is None:
        return None
    from eventcore.adapters.redis import RedisWorkspaceCaches

    return RedisWorkspaceCaches(redis)


def committed_keys(redis: RedisGateway | None) -> CommittedKeys:
    if redis is None:
        return MemoryCommittedKeys()
    from eventcore.adapters.redis import RedisCommittedKeys

    return RedisCommittedKeys(redis)


def query_cache(redis: RedisGateway | None, clock: Clock, store: StoreGateway) -> QueryCache:
    """Where analytics answers are cached so that no process serves one staler than the data:
    Redis, shared by every process; without it, on SQLite, answers in each process with the
    generations in the file (every process serving it sees every commit); on PostgreSQL
    without Redis, nowhere (the workers' commits could not reach the API's cache)."""
    if redis is not None:
        from eventcore.adapters.redis import RedisQueryCache

        return RedisQueryCache(redis)
    from eventcore.adapters.sqlite import SqliteQueryCache, SqliteStore

    if isinstance(store, SqliteStore):
        return SqliteQueryCache(store, clock)
    return NoQueryCache()


def rate_limiter(
    redis: RedisGateway | None, clock: Clock, rate: float, burst: float
) -> RateLimiter:
    """A limiter of ``rate`` per second (0: none), shared through Redis when there is one."""
    if rate == 0:
        return UnlimitedRateLimiter()
    if redis is None:
        return MemoryRateLimiter(clock, rate, burst)
    from eventcore.adapters.redis import RedisRateLimiter

    return RedisRateLimiter(redis, rate, burst)


def admission(redis: RedisGateway | None, rate: float, burst: float) -> Admission | None:
    """With Redis, an ingest call's rate limit and committed-ids lookup are one script call;
    without it (None), the in-process limiter and keys are asked in turn."""
    if redis is None:
        return None
    from eventcore.adapters.redis import RedisAdmission, RedisCommittedKeys

    return RedisAdmission(redis, RedisCommittedKeys(redis), rate, burst)


def attempts_limiter(redis: RedisGateway | None, clock: Clock, per_minute: float) -> RateLimiter:
    """``per_minute`` login attempts a minute, in bursts of as many. (Not named like the
    providers below: in their class body that name would be the first provider, and the others
    would be that same limiter.)"""
    return rate_limiter(redis, clock, per_minute / 60, per_minute)


def signups_limiter(redis: RedisGateway | None, clock: Clock, per_hour: float) -> RateLimiter:
    """``per_hour`` signups an hour, at most ``SIGNUP_BURST`` in a row."""
    return rate_limiter(redis, clock, per_hour / 3600, max(1.0, min(per_hour, SIGNUP_BURST)))


class Gateways(containers.DeclarativeContainer):
    """Connections and clients every kind of process uses, and the caches built on them."""

    settings = providers.Dependency(instance_of=Settings)
    # Called inside every append transaction before its COMMIT; a worker's failpoints set it.
    before_commit = providers.Dependency(instance_of=object, default=providers.Object(None))
    clock: providers.Singleton[Clock] = providers.Singleton(SystemClock)
    store: providers.Resource[StoreGateway] = providers.Resource(
        open_store, settings, before_commit
    )
    redis: providers.Resource[RedisGateway | None] = providers.Resource(open_redis, settings)
    committed: providers.Singleton[CommittedKeys] = providers.Singleton(committed_keys, redis)
    query_cache: providers.Singleton[QueryCache] = providers.Singleton(
        query_cache, redis, clock, store
    )


def live_publisher(redis: RedisGateway | None, hub: LiveHub | None = None) -> LivePublisher | None:
    """Where a process's commits go for the live view: through Redis to every API process when
    there is one (an API process's own ``hub`` says at once which projects it watches itself);
    without Redis (None), straight to this process's own hub."""
    if redis is None:
        return None
    from eventcore.adapters.redis.live import RedisLivePublisher

    return RedisLivePublisher(redis, hub=hub)


async def open_live_watch(redis: RedisGateway | None, hub: LiveHub) -> AsyncIterator[LiveWatch]:
    """How this API process hears of the commits of the others: Redis pub/sub when there is
    Redis (its own commits come back the same way); without it, its hub hears only its own.
    Closing ends every open stream first, so that a stopping process does not wait on them."""
    watch: LiveWatch
    if redis is None:
        watch = InProcessLive(hub)
        try:
            yield watch
        finally:
            hub.close()
        return
    from eventcore.adapters.redis.live import RedisLiveWatch

    listening = RedisLiveWatch(redis, hub)
    listening.start()
    try:
        yield listening
    finally:
        hub.close()
        await listening.close()


def ticket_store(redis: RedisGateway | None, clock: Clock) -> TicketStore:
    """Stream tickets in Redis, so that any API process redeems them; else in this process."""
    if redis is None:
        return MemoryTicketStore(clock)
    from eventcore.adapters.redis.live import RedisTicketStore

    return RedisTicketStore(redis)


class ApiGateways(Gateways):
    """The API's gateways: the shared ones, the publisher, the key cache and the limiters, and
    the live view's hub, channel and tickets."""

    live_hub: providers.Singleton[LiveHub] = providers.Singleton(
        LiveHub,
        streams_per_workspace=Gateways.settings.provided.live_streams_per_workspace,
        buffer_events=Gateways.settings.provided.live_buffer_events,
    )
    live_publisher: providers.Singleton[LivePublisher | None] = providers.Singleton(
        live_publisher, Gateways.redis, live_hub
    )
    live_watch: providers.Resource[LiveWatch] = providers.Resource(
        open_live_watch, Gateways.redis, live_hub
    )
    tickets: providers.Singleton[TicketStore] = providers.Singleton(
        ticket_store, Gateways.redis, Gateways.clock
    )

    queue: providers.Resource[QueueGateway | None] = providers.Resource(
        open_publisher, Gateways.settings
    )
    key_cache: providers.Singleton[ApiKeyCache] = providers.Singleton(key_cache, Gateways.clock)
    project_cache: providers.Singleton[ProjectCache] = providers.Singleton(
        project_cache, Gateways.clock
    )
    membership_cache: providers.Singleton[MembershipCache] = providers.Singleton(
        membership_cache, Gateways.clock
    )
    admission: providers.Singleton[Admission | None] = providers.Singleton(
        admission,
        Gateways.redis,
        Gateways.settings.provided.rate_limit_events_per_second,
        Gateways.settings.provided.burst,
    )
    limiter: providers.Singleton[RateLimiter] = providers.Singleton(
        rate_limiter,
        Gateways.redis,
        Gateways.clock,
        Gateways.settings.provided.rate_limit_events_per_second,
        Gateways.settings.provided.burst,
    )
    login_limiter: providers.Singleton[RateLimiter] = providers.Singleton(
        attempts_limiter,
        Gateways.redis,
        Gateways.clock,
        Gateways.settings.provided.login_attempts_per_minute,
    )
    account_limiter: providers.Singleton[RateLimiter] = providers.Singleton(
        attempts_limiter,
        Gateways.redis,
        Gateways.clock,
        Gateways.settings.provided.login_attempts_per_minute_per_account,
    )
    address_limiter: providers.Singleton[RateLimiter] = providers.Singleton(
        attempts_limiter,
        Gateways.redis,
        Gateways.clock,
        Gateways.settings.provided.login_attempts_per_minute_per_address,
    )
    signup_limiter: providers.Singleton[RateLimiter] = providers.Singleton(
        signups_limiter,
        Gateways.redis,
        Gateways.clock,
        Gateways.settings.provided.signups_per_hour_per_address,
    )


def api_readiness(
    store: StoreGateway, redis: RedisGateway | None, queue: QueueGateway | None
) -> Readiness:
    probes = {"database": Probe(store.ping, critical=True)}
    if queue is not None:
        probes["queue"] = Probe(queue.ping, critical=True)
    if redis is not None:
        probes["redis"] = Probe(redis.ping, critical=False)
    return probes


def queue_lengths(queue: QueueGateway | None) -> QueueLengths | None:
    """How /metrics reads the queue's length: RabbitMQ says; the inline queue has none."""
    if queue is None:
        return None
    from eventcore.adapters.rabbitmq import RabbitPublisher

    return queue.queue_lengths if isinstance(queue, RabbitPublisher) else None


class ApiContainer(containers.DeclarativeContainer):
    """An API process (or a program embedding eventcore): every use case."""

    settings = providers.Dependency(instance_of=Settings)
    gateways = providers.Container(ApiGateways, settings=settings)
    # The hash function itself (tests swap it for a fast fake), and the bound on how many
    # hashes run at once in this process, which every caller goes through.
    hash_function: providers.Singleton[PasswordHasher] = providers.Singleton(Argon2Hasher)
    hasher: providers.Singleton[PasswordHasher] = providers.Singleton(
        BoundedHasher,
        hash_function,
        concurrency=settings.provided.password_hash_concurrency,
        waiting=settings.provided.password_hash_waiting,
    )
    # Read once: tokens and cursors are keyed from the one secret every API process shares.
    secret: providers.Singleton[str] = providers.Singleton(jwt_secret, settings)
    tokens: providers.Singleton[TokenCodec] = providers.Singleton(
        JwtCodec,
        secret=secret,
        lifetime_seconds=settings.provided.token_lifetime_seconds,
    )
    cursors: providers.Singleton[CursorCodec] = providers.Singleton(CursorCodec.from_secret, secret)
    platform: providers.Singleton[Platform] = providers.Singleton(
        build_platform,
        store=gateways.store,
        hasher=hasher,
        tokens=tokens,
        clock=gateways.clock,
        key_cache=gateways.key_cache,
        limiter=gateways.limiter,
        committed=gateways.committed,
        query_cache=gateways.query_cache,
        project_cache=gateways.project_cache,
        queue=gateways.queue,
        limits=settings.provided.limits,
        cache_ttl=settings.provided.analytics_cache_seconds,
        login_limiter=gateways.login_limiter,
        account_limiter=gateways.account_limiter,
        address_limiter=gateways.address_limiter,
        signup_limiter=gateways.signup_limiter,
        admission=gateways.admission,
        membership_cache=gateways.membership_cache,
        cursors=cursors,
        request_context=providers.Object(HttpRequestContext()),
        audit_retention_days=settings.provided.audit_retention_days,
        workspace_caches=providers.Singleton(workspace_caches, gateways.redis),
        tickets=gateways.tickets,
        live_hub=gateways.live_hub,
        live_publisher=gateways.live_publisher,
        live_watch=gateways.live_watch,
        session_seconds=settings.provided.token_lifetime_seconds,
    )
    readiness: providers.Singleton[Readiness] = providers.Singleton(
        api_readiness, gateways.store, gateways.redis, gateways.queue
    )
    queue_lengths: providers.Singleton[QueueLengths | None] = providers.Singleton(
        queue_lengths, gateways.queue
    )


def consumer(settings: Settings) -> RabbitConsumer:
    from eventcore.adapters.rabbitmq import RabbitConsumer

    return RabbitConsumer(rabbit_options(settings))


def worker_handler(processor: BatchProcessor, failpoints: Failpoints) -> Handler:
    """What the consumer calls with each group: the processor, observed (metrics, one log line
    a group), passing the BEFORE_ACK failpoint once it returned."""
    return failpoints.handler(observed_handler(processor.process))


def worker_readiness(
    store: StoreGateway, redis: RedisGateway | None, queue: RabbitConsumer
) -> Readiness:
    probes = {
        "database": Probe(store.ping, critical=True),
        "queue": Probe(queue.ping, critical=True),
    }
    if redis is not None:
        probes["redis"] = Probe(redis.ping, critical=False)
    return probes


class WorkerContainer(containers.DeclarativeContainer):
    """A worker process: consume the queue, commit each group, then ack."""

    settings = providers.Dependency(instance_of=Settings)
    failpoints: providers.Singleton[Failpoints] = providers.Singleton(
        Failpoints.from_spec, settings.provided.failpoints
    )
    gateways = providers.Container(
        Gateways, settings=settings, before_commit=failpoints.provided.hook.call(AFTER_INSERT)
    )
    committed: providers.Singleton[CommittedKeys] = providers.Singleton(
        Failpoints.committed_keys, failpoints, gateways.committed
    )
    # A worker publishes the events it commits for the live view, through Redis (without
    # Redis there is no live view of a worker's commits).
    live: providers.Singleton[LivePublisher | None] = providers.Singleton(
        live_publisher, gateways.redis
    )
    processor: providers.Singleton[BatchProcessor] = providers.Singleton(
        BatchProcessor, gateways.store, committed, gateways.query_cache, live
    )
    handler: providers.Singleton[Handler] = providers.Singleton(
        worker_handler, processor, failpoints
    )
    consumer: providers.Singleton[RabbitConsumer] = providers.Singleton(consumer, settings)
    readiness: providers.Singleton[Readiness] = providers.Singleton(
        worker_readiness, gateways.store, gateways.redis, consumer
    )


class CommandContainer(containers.DeclarativeContainer):
    """A one-shot operator command."""

    settings = providers.Dependency(instance_of=Settings)
    gateways = providers.Container(Gateways, settings=settings)
    maintenance: providers.Singleton[Maintenance] = providers.Singleton(
        Maintenance,
        gateways.store,
        gateways.query_cache,
        gateways.clock,
        settings.provided.audit_retention_days,
    )


async def resolve(provider: providers.Provider[T]) -> T:
    """What ``provider`` gives, once the container's resources are open.

    Its dependencies are async resources (or, where a test overrides them, plain objects); in
    async mode a provider answers with an awaitable either way.
    """
    provider.enable_async_mode()
    return await provider.async_()


async def open_resources(container: containers.Container) -> None:
    """Open every gateway of ``container``; if one fails, close those that opened, and raise."""
    opening = container.init_resources()
    # Every resource here is async, so opening them is always something to await.
    assert opening is not None
    try:
        await opening
    except BaseException:
        await close_resources(container)
        raise


async def close_resources(container: containers.Container) -> None:
    closing = container.shutdown_resources()
    assert closing is not None
    await closing
