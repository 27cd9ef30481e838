"""RedisGateway: readiness, workspace hash tags on every key, and the circuit breaker."""

from __future__ import annotations

import asyncio
import re

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs
from tests.integration.redis.helpers import PATIENT_SECONDS, batch
from tests.support.redis import closed_port, redis_gateway, redis_proxy, scan_keys

from eventcore.adapters.redis import (
    RedisCommittedKeys,
    RedisGateway,
    RedisQueryCache,
    RedisRateLimiter,
)
from eventcore.errors import CacheUnavailable

pytestmark = pytest.mark.integration


class Calls:
    """A command that counts how often the gateway really ran it."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, client: aioredis.Redis) -> str:
        self.count += 1
        await client.ping()
        return "redis"


async def test_ping_answers_when_redis_is_up(gateway: RedisGateway) -> None:
    """Readiness passes against a running Redis."""
    await gateway.ping()
    assert gateway.available


async def test_ping_raises_unavailable_when_redis_is_down() -> None:
    """Readiness raises CacheUnavailable naming where Redis was expected, without credentials."""
    url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    async with await RedisGateway.open(url) as gateway:
        with pytest.raises(CacheUnavailable, match=r"127\.0\.0\.1") as raised:
            await gateway.ping()
    assert raised.value.code == "cache_unavailable"
    assert "hunter2" not in str(raised.value)


async def test_every_workspace_key_carries_the_workspace_hash_tag(gateway: RedisGateway) -> None:
    """All keys of workspace data sit under ``{workspace}``, one Redis Cluster slot per workspace."""
    await RedisCommittedKeys(gateway).remember([batch("ws-a", "p1", "e1", "x" * 100)])
    query_cache = RedisQueryCache(gateway)
    await query_cache.bump(["ws-a"])
    await query_cache.put("ws-a", "counts|p1", 1, b"{}", 60)
    await RedisRateLimiter(gateway, rate=1, burst=5).acquire("ws-a", 1)

    keys = await scan_keys(gateway)
    assert len(keys) == 5
    tagged = re.compile(rf"^{re.escape(gateway.prefix)}:\{{ws-a\}}:(ck|gen|q|rl)(:|$)")
    assert all(tagged.match(key) for key in keys), keys


def test_a_prefix_with_braces_is_refused() -> None:
    """A prefix that would break the hash tag is refused."""
    with pytest.raises(ValueError, match="prefix"):
        RedisGateway(aioredis.Redis(), prefix="ec{x}")


async def test_after_a_failure_redis_is_skipped_until_the_cooldown_ends() -> None:
    """Once a command fails, others get their fallback without touching Redis until the cooldown."""
    async with await RedisGateway.open(
        f"redis://127.0.0.1:{closed_port()}/0", cooldown=60
    ) as gateway:
        command = Calls()
        assert await gateway.attempt(command, "fallback") == "fallback"
        assert [await gateway.attempt(command, "fallback") for _ in range(20)] == ["fallback"] * 20
        assert command.count == 1
        assert not gateway.available


async def test_after_the_cooldown_one_probe_runs_while_the_others_skip() -> None:
    """When the cooldown ends a single command probes Redis; concurrent ones keep skipping it."""
    async with (
        redis_proxy() as proxy,
        redis_gateway(proxy.url, cooldown=0.05, socket_timeout=PATIENT_SECONDS) as gateway,
    ):
        await proxy.stop()
        assert await gateway.attempt(Calls(), "fallback") == "fallback"
        await proxy.start()
        await asyncio.sleep(0.1)

        release = asyncio.Event()
        probe_calls = 0

        async def slow_probe(client: aioredis.Redis) -> str:
            nonlocal probe_calls
            probe_calls += 1
            await release.wait()
            await client.ping()
            return "redis"

        probe = asyncio.create_task(gateway.attempt(slow_probe, "fallback"))
        await asyncio.sleep(0)
        others = Calls()
        assert await gateway.attempt(others, "fallback") == "fallback"
        release.set()
        assert await probe == "redis"
        assert await gateway.attempt(others, "fallback") == "redis"
        assert (probe_calls, others.count) == (1, 1)


async def test_redis_errors_become_the_fallback(gateway: RedisGateway) -> None:
    """A command Redis rejects gives the fallback instead of raising."""
    await gateway.client.set(gateway.key("ws1", "gen"), b"not a number")

    async def wrong_type(client: aioredis.Redis) -> int:
        return await client.lpush(gateway.key("ws1", "gen"), b"x")

    assert await gateway.attempt(wrong_type, -1) == -1


async def test_going_down_and_coming_back_are_each_logged_once() -> None:
    """Many failures log one ``redis_down`` and the recovery one ``redis_back``."""
    async with (
        redis_proxy() as proxy,
        redis_gateway(proxy.url, cooldown=0.05, socket_timeout=PATIENT_SECONDS) as gateway,
    ):
        with capture_logs() as logs:
            await proxy.stop()
            for _ in range(5):
                assert await gateway.attempt(Calls(), None) is None
                await asyncio.sleep(0.06)
            await proxy.start()
            await asyncio.sleep(0.06)
            for _ in range(5):
                assert await gateway.attempt(Calls(), None) == "redis"
    assert [entry["event"] for entry in logs] == ["redis_down", "redis_back"]
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["location"] == f"127.0.0.1:{proxy.port}/0"


async def test_logs_never_show_the_redis_password() -> None:
    """The logged location of a Redis URL with a password leaves the password out."""
    url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    async with await RedisGateway.open(url) as gateway:
        with capture_logs() as logs:
            await gateway.attempt(Calls(), None)
    assert [entry["event"] for entry in logs] == ["redis_down"]
    assert "hunter2" not in repr(logs)
