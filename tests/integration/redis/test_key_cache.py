"""RedisKeyCache: key records shared by every process, evicted for all at once, expiring by TTL."""

from __future__ import annotations

import asyncio

import pytest
from tests.integration.redis.helpers import api_key

from eventcore.adapters.redis import RedisGateway, RedisKeyCache

pytestmark = pytest.mark.integration


async def test_a_stored_key_is_read_back_whole(gateway: RedisGateway) -> None:
    """A cached record comes back equal to the one stored, revoked or not."""
    cache = RedisKeyCache(gateway, ttl=10)
    live, revoked = api_key("live"), api_key("gone", revoked=True)
    await cache.put(live)
    await cache.put(revoked)
    assert await cache.get(live.key_hash) == live
    assert await cache.get(revoked.key_hash) == revoked


async def test_an_unknown_key_is_a_miss(gateway: RedisGateway) -> None:
    """A hash never stored is a miss."""
    assert await RedisKeyCache(gateway).get("0" * 64) is None


async def test_eviction_in_one_process_is_seen_by_another_at_once(
    gateway: RedisGateway, other_process: RedisGateway
) -> None:
    """A key evicted by one process is a miss for every other process immediately."""
    here, there = RedisKeyCache(gateway, ttl=60), RedisKeyCache(other_process, ttl=60)
    key = api_key()
    await here.put(key)
    assert await there.get(key.key_hash) == key
    await there.evict(key.key_hash)
    assert await here.get(key.key_hash) is None


async def test_a_key_put_again_after_eviction_is_cached_again(gateway: RedisGateway) -> None:
    """Eviction forgets the entry; a later put caches the record again, as in memory."""
    cache = RedisKeyCache(gateway, ttl=10)
    key = api_key()
    await cache.put(key)
    await cache.evict(key.key_hash)
    await cache.evict(key.key_hash)
    await cache.put(key)
    assert await cache.get(key.key_hash) == key


async def test_entries_expire_after_their_ttl(gateway: RedisGateway) -> None:
    """An entry is a miss once its TTL has passed."""
    cache = RedisKeyCache(gateway, ttl=0.3)
    key = api_key()
    await cache.put(key)
    assert await cache.get(key.key_hash) == key
    await asyncio.sleep(0.5)
    assert await cache.get(key.key_hash) is None


async def test_by_default_an_entry_lives_at_most_one_second(gateway: RedisGateway) -> None:
    """With the default TTL a stale record is gone within a second even if no eviction arrives."""
    cache = RedisKeyCache(gateway)
    key = api_key()
    await cache.put(key)
    remaining_ms = await gateway.client.pttl(f"{gateway.prefix}:apikey:{key.key_hash}")
    assert 0 < remaining_ms <= 1000


async def test_a_corrupt_entry_is_a_miss(gateway: RedisGateway) -> None:
    """Bytes that are not a key record read as a miss rather than an error."""
    cache = RedisKeyCache(gateway)
    await gateway.client.set(f"{gateway.prefix}:apikey:abc", b"not msgpack \xc1")
    assert await cache.get("abc") is None


def test_a_ttl_must_be_positive(gateway: RedisGateway) -> None:
    """A zero TTL is refused when the cache is built."""
    with pytest.raises(ValueError, match="ttl"):
        RedisKeyCache(gateway, ttl=0)
