"""Per-workspace rate limiting in Redis: one token bucket per workspace shared by every API process."""

from __future__ import annotations

from eventcore.adapters.redis.gateway import RedisGateway

# The same bucket as MemoryRateLimiter, run atomically in Redis on Redis's clock (TIME), so
# processes on different machines draw from one budget and their clock skew does not matter.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local events = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local wait = 0
-- A request larger than the whole burst passes when the bucket is full and leaves it in debt.
if events <= tokens or tokens >= burst then
  tokens = tokens - events
else
  wait = math.max((math.min(events, burst) - tokens) / rate, 0.001)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
-- Once full again the bucket is as if never used, so it may expire then.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + tonumber(ARGV[4]))
return string.format('%.17g', wait)
"""


class RedisRateLimiter:
    """``rate`` events per second on average, bursts up to ``burst`` events, per workspace.

    Fails open: with Redis unreachable every request is allowed.
    """

    def __init__(self, gateway: RedisGateway, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._gw = gateway
        self._rate = rate
        self._burst = burst if burst is not None else rate
        self._idle_ms = 1000  # kept beyond the moment a bucket is full again
        self._take = gateway.client.register_script(_TAKE)

    async def acquire(self, workspace_id: str, events: int) -> float:
        wait = await self._gw.attempt(
            lambda r: self._take(
                keys=[self._gw.key(workspace_id, "rl")],
                args=[repr(self._rate), repr(self._burst), events, self._idle_ms],
                client=r,
            ),
            b"0",
        )
        return float(wait)
