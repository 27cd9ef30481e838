"""Query caches with nothing to share: what a process without Redis on PostgreSQL uses."""

from __future__ import annotations

from eventcore.adapters.memory import NoQueryCache


async def test_without_a_shared_cache_every_answer_is_computed_fresh() -> None:
    """NoQueryCache (PostgreSQL without Redis) files nothing and so serves nothing."""
    cache = NoQueryCache()
    generation = await cache.generation("ws")
    await cache.put("ws", "counts", generation, b"{}", 60)
    await cache.bump(["ws"])
    assert generation < 0
    assert await cache.lookup("ws", "counts") == (generation, None)
