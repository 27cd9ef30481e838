"""RedisCommittedKeys: the idempotency fast path, per (workspace, project), in one round trip."""

from __future__ import annotations

import asyncio

import pytest
from tests.integration.redis.helpers import batch
from tests.support.redis import scan_keys

from eventcore.adapters.redis import RedisCommittedKeys, RedisGateway
from eventcore.tenancy import ProjectRef

pytestmark = pytest.mark.integration

TENANT = ProjectRef("ws1", "p1")


async def test_remembered_ids_are_known_and_others_are_not(gateway: RedisGateway) -> None:
    """Exactly the remembered ids of the tenant are reported as known."""
    committed = RedisCommittedKeys(gateway)
    await committed.remember([batch("ws1", "p1", "a", "b"), batch("ws1", "p1", "c")])
    assert await committed.known(TENANT, ["a", "x", "c", "y"]) == {"a", "c"}


async def test_nothing_asked_nothing_known(gateway: RedisGateway) -> None:
    """Asking about no ids answers the empty set, and remembering no batch changes nothing."""
    committed = RedisCommittedKeys(gateway)
    await committed.remember([])
    await committed.remember([batch("ws1", "p1")])
    assert await committed.known(TENANT, []) == set()
    assert await scan_keys(gateway) == []


async def test_tenants_never_see_each_others_ids(gateway: RedisGateway) -> None:
    """The same id committed in one project is unknown to another project and another workspace."""
    committed = RedisCommittedKeys(gateway)
    await committed.remember([batch("ws1", "p1", "shared")])
    assert await committed.known(ProjectRef("ws1", "p2"), ["shared"]) == set()
    assert await committed.known(ProjectRef("ws2", "p1"), ["shared"]) == set()
    assert await committed.known(TENANT, ["shared"]) == {"shared"}


async def test_ids_are_shared_by_every_process(
    gateway: RedisGateway, other_process: RedisGateway
) -> None:
    """An id a worker remembered is known to an API process with its own client."""
    await RedisCommittedKeys(gateway).remember([batch("ws1", "p1", "e1")])
    assert await RedisCommittedKeys(other_process).known(TENANT, ["e1", "e2"]) == {"e1"}


async def test_large_batches_of_many_workspaces_are_remembered(gateway: RedisGateway) -> None:
    """Thousands of events across workspaces are all remembered under their own tenant."""
    committed = RedisCommittedKeys(gateway)
    first = [f"evt-{n}" for n in range(3000)]
    second = [f"evt-{n}" for n in range(2000, 4000)]
    await committed.remember([batch("ws1", "p1", *first), batch("ws2", "p1", *second)])
    assert await committed.known(TENANT, [f"evt-{n}" for n in range(4000)]) == set(first)
    assert await committed.known(ProjectRef("ws2", "p1"), first) == set(second) & set(first)


async def test_long_ids_are_stored_under_a_bounded_key(gateway: RedisGateway) -> None:
    """Ids longer than 64 bytes are digested into the key, and still told apart exactly."""
    committed = RedisCommittedKeys(gateway)
    long_a, long_b = "a" * 127 + "1", "a" * 127 + "2"
    multibyte = "é" * 40  # 80 bytes in UTF-8
    short = "s" * 64
    await committed.remember([batch("ws1", "p1", long_a, multibyte, short)])
    assert await committed.known(TENANT, [long_a, long_b, multibyte, short]) == {
        long_a,
        multibyte,
        short,
    }
    keys = await scan_keys(gateway)
    assert len(keys) == 3
    assert f"{gateway.prefix}:{{ws1}}:ck:p1:{short}" in keys
    assert all(len(key) <= len(f"{gateway.prefix}:{{ws1}}:ck:p1:") + 65 for key in keys)


async def test_remembered_ids_are_forgotten_after_their_ttl(gateway: RedisGateway) -> None:
    """An id is no longer known once its TTL has passed (the store stays the judge)."""
    committed = RedisCommittedKeys(gateway, ttl_seconds=0.3)
    await committed.remember([batch("ws1", "p1", "e1")])
    assert await committed.known(TENANT, ["e1"]) == {"e1"}
    await asyncio.sleep(0.5)
    assert await committed.known(TENANT, ["e1"]) == set()
