"""Fixtures of the RabbitMQ adapter tests: a unique topology per test, deleted afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.support.rabbitmq import TcpProxy, rabbitmq_topology, tcp_proxy

from eventcore.adapters.rabbitmq import QueueNames


@pytest.fixture
async def names() -> AsyncIterator[QueueNames]:
    async with rabbitmq_topology() as chosen:
        yield chosen


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    async with tcp_proxy() as opened:
        yield opened
