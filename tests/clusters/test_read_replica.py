"""EVENTCORE_DATABASE_READ_URL on a real streaming replica: analytics and listings read from it,
stay exact under real replication lag, never answer older than the read's start (README, Read
replica), and fall back to the primary when the replica lags too far or is stopped."""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from eventcore.adapters.postgres import PostgresStore
from eventcore.aggregation import Granularity, StoredGrain
from eventcore.dimensions import Where
from tests.faults.harness import HOUR, open_tenant
from tests.support.processes import Server, eventually, run_command, serve
from tests.support.redis import REDIS_URL, require_redis
from tests.support.replica import Replicated, replicated

pytestmark = pytest.mark.integration

# Each commit is applied on the replica this long after the primary made it.
APPLY_DELAY_SECONDS = 0.4
# A read waits this long for the replica: far beyond the delay, so the replica serves.
READ_WAIT_SECONDS = 2.0


@dataclass
class Stack:
    servers: Replicated
    api: Server
    token: str
    project_id: str
    ingest_key: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`eventcore serve` on a primary (events committed before the 202, no broker) reading
    through a replica, with the Redis analytics cache; a workspace with a project and a key."""
    asyncio.run(require_redis())
    tmp: Path = tmp_path_factory.mktemp("replica")
    prefix = f"ectest-{secrets.token_hex(4)}"
    with replicated() as servers:
        settings = {
            "EVENTCORE_DATABASE_URL": servers.primary_dsn,
            "EVENTCORE_DATABASE_READ_URL": servers.replica_dsn,
            "EVENTCORE_DATABASE_READ_WAIT_SECONDS": str(READ_WAIT_SECONDS),
            "EVENTCORE_REDIS_URL": REDIS_URL,
            "EVENTCORE_REDIS_PREFIX": prefix,
            "EVENTCORE_JWT_SECRET": secrets.token_urlsafe(40),
            "EVENTCORE_LOG_FORMAT": "json",
        }
        migrated = run_command(["migrate"], workdir=tmp, settings=settings)
        assert migrated.returncode == 0, migrated.stderr
        try:
            with serve(tmp, tmp, "api", settings) as api:
                tenant = open_tenant(api, "replica")
                yield Stack(servers, api, tenant.token, tenant.project_id, tenant.api_key)
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def ingest(stack: Stack, first: int, size: int) -> None:
    events = [
        {"id": f"e{n}", "type": "click", "timestamp": f"2026-03-01T10:{n % 60:02}:00Z"}
        for n in range(first, first + size)
    ]
    response = stack.api.client.post(
        "/v1/ingest", json={"events": events}, headers={"X-API-Key": stack.ingest_key}
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == size, response.text


def counted(stack: Stack) -> int:
    response = stack.api.client.get(
        "/v1/analytics/counts",
        params={"project_id": stack.project_id, "granularity": "minute", **HOUR},
        headers={"Authorization": f"Bearer {stack.token}"},
    )
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def listed(stack: Stack) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"project_id": stack.project_id, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = stack.api.client.get(
            "/v1/events", params=params, headers={"Authorization": f"Bearer {stack.token}"}
        )
        assert response.status_code == 200, response.text
        ids += [event["id"] for event in response.json()["events"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return ids


def served(stack: Stack) -> dict[str, float]:
    """eventcore_replica_reads_total by where the reads went, from the API's /metrics."""
    text = stack.api.client.get("/metrics").text
    found = re.findall(r'^eventcore_replica_reads_total\{served="(\w+)"\} (\S+)$', text, re.M)
    return {where: float(value) for where, value in found}


def test_reads_under_real_lag_come_from_the_replica_and_are_never_older_than_their_start(
    stack: Stack,
) -> None:
    """With every commit applied on the replica 0.4 s late, a writer commits batches (each
    202 is a commit) while reads run: each count read is at least every batch acknowledged
    before it began and at most every batch sent by its end, the replica serves them, and at
    the end the counts and the listing hold every event exactly once."""
    stack.servers.apply_delay(APPLY_DELAY_SECONDS)
    batches, size = 25, 20
    acknowledged = 0
    sent = 0
    lock = threading.Lock()
    failure: list[BaseException] = []

    def write() -> None:
        nonlocal acknowledged, sent
        try:
            for n in range(batches):
                with lock:
                    sent += size
                ingest(stack, n * size, size)
                with lock:
                    acknowledged += size
        except BaseException as exc:
            failure.append(exc)

    before_run = served(stack).get("replica", 0)
    writer = threading.Thread(target=write)
    writer.start()
    answers: list[tuple[int, int, int]] = []
    while writer.is_alive() or not answers:
        with lock:
            floor = acknowledged
        total = counted(stack)
        with lock:
            ceiling = sent
        answers.append((floor, total, ceiling))
    writer.join()
    assert not failure, failure
    stale = [(f, t, c) for f, t, c in answers if not f <= t <= c]
    assert stale == [], "a read answered older than its start (or more than was sent)"
    assert counted(stack) == batches * size
    ids = listed(stack)
    assert len(ids) == len(set(ids)) == batches * size
    assert served(stack).get("replica", 0) > before_run, served(stack)


def test_a_replica_whose_replay_is_paused_leaves_reads_to_the_primary(stack: Stack) -> None:
    """Replay paused: the replica never catches up, so after the wait each read is answered by
    the primary, exact; once replay resumes the replica serves again."""
    stack.servers.apply_delay(0)
    start = counted(stack)
    before = served(stack)
    stack.servers.pause_replay()
    try:
        ingest(stack, 10_000, 7)
        assert counted(stack) == start + 7
        assert len(listed(stack)) == start + 7
        after = served(stack)
        assert after.get("lagging", 0) >= before.get("lagging", 0) + 2, after
    finally:
        stack.servers.resume_replay()
    ingest(stack, 10_100, 3)
    replica_reads = served(stack).get("replica", 0)
    assert counted(stack) == start + 10
    assert served(stack).get("replica", 0) > replica_reads


def test_a_stopped_replica_leaves_reads_to_the_primary_until_it_is_back(stack: Stack) -> None:
    """The replica stopped: reads are answered by the primary, exact, with no error and the
    API ready; started again, it serves reads again within seconds (the breaker's probe)."""
    start = counted(stack)
    before = served(stack).get("unavailable", 0)
    stack.servers.replica.stop("immediate")
    try:
        ingest(stack, 20_000, 5)
        assert counted(stack) == start + 5
        assert len(listed(stack)) == start + 5
        assert served(stack).get("unavailable", 0) >= before + 2
        assert stack.api.client.get("/health/ready").status_code == 200
    finally:
        stack.servers.replica.start()
    replica_reads = served(stack).get("replica", 0)
    ids = itertools.count(30_000)

    def replica_serves() -> bool:
        ingest(stack, next(ids), 1)
        counted(stack)
        return served(stack).get("replica", 0) > replica_reads

    eventually(replica_serves, within=30, what="the restarted replica serving reads")
    assert len(set(listed(stack))) == counted(stack)


async def test_every_read_the_replica_serves_runs_there(stack: Stack) -> None:
    """Each store read routed to the replica (counts, type totals, listing, export, persons,
    funnels' person events, dimensions, filtered events, retention's window) runs on the hot
    standby itself: read-only, as the app role, under the tenant's row-level security."""
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    async with await PostgresStore.open(
        stack.servers.primary_dsn, read_dsn=stack.servers.replica_dsn, read_wait=5
    ) as store:
        replica = store.replica
        assert replica is not None
        ws, p = "ws-reads", "p"
        reads = [
            store.count_series(ws, p, StoredGrain.HOUR, start, end),
            store.event_type_totals(ws, p, start, end),
            store.list_events(ws, p, limit=10),
            store.export_events(ws, p, start, end, limit=10),
            store.user_sketches(ws, p, start, end),
            store.person_events(ws, p, ["click"], start, end),
            store.dimension_tallies(ws, p, "plan", start, end),
            store.dimension_totals(ws, p, "plan", start, end, listed=5),
            store.filtered_events(ws, p, start, end, None, [Where("plan", "pro")]),
            store.user_window(ws, p, start, end, Granularity.HOUR),
        ]
        for read in reads:
            assert await read == []
        assert replica.served == {"replica": len(reads)}
