"""The RateLimiter contract: a per-workspace allowance of events, a burst, and a refill rate.

Every implementation is built with RATE events per second and a BURST (see implementations.py).
Waits are checked with a margin a real server's clock and rounding can meet.
"""

from __future__ import annotations

from eventcore.ports import RateLimiter
from tests.contract.implementations import BURST, RATE, Timed

# Refilling one event takes 1 / RATE seconds; implementations may round up to the millisecond.
ONE_EVENT_WAIT = 1 / RATE
ROUNDING = 0.01


async def test_the_whole_burst_is_allowed_at_once(rate_limiter: Timed[RateLimiter]) -> None:
    """A fresh workspace may send its whole burst in one request."""
    assert await rate_limiter.port.acquire("ws-a", BURST) == 0.0


async def test_the_burst_is_allowed_in_pieces(rate_limiter: Timed[RateLimiter]) -> None:
    """A fresh workspace may send its burst as many small requests."""
    waits = [await rate_limiter.port.acquire("ws-a", 1) for _ in range(BURST)]

    assert waits == [0.0] * BURST


async def test_past_the_burst_a_request_is_refused_with_a_short_positive_wait(
    rate_limiter: Timed[RateLimiter],
) -> None:
    """Once the burst is spent, a request is refused with a wait about one event's refill."""
    limiter = rate_limiter.port
    await limiter.acquire("ws-a", BURST)

    wait = await limiter.acquire("ws-a", 1)

    assert 0.0 < wait <= ONE_EVENT_WAIT + ROUNDING


async def test_a_refused_request_takes_nothing(rate_limiter: Timed[RateLimiter]) -> None:
    """A request bigger than what is left is refused, and what is left can still be used."""
    limiter = rate_limiter.port
    await limiter.acquire("ws-a", 4)

    assert await limiter.acquire("ws-a", BURST - 3) > 0.0
    assert await limiter.acquire("ws-a", BURST - 4) == 0.0


async def test_waiting_the_answered_time_is_enough(rate_limiter: Timed[RateLimiter]) -> None:
    """After waiting what a refusal said (plus a margin), the same request is allowed."""
    limiter = rate_limiter.port
    await limiter.acquire("ws-a", BURST)
    wait = await limiter.acquire("ws-a", 2)

    await rate_limiter.advance(wait + ROUNDING)

    assert await limiter.acquire("ws-a", 2) == 0.0


async def test_the_allowance_refills_at_the_rate(rate_limiter: Timed[RateLimiter]) -> None:
    """Half a burst's refill time gives back about half the burst."""
    limiter = rate_limiter.port
    await limiter.acquire("ws-a", BURST)

    await rate_limiter.advance(BURST / 2 / RATE + ROUNDING)

    assert await limiter.acquire("ws-a", BURST // 2) == 0.0
    assert await limiter.acquire("ws-a", BURST // 2) > 0.0


async def test_the_allowance_never_exceeds_the_burst(rate_limiter: Timed[RateLimiter]) -> None:
    """However long a workspace is idle, it gets back at most one burst."""
    limiter = rate_limiter.port
    await limiter.acquire("ws-a", 1)

    await rate_limiter.advance(2 * BURST / RATE)

    assert await limiter.acquire("ws-a", BURST) == 0.0
    assert await limiter.acquire("ws-a", 1) > 0.0


async def test_workspaces_have_separate_allowances(rate_limiter: Timed[RateLimiter]) -> None:
    """One workspace spending its burst leaves another's untouched."""
    limiter = rate_limiter.port
    await limiter.acquire("ws-a", BURST)
    assert await limiter.acquire("ws-a", 1) > 0.0

    assert await limiter.acquire("ws-b", BURST) == 0.0


async def test_a_request_larger_than_the_burst_passes_only_from_a_full_allowance(
    rate_limiter: Timed[RateLimiter],
) -> None:
    """An oversized request passes when the allowance is full, and its debt is then waited off."""
    limiter = rate_limiter.port
    assert await limiter.acquire("ws-a", 2 * BURST) == 0.0

    assert await limiter.acquire("ws-a", 1) > BURST / RATE
    assert await limiter.acquire("ws-b", 1) == 0.0
    assert await limiter.acquire("ws-b", 2 * BURST) > 0.0
