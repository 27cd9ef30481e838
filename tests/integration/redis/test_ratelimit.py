"""RedisRateLimiter: a per-workspace token bucket in Redis, one budget for every API process.

The bucket refills on Redis's clock (TIME, in the Lua script), which no test can hold still, so
the tests never depend on how quickly the machine runs them: those about the budget use rates
of a few events an hour, at which the refill while a test runs is negligible (and where it is
not, the expected answer is computed from the measured elapsed time); those about the refill
wait for the refill with a generous deadline and check only what no delay can change (nothing
comes back before its time, and never more than the burst).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from eventcore.adapters.redis import RedisGateway, RedisRateLimiter

pytestmark = pytest.mark.integration

HOUR = 3600.0
# Slack for the script's float arithmetic and Redis's millisecond expiry times.
SLACK_SECONDS = 0.002


async def tokens_left(gateway: RedisGateway, workspace_id: str) -> float:
    """What the workspace's bucket held after its last take, as stored in Redis."""
    tokens = await gateway.client.hget(gateway.key(workspace_id, "rl"), "tokens")
    assert tokens is not None
    return float(tokens)


async def until_allowed(
    limiter: RedisRateLimiter, workspace_id: str, events: int, *, within: float = 30.0
) -> None:
    """Ask for ``events`` until they are allowed (a refused request takes nothing)."""
    deadline = time.monotonic() + within
    while (wait := await limiter.acquire(workspace_id, events)) > 0:
        if time.monotonic() > deadline:
            pytest.fail(f"{events} events still refused after {within} s (wait {wait} s)")
        await asyncio.sleep(min(wait, 0.05))


async def test_a_burst_is_allowed_then_refused_with_a_positive_wait(gateway: RedisGateway) -> None:
    """Up to ``burst`` events pass at once; the next ones are told how long to wait."""
    rate = 2 / HOUR
    limiter = RedisRateLimiter(gateway, rate=rate, burst=10)
    started = time.monotonic()
    assert [await limiter.acquire("ws1", 5), await limiter.acquire("ws1", 5)] == [0.0, 0.0]
    wait = await limiter.acquire("ws1", 3)
    elapsed = time.monotonic() - started
    # Three missing events at two an hour, less what refilled since the burst (at most what
    # the elapsed time gives back: a fraction of an event).
    assert 3 / rate - elapsed - SLACK_SECONDS <= wait <= 3 / rate + SLACK_SECONDS


async def test_a_refused_request_takes_nothing(gateway: RedisGateway) -> None:
    """A request larger than what is left is refused whole, and what is left can still be used."""
    limiter = RedisRateLimiter(gateway, rate=1 / HOUR, burst=10)
    assert await limiter.acquire("ws1", 7) == 0.0
    assert await limiter.acquire("ws1", 5) > 0
    assert await limiter.acquire("ws1", 3) == 0.0


async def test_a_request_larger_than_the_burst_passes_from_a_full_bucket_and_leaves_debt(
    gateway: RedisGateway,
) -> None:
    """More events than the burst pass only from a full bucket; the debt then delays the next."""
    rate = 1 / HOUR
    limiter = RedisRateLimiter(gateway, rate=rate, burst=5)
    assert await limiter.acquire("ws1", 8) == 0.0
    wait = await limiter.acquire("ws1", 1)
    assert wait > 3 / rate  # 3 events of debt plus the one asked for, at one event an hour


async def test_the_bucket_refills_at_the_rate_up_to_the_burst(gateway: RedisGateway) -> None:
    """After waiting, the refilled events are allowed again, never before their time and never
    more than the burst."""
    rate = 20.0
    limiter = RedisRateLimiter(gateway, rate=rate, burst=2)
    started = time.monotonic()
    assert await limiter.acquire("ws1", 2) == 0.0
    assert await tokens_left(gateway, "ws1") == 0.0
    await until_allowed(limiter, "ws1", 1)
    # One event comes back after 1 / rate seconds of Redis's clock, not sooner.
    assert time.monotonic() - started >= 1 / rate - SLACK_SECONDS
    await asyncio.sleep(0.3)  # at least six events' worth, capped at the burst of two
    assert await limiter.acquire("ws1", 2) == 0.0
    # What is left right after that take: six refilled would leave four, capped leaves none.
    assert await tokens_left(gateway, "ws1") < 1


async def test_workspaces_have_separate_budgets(gateway: RedisGateway) -> None:
    """One workspace using its budget up leaves another's untouched."""
    limiter = RedisRateLimiter(gateway, rate=1 / HOUR, burst=3)
    assert await limiter.acquire("ws1", 3) == 0.0
    assert await limiter.acquire("ws1", 1) > 0
    assert await limiter.acquire("ws2", 3) == 0.0


async def test_two_processes_share_one_budget(
    gateway: RedisGateway, other_process: RedisGateway
) -> None:
    """Limiters on two clients draw from the same workspace budget."""
    here = RedisRateLimiter(gateway, rate=1 / HOUR, burst=10)
    there = RedisRateLimiter(other_process, rate=1 / HOUR, burst=10)
    assert await here.acquire("ws1", 6) == 0.0
    assert await there.acquire("ws1", 6) > 0
    assert await there.acquire("ws1", 4) == 0.0
    assert await here.acquire("ws1", 1) > 0


async def test_concurrent_requests_never_exceed_the_burst(gateway: RedisGateway) -> None:
    """Many requests at once are allowed exactly up to the burst: the take is atomic."""
    limiter = RedisRateLimiter(gateway, rate=1 / HOUR, burst=20)
    waits = await asyncio.gather(*(limiter.acquire("ws1", 1) for _ in range(50)))
    assert gateway.available
    assert sum(1 for wait in waits if wait == 0.0) == 20


async def test_an_idle_bucket_is_dropped_from_redis(gateway: RedisGateway) -> None:
    """The bucket key expires once a full refill would have made it irrelevant (plus a second
    kept beyond that), and not before."""
    rate = 1 / HOUR
    slow = RedisRateLimiter(gateway, rate=rate, burst=5)
    started = time.monotonic()
    await slow.acquire("ws1", 1)
    remaining_ms = await gateway.client.pttl(gateway.key("ws1", "rl"))
    elapsed_ms = (time.monotonic() - started) * 1000
    # One event's refill (an hour) plus the second kept, less the time spent asking.
    expected_ms = 1 / rate * 1000 + 1000
    assert expected_ms - elapsed_ms - 2 <= remaining_ms <= expected_ms + 2

    fast = RedisRateLimiter(gateway, rate=10, burst=5)
    key = gateway.key("ws2", "rl")
    started = time.monotonic()
    await fast.acquire("ws2", 1)
    deadline = started + 30
    while await gateway.client.exists(key):
        assert time.monotonic() < deadline, "the idle bucket was never dropped"
        await asyncio.sleep(0.05)
    # Kept for one event's refill (0.1 s) plus the second, by Redis's clock.
    assert time.monotonic() - started >= 1.1 - SLACK_SECONDS


def test_the_rate_must_be_positive(gateway: RedisGateway) -> None:
    """A zero rate is refused when the limiter is built."""
    with pytest.raises(ValueError, match="rate"):
        RedisRateLimiter(gateway, rate=0)
