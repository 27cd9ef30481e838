"""RedisQueryCache: answers per workspace and query, invalidated by a per-workspace generation."""

from __future__ import annotations

import asyncio

import pytest

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
    """A stored answer comes back byte for byte; an unknown key is a miss."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "counts|p1|hour|0", b'{"total":3}', 60)
    assert await cache.get("ws1", "counts|p1|hour|0") == b'{"total":3}'
    assert await cache.get("ws1", "counts|p1|hour|1") is None


async def test_answers_are_kept_apart_per_workspace(gateway: RedisGateway) -> None:
    """The same query key in two workspaces holds two separate answers."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "q", b"one", 60)
    await cache.put("ws2", "q", b"two", 60)
    assert await cache.get("ws1", "q") == b"one"
    assert await cache.get("ws2", "q") == b"two"
    assert await cache.get("ws3", "q") is None


async def test_a_new_answer_replaces_the_old_one(gateway: RedisGateway) -> None:
    """Putting a key again replaces its answer."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "q", b"old", 60)
    await cache.put("ws1", "q", b"new", 60)
    assert await cache.get("ws1", "q") == b"new"


async def test_answers_expire_after_their_ttl(gateway: RedisGateway) -> None:
    """An answer is a miss once its TTL has passed; a TTL of zero replaces it with nothing."""
    cache = RedisQueryCache(gateway)
    await cache.put("ws1", "short", b"x", 0.3)
    await cache.put("ws1", "gone", b"x", 60)
    await cache.put("ws1", "gone", b"y", 0)
    assert await cache.get("ws1", "short") == b"x"
    assert await cache.get("ws1", "gone") is None
    await asyncio.sleep(0.5)
    assert await cache.get("ws1", "short") is None


async def test_an_answer_filed_under_an_old_generation_is_not_found_after_a_bump(
    gateway: RedisGateway,
) -> None:
    """Keyed by generation as the analytics use case does, a bump makes the old answer unreachable."""
    cache = RedisQueryCache(gateway)
    before = f"counts|p1|{await cache.generation('ws1')}"
    await cache.put("ws1", before, b"stale", 60)
    await cache.bump(["ws1"])
    after = f"counts|p1|{await cache.generation('ws1')}"
    assert after != before
    assert await cache.get("ws1", after) is None


async def test_a_corrupt_generation_reads_as_a_miss(gateway: RedisGateway) -> None:
    """A generation that is not a number gives an answer no cached entry is filed under."""
    cache = RedisQueryCache(gateway)
    await gateway.client.set(gateway.key("ws1", "gen"), b"not a number")
    assert await cache.generation("ws1") < 0
