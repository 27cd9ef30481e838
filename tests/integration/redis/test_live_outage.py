"""The live view with Redis unreachable: a commit's publisher neither raises nor waits, counts
the failure, and a ticket cannot be issued (503) rather than be issued and lost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from tests.integration.redis.helpers import batch
from tests.support.redis import closed_port, redis_gateway

from eventcore.adapters.redis.live import RedisLivePublisher, RedisTicketStore
from eventcore.errors import Unavailable
from eventcore.live import Ticket
from eventcore.tenancy import ProjectRef, Role

pytestmark = pytest.mark.integration

# Not a performance bound: only a guard so that a hang fails instead of stalling the suite.
HANG_GUARD_SECONDS = 5


def failures() -> float:
    value = REGISTRY.get_sample_value("eventcore_live_publish_failures_total")
    return value or 0.0


async def test_publishing_to_an_unreachable_redis_raises_nothing_and_is_counted() -> None:
    """Nobody is taken to watch, and a publish anyway returns, counted as a failure."""
    async with redis_gateway(f"redis://127.0.0.1:{closed_port()}/0", prefix="down") as gateway:
        publisher = RedisLivePublisher(gateway)
        before = failures()
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            assert await publisher.watched({ProjectRef("ws1", "p1")}) == frozenset()
            await publisher.publish([batch("ws1", "p1", "e1")])
        assert failures() == before + 1


async def test_a_ticket_is_not_issued_without_redis() -> None:
    """Putting a ticket into an unreachable Redis is Unavailable; taking one finds none."""
    async with redis_gateway(f"redis://127.0.0.1:{closed_port()}/0", prefix="down") as gateway:
        store = RedisTicketStore(gateway)
        moment = datetime(2026, 3, 1, tzinfo=UTC)
        ticket = Ticket("u", "ws1", Role.VIEWER, "p1", moment, moment)
        with pytest.raises(Unavailable):
            await store.put("h" * 64, ticket, 30)
        assert await store.take("h" * 64) is None
