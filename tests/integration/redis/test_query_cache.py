"""RedisQueryCache: answers per workspace and query, invalidated by a per-workspace generation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.connection import Connection
from tests.support.redis import scan_keys

from eventcore.adapters.redis import RedisGateway, RedisQueryCache

pytestmark = pytest.mark.integration


async def test_a_workspace_starts_at_generation_zero(gateway: RedisGateway) -> None:
    """A workspace never bumped is at generation 0."""
    assert await RedisQueryCache(gateway).generation("ws1") == 0


async def test_each_bump_raises_the_generation_of_its_workspaces_only(
    gateway: RedisGateway,
) -> None:
    """Bumping moves the named workspaces up by one each time and leaves the others alone."""
    cache = RedisQueryCache(gateway)
    seen = [await cache.generation("ws1")]
    for _ in range(3):
        await cache.bump(["ws1"])
        seen.append(await cache.generation("ws1"))
    assert seen == [0, 1, 2, 3]
    assert await cache.generation("ws2") == 0


async def test_one_bump_covers_many_workspaces(gateway: RedisGateway) -> None:
    """A bump naming many workspaces raises each of them by one."""
    cache = RedisQueryCache(gateway)
    await cache.bump(["ws1"])
    await cache.bump({f"ws{n}" for n in range(1, 51)})
    assert await cache.generation("ws1") == 2
    assert [await cache.generation(f"ws{n}") for n in range(2, 51)] == [1] * 49
    await cache.bump([])
    assert await cache.generation("ws1") == 2


async def test_generations_are_shared_by_every_process(
    gateway: RedisGateway, other_process: RedisGateway
) -> None:
    """A bump by a worker is the generation an API process reads."""
    await RedisQueryCache(gateway).bump(["ws1"])
    assert await RedisQueryCache(other_process).generation("ws1") == 1


async def test_an_answer_is_read_back_and_a_missing_one_is_none(gateway: RedisGateway) -> None:
    """A stored answer comes back byte for byte with its generation; an unknown key is a miss."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "counts|p1|hour", 0, b'{"total":3}', 60)
    assert await cache.lookup("ws1", "counts|p1|hour") == (0, b'{"total":3}')
    assert await cache.lookup("ws1", "counts|p1|day") == (0, None)


async def test_answers_are_kept_apart_per_workspace(gateway: RedisGateway) -> None:
    """The same query key in two workspaces holds two separate answers."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "q", 0, b"one", 60)
    await cache.put("ws2", "q", 0, b"two", 60)
    assert await cache.lookup("ws1", "q") == (0, b"one")
    assert await cache.lookup("ws2", "q") == (0, b"two")
    assert await cache.lookup("ws3", "q") == (0, None)


async def test_answers_expire_after_their_ttl(gateway: RedisGateway) -> None:
    """An answer is a miss once its TTL has passed; a TTL of zero replaces it with nothing."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "short", 0, b"x", 0.3)
    await cache.put("ws1", "gone", 0, b"x", 60)
    await cache.put("ws1", "gone", 0, b"y", 0)
    assert await cache.lookup("ws1", "short") == (0, b"x")
    assert await cache.lookup("ws1", "gone") == (0, None)
    await asyncio.sleep(0.5)
    assert await cache.lookup("ws1", "short") == (0, None)


async def test_a_hit_is_one_round_trip_to_redis(
    gateway: RedisGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup reads the generation and the answer filed under it in one round trip: one write
    to the connection, with both commands."""
    cache = RedisQueryCache(gateway)
    await cache.bump(["ws1"])
    await cache.put("ws1", "q", 1, b"answer", 60)
    sent: list[int] = []
    send = Connection.send_packed_command

    async def counted(self: Connection, command: Any, check_health: bool = True) -> None:
        sent.append(len(command) if isinstance(command, list) else 1)
        await send(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    found = await cache.lookup("ws1", "q")

    assert found == (1, b"answer")
    assert len(sent) == 1


async def test_each_query_keeps_one_answer_under_the_workspace_hash_tag(
    gateway: RedisGateway,
) -> None:
    """A query's answer is one key of the workspace (one cluster slot with its generation)
    holding the generation it was filed under; a later put replaces it, of any generation."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "q", 0, b"first", 60)
    await cache.bump(["ws1"])
    await cache.put("ws1", "q", 1, b"second", 60)

    keys = await scan_keys(gateway)
    assert len(keys) == 2
    (answer,) = [key for key in keys if ":q:" in key]
    assert answer.startswith(f"{gateway.prefix}:{{ws1}}:q:")
    assert await gateway.client.get(answer) == b"1:second"
    assert 0 < await gateway.client.pttl(answer) <= 60_000


async def test_an_answer_of_another_generation_is_not_served(gateway: RedisGateway) -> None:
    """The answer kept for a query is served only while its generation is the workspace's."""
    cache = RedisQueryCache(gateway)
    await cache.bump(["ws1"])
    await cache.put("ws1", "q", 0, b"older", 60)
    assert await cache.lookup("ws1", "q") == (1, None)
    await cache.put("ws1", "q", 2, b"newer", 60)
    assert await cache.lookup("ws1", "q") == (1, None)


async def test_nothing_is_filed_under_a_negative_generation(gateway: RedisGateway) -> None:
    """A generation read while Redis could not be trusted files no answer (nothing reads it)."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "q", -5, b"answer", 60)
    assert await scan_keys(gateway) == []


async def test_a_corrupt_generation_reads_as_a_miss(gateway: RedisGateway) -> None:
    """A generation that is not a number gives a generation no answer is filed under, and a miss
    even if a key happens to end with that text."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "q", 0, b"answer", 60)
    await gateway.client.set(gateway.key("ws1", "gen"), b"not a number")
    assert await cache.generation("ws1") < 0
    generation, hit = await cache.lookup("ws1", "q")
    assert generation < 0
    assert hit is None
