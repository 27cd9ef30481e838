"""Fixtures that yield each registered implementation of a port (see ``implementations.py``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from eventcore.ports import (
    ApiKeyCache,
    CommittedKeys,
    MembershipCache,
    ProjectCache,
    QueryCache,
    RateLimiter,
    Store,
    TicketStore,
)
from tests.contract.implementations import (
    ADMISSIONS,
    COMMITTED_KEYS,
    DATABASE_STORES,
    INGEST_QUEUES,
    KEY_CACHES,
    LIVE,
    MEMBERSHIP_CACHES,
    PROJECT_CACHES,
    QUERY_CACHES,
    RATE_LIMITERS,
    STORES,
    TICKET_STORES,
    AdmissionKit,
    Implementation,
    LiveKit,
    QueueKit,
    Scratch,
    StoreKit,
    Timed,
)


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    return Scratch(tmp_path, f"eventcore_contract_{uuid.uuid4().hex[:12]}")


@asynccontextmanager
async def opened(request: pytest.FixtureRequest, scratch: Scratch) -> AsyncIterator[Any]:
    """The implementation the test was parametrized with, its known gaps marked xfail."""
    implementation: Implementation[Any] = request.param
    implementation.expect_gaps(request)
    async with implementation.open(scratch) as port:
        yield port


@pytest.fixture(params=[i.param() for i in STORES])
async def store_kit(request: pytest.FixtureRequest, scratch: Scratch) -> AsyncIterator[StoreKit]:
    async with opened(request, scratch) as kit:
        yield kit


@pytest.fixture(params=[i.param() for i in DATABASE_STORES])
async def database_store_kit(
    request: pytest.FixtureRequest, scratch: Scratch
) -> AsyncIterator[StoreKit]:
    """A store in front of a database, with a way to cut it off (``StoreKit.unreachable``)."""
    async with opened(request, scratch) as kit:
        assert kit.unreachable is not None, f"{request.param.name} has no outage to provoke"
        yield kit


@pytest.fixture
def store(store_kit: StoreKit) -> Store:
    return store_kit.store


@pytest.fixture(params=[i.param() for i in KEY_CACHES])
async def key_cache(
    request: pytest.FixtureRequest, scratch: Scratch
) -> AsyncIterator[Timed[ApiKeyCache]]:
    async with opened(request, scratch) as timed:
        yield timed


@pytest.fixture(params=[i.param() for i in COMMITTED_KEYS])
async def committed_keys(
    request: pytest.FixtureRequest, scratch: Scratch
) -> AsyncIterator[CommittedKeys]:
    async with opened(request, scratch) as keys:
        yield keys


@pytest.fixture(params=[i.param() for i in QUERY_CACHES])
async def query_cache(
    request: pytest.FixtureRequest, scratch: Scratch
) -> AsyncIterator[Timed[QueryCache]]:
    async with opened(request, scratch) as timed:
        yield timed


@pytest.fixture(params=[i.param() for i in MEMBERSHIP_CACHES])
async def membership_cache(
    request: pytest.FixtureRequest, scratch: Scratch
) -> AsyncIterator[Timed[MembershipCache]]:
    async with opened(request, scratch) as timed:
        yield timed


@pytest.fixture(params=[i.param() for i in PROJECT_CACHES])
async def project_cache(
    request: pytest.FixtureRequest, scratch: Scratch
) -> AsyncIterator[Timed[ProjectCache]]:
    async with opened(request, scratch) as timed:
        yield timed


@pytest.fixture(params=[i.param() for i in RATE_LIMITERS])
async def rate_limiter(
    request: pytest.FixtureRequest, scratch: Scratch
) -> AsyncIterator[Timed[RateLimiter]]:
    async with opened(request, scratch) as timed:
        yield timed


@pytest.fixture(params=[i.param() for i in INGEST_QUEUES])
async def ingest_queue(request: pytest.FixtureRequest, scratch: Scratch) -> AsyncIterator[QueueKit]:
    async with opened(request, scratch) as kit:
        yield kit


@pytest.fixture(params=[i.param() for i in ADMISSIONS])
async def admission_kit(
    request: pytest.FixtureRequest, scratch: Scratch
) -> AsyncIterator[AdmissionKit]:
    async with opened(request, scratch) as kit:
        yield kit


@pytest.fixture(params=[i.param() for i in LIVE])
async def live(request: pytest.FixtureRequest, scratch: Scratch) -> AsyncIterator[LiveKit]:
    async with opened(request, scratch) as kit:
        yield kit


@pytest.fixture(params=[i.param() for i in TICKET_STORES])
async def tickets(
    request: pytest.FixtureRequest, scratch: Scratch
) -> AsyncIterator[Timed[TicketStore]]:
    async with opened(request, scratch) as kit:
        yield kit
