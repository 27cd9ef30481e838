"""The RateLimiter contract: a per-workspace allowance of events, a burst, and a refill rate.

Every implementation is built with RATE events per second and a BURST (see implementations.py).
Waits are checked with a margin a real server's clock and rounding can meet.

A real server refills on its own clock (Redis's TIME) while the test runs, so "right after" in a
test is a premise the machine may not keep: at RATE one event comes back every 50 ms, and a busy
machine can take longer than that between two requests. Each stretch of a test that needs
requests right after one another is timed; a run in which one took too long proves nothing
either way, so it is not judged: the scenario runs again on workspaces of its own, until a run
keeps the premise (or a generous deadline fails the test). Whether a run counts depends only on
its timing, never on its answers. A manual clock moves only when advanced, so there the first
run always counts.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from eventcore.ports import RateLimiter
from tests.contract.implementations import BURST, RATE, Timed

T = TypeVar("T")

# Refilling one event takes 1 / RATE seconds; implementations may round up to the millisecond.
ONE_EVENT_WAIT = 1 / RATE
ROUNDING = 0.01
# Requests are right after one another when less than this passed between them: well under one
# event's refill, so that no event can have come back.
RIGHT_AFTER = 0.8 * ONE_EVENT_WAIT
# How long a test keeps running its scenario again before the machine is deemed too slow.
PATIENCE_SECONDS = 60.0


class Stopwatch:
    """Times the stretches of one run that must be quick; keeps the longest."""

    def __init__(self) -> None:
        self.longest = 0.0

    @contextmanager
    def stretch(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.longest = max(self.longest, time.monotonic() - started)


Workspace = Callable[[str], str]


def _named(attempt: int) -> Workspace:
    return lambda name: f"{name}-{attempt}"


async def promptly(
    scenario: Callable[[Workspace, Stopwatch], Awaitable[T]], *, within: float = RIGHT_AFTER
) -> T:
    """The result of the first run of ``scenario`` whose timed stretches each took less than
    ``within`` seconds; each run names its workspaces afresh (``workspace("ws-a")``)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    too_slow: list[float] = []
    for attempt in itertools.count():
        watch = Stopwatch()
        result = await scenario(_named(attempt), watch)
        if watch.longest < within:
            return result
        too_slow.append(round(watch.longest, 3))
        if time.monotonic() > deadline:
            break
    pytest.fail(f"no run kept its stretches under {within} s; they took {too_slow}")


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

    async def run(workspace: Workspace, watch: Stopwatch) -> float:
        with watch.stretch():
            await limiter.acquire(workspace("ws-a"), BURST)
            return await limiter.acquire(workspace("ws-a"), 1)

    wait = await promptly(run)

    assert 0.0 < wait <= ONE_EVENT_WAIT + ROUNDING


async def test_a_refused_request_takes_nothing(rate_limiter: Timed[RateLimiter]) -> None:
    """A request bigger than what is left is refused, and what is left can still be used."""
    limiter = rate_limiter.port

    async def run(workspace: Workspace, watch: Stopwatch) -> tuple[float, float]:
        with watch.stretch():
            await limiter.acquire(workspace("ws-a"), 4)
            refused = await limiter.acquire(workspace("ws-a"), BURST - 3)
        return refused, await limiter.acquire(workspace("ws-a"), BURST - 4)

    refused, rest = await promptly(run)

    assert refused > 0.0
    assert rest == 0.0


async def test_waiting_the_answered_time_is_enough(rate_limiter: Timed[RateLimiter]) -> None:
    """After waiting what a refusal said (plus a margin), the same request is allowed."""
    limiter = rate_limiter.port

    async def run(workspace: Workspace, watch: Stopwatch) -> tuple[str, float]:
        with watch.stretch():
            await limiter.acquire(workspace("ws-a"), BURST)
            return workspace("ws-a"), await limiter.acquire(workspace("ws-a"), 2)

    workspace, wait = await promptly(run)
    assert wait > 0.0

    await rate_limiter.advance(wait + ROUNDING)

    assert await limiter.acquire(workspace, 2) == 0.0


async def test_the_allowance_refills_at_the_rate(rate_limiter: Timed[RateLimiter]) -> None:
    """Half a burst's refill time gives back about half the burst."""
    limiter = rate_limiter.port

    async def run(workspace: Workspace, watch: Stopwatch) -> tuple[float, float]:
        # The whole of it: the second half of the burst must not have come back yet either.
        with watch.stretch():
            await limiter.acquire(workspace("ws-a"), BURST)
            await rate_limiter.advance(BURST / 2 / RATE + ROUNDING)
            half = await limiter.acquire(workspace("ws-a"), BURST // 2)
            more = await limiter.acquire(workspace("ws-a"), BURST // 2)
        return half, more

    half, more = await promptly(run, within=BURST / RATE - RIGHT_AFTER)

    assert half == 0.0
    assert more > 0.0


async def test_the_allowance_never_exceeds_the_burst(rate_limiter: Timed[RateLimiter]) -> None:
    """However long a workspace is idle, it gets back at most one burst."""
    limiter = rate_limiter.port

    async def run(workspace: Workspace, watch: Stopwatch) -> tuple[float, float]:
        await limiter.acquire(workspace("ws-a"), 1)
        await rate_limiter.advance(2 * BURST / RATE)
        with watch.stretch():
            whole = await limiter.acquire(workspace("ws-a"), BURST)
            more = await limiter.acquire(workspace("ws-a"), 1)
        return whole, more

    whole, more = await promptly(run)

    assert whole == 0.0
    assert more > 0.0


async def test_workspaces_have_separate_allowances(rate_limiter: Timed[RateLimiter]) -> None:
    """One workspace spending its burst leaves another's untouched."""
    limiter = rate_limiter.port

    async def run(workspace: Workspace, watch: Stopwatch) -> tuple[float, float]:
        with watch.stretch():
            await limiter.acquire(workspace("ws-a"), BURST)
            refused = await limiter.acquire(workspace("ws-a"), 1)
        return refused, await limiter.acquire(workspace("ws-b"), BURST)

    refused, other = await promptly(run)

    assert refused > 0.0
    assert other == 0.0


async def test_a_request_larger_than_the_burst_passes_only_from_a_full_allowance(
    rate_limiter: Timed[RateLimiter],
) -> None:
    """An oversized request passes when the allowance is full, and its debt is then waited off."""
    limiter = rate_limiter.port

    async def run(workspace: Workspace, watch: Stopwatch) -> tuple[float, float, float, float]:
        with watch.stretch():
            oversized = await limiter.acquire(workspace("ws-a"), 2 * BURST)
            after_debt = await limiter.acquire(workspace("ws-a"), 1)
        with watch.stretch():
            small = await limiter.acquire(workspace("ws-b"), 1)
            not_full = await limiter.acquire(workspace("ws-b"), 2 * BURST)
        return oversized, after_debt, small, not_full

    oversized, after_debt, small, not_full = await promptly(run)

    assert oversized == 0.0
    assert after_debt > BURST / RATE
    assert small == 0.0
    assert not_full > 0.0
