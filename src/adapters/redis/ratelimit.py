"""Per-workspace rate limiting in Redis, and ingest admission: the rate limit and the
committed-ids lookup of one ingest call in one round trip.

One token bucket per workspace is shared by every API process. It is the same bucket as
MemoryRateLimiter, run atomically in Redis on Redis's clock (TIME), so processes on different
machines draw from one budget and their clock skew does not matter.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from eventcore.adapters.redis.caches import RedisCommittedKeys
from eventcore.adapters.redis.gateway import Client, RedisGateway, queued
from eventcore.ports import Admitted
from eventcore.tenancy import ProjectRef

_Arg = bytes | str | int | float
"""What a script argument may be (redis-py encodes each)."""

# take(KEYS[1], rate, burst, events, idle_ms): the seconds to wait (0 when allowed).
_BUCKET = """
local function take(key, rate, burst, events, idle_ms)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
  local state = redis.call('HMGET', key, 'tokens', 'at')
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
  redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
  -- Once full again the bucket is as if never used, so it may expire then.
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + idle_ms)
  return wait
end
"""

_TAKE = (
    _BUCKET
    + """
return string.format('%.17g', take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
                                   tonumber(ARGV[3]), tonumber(ARGV[4])))
"""
)

# KEYS[1] the bucket (ARGV[1] = 0: no rate limit), KEYS[2] the prefix of the project's
# committed-id keys, ARGV[5] the ids as a JSON array (see RedisCommittedKeys).
# Answers {wait} when refused, else {"0", 1 or 0 for each id}.
_ADMIT = (
    _BUCKET
    + """
local rate = tonumber(ARGV[1])
if rate > 0 then
  local wait = take(KEYS[1], rate, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
  if wait > 0 then
    return {string.format('%.17g', wait)}
  end
end
local answer = {'0'}
local ids = cjson.decode(ARGV[5])
for i = 1, #ids do
  answer[i + 1] = redis.call('EXISTS', KEYS[2] .. ids[i])
end
return answer
"""
)

# Kept beyond the moment a bucket is full again.
_IDLE_MS = 1000


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
        self._take = gateway.register_script(_TAKE)

    async def acquire(self, workspace_id: str, events: int) -> float:
        wait = await self._gw.attempt(
            lambda r: self._take(
                keys=[self._gw.key(workspace_id, "rl")],
                args=[repr(self._rate), repr(self._burst), events, _IDLE_MS],
                client=r,
            ),
            b"0",
        )
        return float(wait)


class RedisAdmission:
    """An :class:`eventcore.ports.Admission` in one script call: the workspace's bucket (as
    :class:`RedisRateLimiter`; ``rate`` 0 for none) and, when allowed, which ids are committed
    (the keys of :class:`RedisCommittedKeys`). Every key carries the workspace's hash tag, so the
    call is one Redis Cluster slot. Fails open: allowed, nothing known.

    Calls made in one turn of the event loop share a round trip: they are sent together, in one
    pipeline, at the next turn (each call is still its own script call, so each is as atomic as
    before), without waiting for the round trips already on their way. A busy process makes one
    write and one read for many calls.
    """

    def __init__(
        self,
        gateway: RedisGateway,
        committed: RedisCommittedKeys,
        rate: float,
        burst: float | None = None,
    ) -> None:
        if rate < 0:
            raise ValueError("rate may not be negative")
        self._gw = gateway
        self._committed = committed
        self._rate = rate
        self._burst = burst if burst is not None else rate
        self._admit = gateway.register_script(_ADMIT)
        self._waiting: list[tuple[list[str], list[_Arg], asyncio.Future[list[bytes | int]]]] = []
        self._flushing = False
        self._sending: set[asyncio.Task[None]] = set()

    async def admit(self, tenant: ProjectRef, events: int, event_ids: Sequence[str]) -> Admitted:
        if self._rate == 0 and not event_ids:
            return Admitted(0.0)
        keys = [
            self._gw.key(tenant.workspace_id, "rl"),
            self._committed.prefix(tenant.workspace_id, tenant.project_id),
        ]
        args: list[_Arg] = [
            repr(self._rate),
            repr(self._burst),
            events,
            _IDLE_MS,
            self._committed.ids_argument(event_ids),
        ]
        answer = await self._call(keys, args)
        wait = float(answer[0])
        if wait > 0:
            return Admitted(wait)
        known = frozenset(i for i, hit in zip(event_ids, answer[1:], strict=False) if hit)
        return Admitted(0.0, known)

    async def _call(self, keys: list[str], args: list[_Arg]) -> list[bytes | int]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[bytes | int]] = loop.create_future()
        self._waiting.append((keys, args, answer))
        if not self._flushing:
            # The calls made in this turn of the event loop go together at the next one.
            self._flushing = True
            loop.call_soon(self._flush)
        return await answer

    def _flush(self) -> None:
        self._flushing = False
        calls, self._waiting = self._waiting, []
        if calls:
            sending = asyncio.get_running_loop().create_task(self._send(calls))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    async def _send(
        self, calls: list[tuple[list[str], list[_Arg], asyncio.Future[list[bytes | int]]]]
    ) -> None:
        answers: list[list[bytes | int]] | None = None
        try:
            answers = await self._gw.attempt(functools.partial(self._round_trip, calls=calls), None)
        finally:
            for index, (_, _, answer) in enumerate(calls):
                if not answer.done():
                    answer.set_result(_ALLOWED if answers is None else answers[index])

    async def _round_trip(
        self,
        client: Client,
        calls: list[tuple[list[str], list[_Arg], asyncio.Future[list[bytes | int]]]],
    ) -> list[list[bytes | int]]:
        if len(calls) == 1:
            keys, args, _ = calls[0]
            return [await self._admit(keys=keys, args=args, client=client)]
        async with client.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                await self._admit(keys=keys, args=args, client=queued(pipe))
            answers: list[list[bytes | int]] = await pipe.execute()
        return answers


# What a call is answered when Redis cannot be asked: allowed, nothing known (fail open).
_ALLOWED: list[bytes | int] = [b"0"]
