"""Fixtures of the Redis adapter tests: a gateway to the real Redis under a fresh prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.integration.redis.helpers import PATIENT_SECONDS
from tests.support.redis import redis_gateway

from eventcore.adapters.redis import RedisGateway


@pytest.fixture
async def gateway() -> AsyncIterator[RedisGateway]:
    async with redis_gateway(socket_timeout=PATIENT_SECONDS) as opened:
        yield opened


@pytest.fixture
async def other_process(gateway: RedisGateway) -> AsyncIterator[RedisGateway]:
    """A second gateway (its own client and breaker) onto the same keys, as another process has."""
    async with redis_gateway(prefix=gateway.prefix, socket_timeout=PATIENT_SECONDS) as opened:
        yield opened
