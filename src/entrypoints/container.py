"""The composition root: which adapter serves each port, chosen from the settings.

Each gateway is a ``providers.Resource`` that opens (and later closes) whatever the settings
call for: SQLite or PostgreSQL, the inline queue or RabbitMQ, in-process caches or Redis. Tests
build the same container and swap a provider with ``.override()``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

from dependency_injector import containers, providers

from eventcore.adapters.clock import SystemClock
from eventcore.adapters.memory import (
    MemoryCommittedKeys,
    MemoryKeyCache,
    MemoryQueryCache,
    MemoryRateLimiter,
    UnlimitedRateLimiter,
)
from eventcore.adapters.security import Argon2Hasher, JwtCodec
from eventcore.entrypoints.settings import Settings, jwt_secret
from eventcore.platform import Platform, build_platform
from eventcore.ports import (
    ApiKeyCache,
    Clock,
    CommittedKeys,
    IngestQueue,
    QueryCache,
    RateLimiter,
    Store,
)


async def open_store(settings: Settings) -> AsyncIterator[Store]:
    if settings.uses_postgres:
        from eventcore.adapters.postgres import PostgresStore

        store: Any = await PostgresStore.open(settings.database_url)
    else:
        from eventcore.adapters.sqlite import SqliteStore

        store = await SqliteStore.open(settings.sqlite_path)
    try:
        yield store
    finally:
        await store.close()


async def open_redis(settings: Settings) -> AsyncIterator[Any]:
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


async def open_queue(settings: Settings) -> AsyncIterator[IngestQueue | None]:
    """RabbitMQ when EVENTCORE_AMQP_URL is set, else None: batches are committed inline."""
    if not settings.amqp_url:
        yield None
        return
    from eventcore.adapters.rabbitmq import RabbitPublisher

    publisher = await RabbitPublisher.open(
        settings.amqp_url, settings.queue_names, max_length=settings.queue_max_length
    )
    try:
        yield publisher
    finally:
        await publisher.close()


def key_cache(redis: Any, clock: Clock) -> ApiKeyCache:
    if redis is None:
        return MemoryKeyCache(clock, ttl=1.0)
    from eventcore.adapters.redis import RedisKeyCache

    cache: ApiKeyCache = RedisKeyCache(redis)
    return cache


def committed_keys(redis: Any) -> CommittedKeys:
    if redis is None:
        return MemoryCommittedKeys()
    from eventcore.adapters.redis import RedisCommittedKeys

    keys: CommittedKeys = RedisCommittedKeys(redis)
    return keys


def query_cache(redis: Any, clock: Clock) -> QueryCache:
    if redis is None:
        return MemoryQueryCache(clock)
    from eventcore.adapters.redis import RedisQueryCache

    cache: QueryCache = RedisQueryCache(redis)
    return cache


def rate_limiter(redis: Any, clock: Clock, rate: float, burst: float) -> RateLimiter:
    """A limiter of ``rate`` per second (0: none), shared through Redis when there is one."""
    if rate == 0:
        return UnlimitedRateLimiter()
    if redis is None:
        return MemoryRateLimiter(clock, rate, burst)
    from eventcore.adapters.redis import RedisRateLimiter

    limiter: RateLimiter = RedisRateLimiter(redis, rate, burst)
    return limiter


def per_minute(attempts: float) -> float:
    return attempts / 60


class Gateways(containers.DeclarativeContainer):
    """Connections and clients: everything that talks to the outside world."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    store = providers.Resource(open_store, settings)
    redis = providers.Resource(open_redis, settings)
    queue = providers.Resource(open_queue, settings)
    key_cache = providers.Singleton(key_cache, redis, clock)
    committed = providers.Singleton(committed_keys, redis)
    query_cache = providers.Singleton(query_cache, redis, clock)
    limiter = providers.Singleton(
        rate_limiter,
        redis,
        clock,
        settings.provided.rate_limit_events_per_second,
        settings.provided.burst,
    )
    login_limiter = providers.Singleton(
        rate_limiter,
        redis,
        clock,
        providers.Callable(per_minute, settings.provided.login_attempts_per_minute),
        settings.provided.login_attempts_per_minute,
    )
    address_limiter = providers.Singleton(
        rate_limiter,
        redis,
        clock,
        providers.Callable(per_minute, settings.provided.login_attempts_per_minute_per_address),
        settings.provided.login_attempts_per_minute_per_address,
    )


class Container(containers.DeclarativeContainer):
    """The application: use cases wired to the gateways."""

    settings = providers.Dependency(instance_of=Settings)
    gateways = providers.Container(Gateways, settings=settings)
    hasher = providers.Singleton(Argon2Hasher)
    tokens = providers.Singleton(
        JwtCodec,
        secret=providers.Callable(jwt_secret, settings),
        lifetime_seconds=settings.provided.token_lifetime_seconds,
    )
    platform = providers.Singleton(
        build_platform,
        store=gateways.store,
        hasher=hasher,
        tokens=tokens,
        clock=gateways.clock,
        key_cache=gateways.key_cache,
        limiter=gateways.limiter,
        committed=gateways.committed,
        query_cache=gateways.query_cache,
        queue=gateways.queue,
        limits=settings.provided.limits,
        cache_ttl=settings.provided.analytics_cache_seconds,
        login_limiter=gateways.login_limiter,
        address_limiter=gateways.address_limiter,
    )


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)


async def start(container: Container) -> Platform:
    """Open every gateway and build the platform on them."""
    await _maybe_await(container.gateways.init_resources())
    platform = await _maybe_await(container.platform())
    assert isinstance(platform, Platform)
    return platform


async def components(container: Container) -> dict[str, Any]:
    """The opened gateways by role (None where the profile does without), for health checks."""
    gateways = container.gateways
    return {
        "database": await _maybe_await(gateways.store()),
        "queue": await _maybe_await(gateways.queue()),
        "redis": await _maybe_await(gateways.redis()),
    }


async def stop(container: Container) -> None:
    await _maybe_await(container.gateways.shutdown_resources())


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
