"""EVENTCORE_REDIS_URL=redis+cluster://… on a real Redis Cluster (3 masters, 1 replica each):
every multi-key script keeps its keys in one slot, every adapter works across the masters, and
a master SIGKILLed under load is survived with the fail-open rules of a single Redis."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from msgspec import Raw
from redis.cluster import RedisCluster as SyncCluster
from redis.commands.core import AsyncScript
from redis.crc import key_slot

from eventcore.adapters.redis import (
    RedisAdmission,
    RedisCommittedKeys,
    RedisGateway,
    RedisQueryCache,
    RedisRateLimiter,
)
from eventcore.adapters.redis.caches import _KNOWN, _MASTER_RUN, _REMEMBER
from eventcore.adapters.redis.live import RedisLivePublisher, RedisLiveWatch, RedisTicketStore
from eventcore.adapters.redis.ratelimit import _ADMIT, _TAKE
from eventcore.events import Event, IngestBatch
from eventcore.live import LiveEvent, LiveHub, Ticket
from eventcore.tenancy import ProjectRef, Role
from tests.faults.harness import open_tenant
from tests.support.postgres import fresh_database
from tests.support.processes import eventually, run_command, serve
from tests.support.redis_cluster import Cluster, redis_cluster

pytestmark = pytest.mark.integration

# The generation counter's bits in a cluster's generation (RedisQueryCache).
COUNTER = 2**63 - 1

# The keys each script reaches: those it is given, and those it builds from them (KEYS[n] ..
# each id of the JSON array it is given). A script missing here fails the test below.
SCRIPT_KEYS: dict[str, Callable[[list[str], list[Any]], list[str]]] = {
    _REMEMBER: lambda keys, args: [keys[0] + i for i in json.loads(args[1])],
    _KNOWN: lambda keys, args: [keys[0] + i for i in json.loads(args[0])],
    _TAKE: lambda keys, args: [],
    _ADMIT: lambda keys, args: [keys[1] + i for i in json.loads(args[4])],
    _MASTER_RUN: lambda keys, args: [],
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with redis_cluster() as started:
        yield started


def gateway_on(cluster: Cluster, prefix: str | None = None) -> Any:
    # Patient: on a busy 2-core machine a command can outlast the production timeout, and the
    # adapter would then rightly fail open instead of doing what is tested.
    return RedisGateway.open(
        cluster.url, prefix=prefix or f"ectest-{secrets.token_hex(4)}", socket_timeout=2.0
    )


def batch_of(ref: ProjectRef, ids: list[str]) -> IngestBatch:
    events = [Event(id=i, type="click", timestamp=_NOW, properties=Raw(b"{}")) for i in ids]
    return IngestBatch(ref.workspace_id, ref.project_id, _NOW, events)


_NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)
names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(workspace=names, project=names, ids=st.lists(names, min_size=1, max_size=5, unique=True))
# A workspace id starting with "}" left its keys' hash tag empty (each key hashed whole).
@example(workspace="}", project="0", ids=["0"])
@example(workspace="a}b{c", project="0", ids=["0"])
def test_every_multi_key_script_keeps_its_keys_in_one_slot(
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    workspace: str,
    project: str,
    ids: list[str],
) -> None:
    """Each script call the adapters make, for any workspace, project and event ids, names and
    builds keys of one slot only (the workspace's hash tag); run on the cluster, each answers
    for real (a cross-slot call would fail, and the adapters would fail open: no known ids, no
    limit)."""
    calls: list[tuple[str, list[str], list[Any]]] = []
    original = AsyncScript.__call__

    def recording(self: AsyncScript, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        calls.append((str(self.script), list(keys or []), list(args or [])))
        return original(self, keys, args, client)

    monkeypatch.setattr(AsyncScript, "__call__", recording)

    async def scenario() -> None:
        gateway = await gateway_on(cluster)
        try:
            committed = RedisCommittedKeys(gateway)
            admission = RedisAdmission(gateway, committed, rate=1000, burst=1000)
            limiter = RedisRateLimiter(gateway, rate=1, burst=1)
            cache = RedisQueryCache(gateway)
            assert set(gateway.scripts) == set(SCRIPT_KEYS), "a script without a key rule"
            ref = ProjectRef(workspace, project)
            assert (await admission.admit(ref, len(ids), ids)).known == frozenset()
            await committed.remember([batch_of(ref, ids)])
            assert await committed.known(ref, ids) == set(ids)
            # Several calls in one turn share a pipeline.
            both = await asyncio.gather(*(admission.admit(ref, 1, ids) for _ in range(2)))
            assert [a.known for a in both] == [frozenset(ids)] * 2
            assert await limiter.acquire(workspace, 1) == 0
            assert await limiter.acquire(workspace, 1) > 0, "the limit did not hold"
            generation, _ = await cache.lookup(workspace, "q")
            await cache.put(workspace, "q", generation, b"answer", 60)
            assert await cache.lookup(workspace, "q") == (generation, b"answer")
            await gateway.drop_workspace(workspace)
        finally:
            await gateway.close()

    asyncio.run(scenario())
    assert {source for source, _, _ in calls} == set(SCRIPT_KEYS)
    for source, keys, args in calls:
        reached = keys + SCRIPT_KEYS[source](keys, args)
        slots = {key_slot(key.encode()) for key in reached}
        assert len(slots) == 1, (reached, slots)


async def test_every_adapter_works_on_every_master(cluster: Cluster) -> None:
    """Workspaces whose slots are on each of the three masters: caches, committed ids, rate
    limits, tickets and a workspace's removal all work on the cluster."""
    gateway = await gateway_on(cluster)
    try:
        committed = RedisCommittedKeys(gateway)
        cache = RedisQueryCache(gateway)
        limiter = RedisRateLimiter(gateway, rate=1, burst=2)
        tickets = RedisTicketStore(gateway)
        by_master: dict[int, str] = {}
        for n in itertools.count():
            workspace = f"ws{n}"
            by_master.setdefault(cluster.master_of(gateway.key(workspace, "gen")).port, workspace)
            if len(by_master) == 3:
                break
        for workspace in by_master.values():
            await cache.bump([workspace])
            generation, _ = await cache.lookup(workspace, "q")
            assert generation & COUNTER == 1  # above it: the master's run
            await cache.put(workspace, "q", generation, b"answer", 60)
            assert await cache.lookup(workspace, "q") == (generation, b"answer")
            ref = ProjectRef(workspace, "p")
            await committed.remember([batch_of(ref, ["a", "b"])])
            assert await committed.known(ref, ["a", "b", "c"]) == {"a", "b"}
            assert await limiter.acquire(workspace, 2) == 0
            assert await limiter.acquire(workspace, 1) > 0
            ticket = Ticket("u", workspace, Role.OWNER, "p", _NOW, _NOW)
            await tickets.put(f"t-{workspace}", ticket, 60)
            assert await tickets.take(f"t-{workspace}") == ticket
            assert await gateway.drop_workspace(workspace) >= 4
            after, answer = await cache.lookup(workspace, "q")
            assert (after & COUNTER, answer) == (0, None)
    finally:
        await gateway.close()


async def test_the_live_view_reaches_subscribers_of_workspaces_on_every_master(
    cluster: Cluster,
) -> None:
    """A worker's publisher and an API's watch on two gateways of the cluster: projects of
    workspaces on each master are known watched (one MGET per slot) and their commits reach
    the API's subscribers."""
    prefix = f"ectest-{secrets.token_hex(4)}"
    worker, api = await gateway_on(cluster, prefix), await gateway_on(cluster, prefix)
    hub = LiveHub()
    watch = RedisLiveWatch(api, hub)
    watch.start()
    try:
        refs: dict[int, ProjectRef] = {}
        for n in itertools.count():
            ref = ProjectRef(f"live{n}", "p")
            refs.setdefault(cluster.master_of(api.key(ref.workspace_id, "live")).port, ref)
            if len(refs) == 3:
                break
        subscriptions = {ref: hub.subscribe(ref) for ref in refs.values()}
        for ref in refs.values():
            await watch.watch(ref)
        publisher = RedisLivePublisher(worker)
        assert await publisher.watched(set(refs.values())) == frozenset(refs.values())
        await publisher.publish([batch_of(ref, [f"e-{ref.workspace_id}"]) for ref in refs.values()])
        for ref, subscription in subscriptions.items():
            received = await subscription.next(10)
            assert isinstance(received, LiveEvent), ref
            assert received.event.id == f"e-{ref.workspace_id}"
    finally:
        await watch.close()
        await worker.close()
        await api.close()


async def test_an_answer_filed_before_a_bump_the_failover_lost_is_not_served(
    cluster: Cluster,
) -> None:
    """Redis replicates asynchronously: a master can acknowledge a generation bump its replica
    never receives, and a failover then brings back the generation from before the commit,
    with the answer filed under it. Made to happen here (the replica cut off, the bump, the
    replica taking over), the answer is not served: the run of the new master is part of the
    generation."""
    gateway = await gateway_on(cluster)
    try:
        cache = RedisQueryCache(gateway)
        workspace = "lost-bump"
        generation_key = gateway.key(workspace, "gen")
        await cache.bump([workspace])
        generation, _ = await cache.lookup(workspace, "q")
        await cache.put(workspace, "q", generation, b"before the commit", 60)
        assert await cache.lookup(workspace, "q") == (generation, b"before the commit")
        master = cluster.master_of(generation_key)
        replica = cluster.replica_of(master)
        with replica.client() as client:
            client.execute_command("READONLY")
            eventually(lambda: client.get(generation_key) == b"1", what="the replica has gen 1")
            # It cannot connect to its master again (a password the master does not have).
            client.config_set("masterauth", "not-the-masters")
        with master.client() as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")
        await cache.bump([workspace])  # acknowledged by the master only
        with master.client() as client:
            assert client.get(generation_key) == b"2"
        with replica.client() as client:
            client.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
            client.config_set("masterauth", "")
        eventually(
            lambda: cluster.master_of(generation_key).port == replica.port,
            what="the replica taking over",
        )
        cluster.wait_healthy()
        with replica.client() as client:
            assert client.get(generation_key) == b"1", "the bump was not lost: no test"
        found = None
        for _ in range(50):  # the client follows the new master after a failure or a MOVED
            found = await cache.lookup(workspace, "q")
            if found[0] >= 0:
                break
            await asyncio.sleep(0.1)
        assert found is not None
        assert found[0] >= 0
        assert found[1] is None, "an answer from before the commit was served"
    finally:
        await gateway.close()


def test_a_master_killed_under_load_is_survived(cluster: Cluster, tmp_path: Path) -> None:
    """`eventcore serve` (events committed before the 202) on the cluster, ingesting without a
    pause, some batches sent twice: the master holding the workspace's slot is SIGKILLed. Every
    request is answered 202 throughout (Redis fails open while its replica takes over), no event
    is stored twice, and once the replica is master the rate limit, the committed ids and the
    analytics cache of the workspace are kept there again."""
    prefix = f"ectest-{secrets.token_hex(4)}"
    with fresh_database(migrated=False) as dsn:
        settings_ = {
            "EVENTCORE_DATABASE_URL": dsn,
            "EVENTCORE_REDIS_URL": cluster.url,
            "EVENTCORE_REDIS_PREFIX": prefix,
            "EVENTCORE_JWT_SECRET": secrets.token_urlsafe(40),
            "EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "1000",
            "EVENTCORE_RATE_LIMIT_BURST": "3000",
            "EVENTCORE_LOG_FORMAT": "json",
        }
        migrated = run_command(["migrate"], workdir=tmp_path, settings=settings_)
        assert migrated.returncode == 0, migrated.stderr
        with serve(tmp_path, tmp_path, "api", settings_) as api:
            tenant = open_tenant(api, "failover")
            workspace, key = tenant.workspace_id, tenant.api_key
            user = {"Authorization": f"Bearer {tenant.token}"}
            project_id = tenant.project_id

            def post(first: int, size: int) -> int:
                events = [
                    {"id": f"e{n}", "type": "click", "timestamp": "2026-03-01T10:00:00Z"}
                    for n in range(first, first + size)
                ]
                response = api.client.post(
                    "/v1/ingest", json={"events": events}, headers={"X-API-Key": key}
                )
                return response.status_code

            def counted() -> int:
                response = api.client.get(
                    "/v1/analytics/counts",
                    params={
                        "project_id": project_id,
                        "granularity": "hour",
                        "start": "2026-03-01T10:00:00Z",
                        "end": "2026-03-01T11:00:00Z",
                    },
                    headers=user,
                )
                assert response.status_code == 200, response.text
                total: int = response.json()["total"]
                return total

            victim = cluster.master_of(f"{prefix}:{{{workspace}}}:rl")
            statuses: list[int] = []
            sent: set[int] = set()
            stop = threading.Event()

            def load() -> None:
                for n in itertools.count():
                    if stop.is_set():
                        return
                    first = n * 20
                    statuses.append(post(first, 20))
                    sent.update(range(first, first + 20))
                    if n % 4 == 3:  # a resend of the batch before: duplicates, never stored twice
                        statuses.append(post(first - 20, 20))
                    time.sleep(0.03)

            writer = threading.Thread(target=load)
            writer.start()
            try:
                time.sleep(1.5)
                victim.kill()
                cluster.wait_failed_over(victim)
                time.sleep(1.5)
            finally:
                stop.set()
                writer.join(30)
            assert len(statuses) > 20
            assert set(statuses) == {202}, sorted(set(statuses))
            assert counted() == len(sent)
            with psycopg.connect(dsn) as owner:
                stored = owner.execute(
                    "SELECT count(*), count(DISTINCT event_id) FROM eventcore.events"
                ).fetchone()
            assert stored == (len(sent), len(sent))

            # On the new master: the workspace's bucket limits again (a burst beyond it is 429),
            # ids committed now are remembered, and an answer computed now is cached.
            new_master = cluster.master_of(f"{prefix}:{{{workspace}}}:rl")
            assert new_master.port != victim.port
            base = 1_000_000
            answers = [post(base + n * 1000, 1000) for n in range(5)]
            assert 429 in answers, answers
            eventually(lambda: post(base + 10_000, 1) == 202, within=10, what="budget back")
            counted()
            with SyncCluster(host="127.0.0.1", port=new_master.port) as direct:
                keys = {k.decode() for k in direct.scan_iter(match=f"{prefix}:{{{workspace}}}:*")}
                remembered = f"{prefix}:{{{workspace}}}:ck:{project_id}:e{base + 10_000}"
                assert remembered in keys
                assert any(":q:" in k for k in keys), keys
                bucket = direct.hget(f"{prefix}:{{{workspace}}}:rl", "at")
                assert bucket is not None
            with redis.Redis(host="127.0.0.1", port=new_master.port) as node:
                assert node.info("replication")["role"] == "master"
