"""Per-workspace rate limiting in process: a token bucket counting events."""

from __future__ import annotations

from eventcore.ports import Clock


class MemoryRateLimiter:
    """``rate`` events per second on average, bursts up to ``burst`` events."""

    def __init__(self, clock: Clock, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._clock = clock
        self._rate = rate
        self._burst = burst if burst is not None else rate
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, workspace_id: str, events: int) -> float:
        now = self._clock.now().timestamp()
        tokens, last = self._buckets.get(workspace_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        # A request larger than the whole burst passes when the bucket is full and leaves it in
        # debt, so it is possible at all and the average rate still holds.
        if events <= tokens or tokens >= self._burst:
            self._buckets[workspace_id] = (tokens - events, now)
            return 0.0
        self._buckets[workspace_id] = (tokens, now)
        missing = min(events, self._burst) - tokens
        return max(missing / self._rate, 1e-3)


class UnlimitedRateLimiter:
    async def acquire(self, workspace_id: str, events: int) -> float:
        return 0.0
