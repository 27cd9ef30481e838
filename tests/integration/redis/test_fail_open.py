"""Fail open: with Redis unreachable every adapter answers its harmless value, and recovers alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from tests.integration.redis.helpers import PATIENT_SECONDS, batch
from tests.support.redis import TcpProxy, closed_port, redis_gateway, redis_proxy

from eventcore.adapters.redis import (
    RedisAdmission,
    RedisCommittedKeys,
    RedisGateway,
    RedisQueryCache,
    RedisRateLimiter,
)
from eventcore.tenancy import ProjectRef

pytestmark = pytest.mark.integration

TENANT = ProjectRef("ws1", "p1")
# Not a performance bound: only a guard so that a hang fails instead of stalling the suite.
HANG_GUARD_SECONDS = 5


@dataclass
class Adapters:
    committed: RedisCommittedKeys
    answers: RedisQueryCache
    limiter: RedisRateLimiter
    admission: RedisAdmission

    @classmethod
    def on(cls, gateway: RedisGateway) -> Adapters:
        return cls(
            RedisCommittedKeys(gateway),
            RedisQueryCache(gateway),
            RedisRateLimiter(gateway, rate=0.5, burst=3),
            RedisAdmission(gateway, RedisCommittedKeys(gateway), rate=0.5, burst=3),
        )


async def assert_every_method_fails_open(adapters: Adapters) -> None:
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        await adapters.committed.remember([batch("ws1", "p1", "e1")])
        assert await adapters.committed.known(TENANT, ["e1"]) == set()

        generation = await adapters.answers.generation("ws1")
        assert generation < 0
        await adapters.answers.bump(["ws1"])
        await adapters.answers.put("ws1", "q", 0, b"answer", 60)
        looked_up, hit = await adapters.answers.lookup("ws1", "q")
        assert looked_up < 0
        assert hit is None

        assert [await adapters.limiter.acquire("ws1", 3) for _ in range(3)] == [0.0] * 3
        for _ in range(3):
            admitted = await adapters.admission.admit(TENANT, 3, ["e1"])
            assert (admitted.wait, admitted.known) == (0.0, frozenset())


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[TcpProxy, RedisGateway]]:
    """A gateway that reaches the real Redis through a proxy the test can stop and start."""
    async with (
        redis_proxy() as proxy,
        redis_gateway(proxy.url, cooldown=0.05, socket_timeout=PATIENT_SECONDS) as gateway,
    ):
        yield proxy, gateway


async def test_every_method_fails_open_when_nothing_listens() -> None:
    """Against a closed port every adapter method answers its fail-open value without raising."""
    async with await RedisGateway.open(f"redis://127.0.0.1:{closed_port()}/0") as gateway:
        adapters = Adapters.on(gateway)
        await assert_every_method_fails_open(adapters)
        # A second round runs with the breaker open: still the same answers.
        await assert_every_method_fails_open(adapters)
        assert not gateway.available


async def test_every_method_fails_open_when_redis_goes_away(
    proxied: tuple[TcpProxy, RedisGateway],
) -> None:
    """Redis vanishing under open connections gives fail-open answers, not errors."""
    proxy, gateway = proxied
    adapters = Adapters.on(gateway)
    await adapters.committed.remember([batch("ws1", "p1", "e1")])
    await proxy.stop()
    await assert_every_method_fails_open(adapters)


async def test_generations_while_down_never_match_an_answer(
    proxied: tuple[TcpProxy, RedisGateway],
) -> None:
    """Each generation read while Redis is down is new, so no answer filed under one is reused."""
    proxy, gateway = proxied
    answers = RedisQueryCache(gateway)
    await proxy.stop()
    first = await answers.generation("ws1")
    await asyncio.sleep(0.06)  # past the cooldown: the next read really tries Redis again
    second = await answers.generation("ws1")
    assert first < 0
    assert second < 0
    assert first != second


async def test_adapters_use_redis_again_once_it_is_back(
    proxied: tuple[TcpProxy, RedisGateway],
) -> None:
    """The same adapter objects go back to Redis after an outage, without being recreated."""
    proxy, gateway = proxied
    adapters = Adapters.on(gateway)
    await adapters.committed.remember([batch("ws1", "p1", "e1")])
    await adapters.answers.bump(["ws1"])
    assert await adapters.limiter.acquire("ws1", 3) == 0.0

    await proxy.stop()
    await assert_every_method_fails_open(adapters)
    await proxy.start()
    await asyncio.sleep(0.1)

    # The first command after the cooldown is the probe; it reaches Redis and closes the breaker.
    assert await adapters.committed.known(TENANT, ["e1", "e2"]) == {"e1"}
    assert gateway.available
    assert await adapters.limiter.acquire("ws1", 3) > 0
    # The bump attempted during the outage was kept and is sent with the next one.
    await adapters.answers.bump([])
    assert await adapters.answers.generation("ws1") == 2
    await adapters.answers.put("ws1", "q", 2, b"answer", 60)
    assert await adapters.answers.lookup("ws1", "q") == (2, b"answer")
