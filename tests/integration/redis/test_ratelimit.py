"""RedisRateLimiter: a per-workspace token bucket in Redis, one budget for every API process."""

from __future__ import annotations

import asyncio

import pytest

from adapters.redis import RedisGateway, RedisRateLimiter

pytestmark = pytest.mark.integration


async def test_a_burst_is_allowed_then_refused_with_a_positive_wait(gateway: RedisGateway) -> None:
    """Up to ``burst`` events pass at once; the next ones are told how long to wait."""
    limiter = RedisRateLimiter(gateway, rate=2, burst=10)
    assert [await limiter.acquire("ws1", 5), await limiter.acquire("ws1", 5)] == [0.0, 0.0]
    wait = await limiter.acquire("ws1", 3)
    # Three missing events at two per second, less whatever refilled since the burst.
    assert 1.0 < wait <= 1.5


async def test_a_refused_request_takes_nothing(gateway: RedisGateway) -> None:
    """A request larger than what is left is refused whole, and what is left can still be used."""
    limiter = RedisRateLimiter(gateway, rate=0.5, burst=10)
    assert await limiter.acquire("ws1", 7) == 0.0
    assert await limiter.acquire("ws1", 5) > 0
    assert await limiter.acquire("ws1", 3) == 0.0


async def test_a_request_larger_than_the_burst_passes_from_a_full_bucket_and_leaves_debt(
    gateway: RedisGateway,
) -> None:
    """More events than the burst pass only from a full bucket; the debt then delays the next."""
    limiter = RedisRateLimiter(gateway, rate=1, burst=5)
    assert await limiter.acquire("ws1", 8) == 0.0
    wait = await limiter.acquire("ws1", 1)
    assert wait > 3  # 3 events of debt plus the one asked for, at one event per second


async def test_the_bucket_refills_at_the_rate_up_to_the_burst(gateway: RedisGateway) -> None:
    """After waiting, the refilled events are allowed again, and never more than the burst."""
    limiter = RedisRateLimiter(gateway, rate=20, burst=2)
    assert await limiter.acquire("ws1", 2) == 0.0
    assert await limiter.acquire("ws1", 1) > 0
    await asyncio.sleep(0.3)  # six events' worth, capped at the burst of two
    assert await limiter.acquire("ws1", 2) == 0.0
    # What is left right after that take: six refilled would leave four, capped leaves none.
    left = await gateway.client.hget(gateway.key("ws1", "rl"), "tokens")
    assert left is not None
    assert float(left) < 1


async def test_workspaces_have_separate_budgets(gateway: RedisGateway) -> None:
    """One workspace using its budget up leaves another's untouched."""
    limiter = RedisRateLimiter(gateway, rate=0.5, burst=3)
    assert await limiter.acquire("ws1", 3) == 0.0
    assert await limiter.acquire("ws1", 1) > 0
    assert await limiter.acquire("ws2", 3) == 0.0


async def test_two_processes_share_one_budget(
    gateway: RedisGateway, other_process: RedisGateway
) -> None:
    """Limiters on two clients draw from the same workspace budget."""
    here = RedisRateLimiter(gateway, rate=0.5, burst=10)
    there = RedisRateLimiter(other_process, rate=0.5, burst=10)
    assert await here.acquire("ws1", 6) == 0.0
    assert await there.acquire("ws1", 6) > 0
    assert await there.acquire("ws1", 4) == 0.0
    assert await here.acquire("ws1", 1) > 0


async def test_concurrent_requests_never_exceed_the_burst(gateway: RedisGateway) -> None:
    """Many requests at once are allowed exactly up to the burst: the take is atomic."""
    limiter = RedisRateLimiter(gateway, rate=0.1, burst=20)
    waits = await asyncio.gather(*(limiter.acquire("ws1", 1) for _ in range(50)))
    assert gateway.available
    assert sum(1 for wait in waits if wait == 0.0) == 20


async def test_an_idle_bucket_is_dropped_from_redis(gateway: RedisGateway) -> None:
    """The bucket key expires once a full refill would have made it irrelevant."""
    limiter = RedisRateLimiter(gateway, rate=10, burst=5)
    await limiter.acquire("ws1", 1)
    remaining_ms = await gateway.client.pttl(gateway.key("ws1", "rl"))
    assert 0 < remaining_ms <= 1500


def test_the_rate_must_be_positive(gateway: RedisGateway) -> None:
    """A zero rate is refused when the limiter is built."""
    with pytest.raises(ValueError, match="rate"):
        RedisRateLimiter(gateway, rate=0)
