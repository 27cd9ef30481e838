"""Server outages under load, each made with a fault proxy between eventcore and the server:
PostgreSQL, Redis and RabbitMQ vanish for a while and come back, and eventcore degrades as
documented and recovers by itself, losing and duplicating nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from eventcore.adapters.postgres import PostgresStore
from eventcore.errors import Unavailable
from eventcore.tenancy import ApiKey, Membership, Project, Role, User, Workspace
from tests.faults.harness import (
    LoadGenerator,
    Stack,
    Tenant,
    api_total,
    assert_exactly_once,
    committed_keys_in_redis,
    distributed_stack,
    drain,
    events_body,
    eventually,
    open_tenant,
    stored_ids,
    verdict,
    workers,
)
from tests.support.postgres import fresh_database
from tests.support.processes import Server
from tests.support.proxy import fault_proxy
from tests.support.redis import REDIS_URL

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 10.0


def test_database_outage_under_load_loses_and_duplicates_nothing(
    tmp_path: Path, fault_report: Callable[..., Any]
) -> None:
    """With PostgreSQL unreachable for 10 s under load the API keeps answering 202, batches wait
    in the queue while workers back off, and once it is back every acknowledged event is stored
    and counted exactly once."""
    with (
        fault_proxy(5432) as proxy,
        distributed_stack(tmp_path, database_port=proxy.port) as stack,
        stack.api() as api,
        workers(stack, 2) as pool,
    ):
        tenant = open_tenant(api, "pg-outage")
        user = {"Authorization": f"Bearer {tenant.token}"}
        unused = api.client.post(
            f"/v1/projects/{tenant.project_id}/api-keys", json={"name": "unused"}, headers=user
        ).json()
        pool.wait_consuming()
        load = LoadGenerator(str(api.client.base_url), tenant, run="pg", senders=3)
        with load:
            load.wait_for_acknowledged(20)
            time.sleep(2)
            proxy.cut()
            cut_at = time.monotonic()
            time.sleep(2)
            stored_early = len(stored_ids(stack.dsn, tenant.project_id))
            # A key this API never read cannot be checked: 503, not 202 and not 401.
            unchecked = api.client.post(
                "/v1/ingest", json=events_body(["never"]), headers={"X-API-Key": unused["key"]}
            )
            time.sleep(OUTAGE_SECONDS - 2)
            stored_late = stored_ids(stack.dsn, tenant.project_id)
            # Acknowledged but not committed: held by the broker (workers ack after commit).
            waiting = len(load.acknowledged_ids - set(stored_late))
            pool.check_running()
            proxy.restore()
            restored_at = time.monotonic()
            commits_resumed = eventually(
                lambda: len(stored_ids(stack.dsn, tenant.project_id)) > len(stored_late),
                within=60,
                what="a commit after the database came back",
            )
            time.sleep(1)
            load.stop()
        load.check()
        during = load.outcomes(cut_at, restored_at)
        drain(stack, tenant, load.acknowledged_ids)
        recovery = time.monotonic() - restored_at
        pool.check_running()
        assert pool.terminate() == [0, 0], pool.output()
        result = verdict(stack, api, tenant, load.acknowledged_ids, load.sent_ids)
        fault_report(
            f"PostgreSQL unreachable {OUTAGE_SECONDS:.0f} s under load",
            **result.summary(),
            answers_during_outage=dict(during),
            waited_in_queue=waiting,
            commits_resumed_after_seconds=commits_resumed,
            drained_after_seconds=recovery,
        )
        assert len(stored_late) == stored_early, "events were committed with the database away"
        assert waiting > 0, "no batch waited in the queue during the outage"
        assert any("rabbitmq.handler_unavailable" in p.output() for p in pool.every), (
            "the workers never backed off"
        )
        assert set(during) == {"202"}, during
        assert_exactly_once(stack, result)
        assert unchecked.status_code == 503, unchecked.text
        assert unchecked.json()["error"]["code"] == "database_unavailable"
        assert "retry-after" in unchecked.headers

        # The keys read during the outage were not trusted beyond it: a revocation works.
        key_id = next(
            key["id"]
            for key in api.client.get(
                f"/v1/projects/{tenant.project_id}/api-keys", headers=user
            ).json()["api_keys"]
            if key["id"] != unused["id"]
        )
        assert api.client.delete(f"/v1/api-keys/{key_id}", headers=user).status_code == 204

        def refused() -> bool:
            answer = api.client.post(
                "/v1/ingest", json=events_body(["late"]), headers={"X-API-Key": tenant.api_key}
            )
            return answer.status_code == 401

        eventually(refused, within=10, what="the revoked key refused")


class Probe:
    """Batches the test sends itself for one tenant, remembering which ones got a 202."""

    def __init__(self, api: Server, tenant: Tenant) -> None:
        self.api = api
        self.tenant = tenant
        self.acknowledged: set[str] = set()
        self.refused: set[str] = set()

    def send(self, ids: list[str]) -> httpx.Response:
        response = self.api.client.post(
            "/v1/ingest", json=events_body(ids), headers={"X-API-Key": self.tenant.api_key}
        )
        (self.acknowledged if response.status_code == 202 else self.refused).update(ids)
        return response

    def flood(self, run: str, batches: int = 3) -> list[int]:
        """Batches of 1000 events at once, far beyond the workspace's rate limit; statuses."""
        return [
            self.send([f"{run}-{b}-{n}" for n in range(1000)]).status_code for b in range(batches)
        ]


def redis_keys(stack: Stack, tenant: Tenant, kind: str) -> list[bytes]:
    """The tenant's keys of one kind (``q`` cached answers, ``ck`` committed ids) in Redis."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        pattern = f"{stack.prefix}:{{{tenant.workspace_id}}}:{kind}:*"
        return list(client.scan_iter(match=pattern))
    finally:
        client.close()


def test_redis_outage_under_load_degrades_and_recovers_without_restarts(
    tmp_path: Path, fault_report: Callable[..., Any]
) -> None:
    """With Redis unreachable under load ingest still answers 202, the rate limit fails open,
    analytics answer exactly (uncached) and resends are still stored once; once Redis is back
    the same processes use it again for rate limiting, the fast path and the answer cache."""
    with (
        fault_proxy(6379) as proxy,
        distributed_stack(
            tmp_path,
            redis_port=proxy.port,
            rate_limit_events_per_second="400",
            rate_limit_burst="800",
        ) as stack,
        stack.api() as api,
        workers(stack, 2) as pool,
    ):
        loaded = open_tenant(api, "redis-load")
        probe = Probe(api, open_tenant(api, "redis-probe"))
        # Its own workspace, with its own rate budget: the probe's is spent by the floods.
        repeat = Probe(api, open_tenant(api, "redis-repeat"))
        pool.wait_consuming()
        load = LoadGenerator(
            str(api.client.base_url), loaded, run="redis", senders=2, batch_events=10, pause=0.1
        )
        with load:
            load.wait_for_acknowledged(10)
            # Redis up: the flooding workspace is held to its rate.
            assert 429 in probe.flood("before")

            proxy.cut()
            cut_at = time.monotonic()
            assert probe.flood("during") == [202, 202, 202], "the rate limit did not fail open"
            drain(stack, probe.tenant, probe.acknowledged)
            # Analytics answer, uncached and exact, with Redis away.
            assert api_total(api, probe.tenant) == len(probe.acknowledged)
            # A resend is not caught by the fast path now; the store still keeps one copy.
            resent = probe.send([f"during-0-{n}" for n in range(1000)])
            assert resent.status_code == 202, resent.text
            assert resent.json() == {"accepted": 1000, "duplicates": 0, "rejected": []}
            assert probe.send(["marker"]).status_code == 202
            drain(stack, probe.tenant, probe.acknowledged)
            assert api_total(api, probe.tenant) == len(probe.acknowledged)
            assert not redis_keys(stack, probe.tenant, "q"), "an answer reached Redis while cut"
            time.sleep(3)
            proxy.restore()
            restored_at = time.monotonic()

            # The same processes use Redis again: the rate limit holds once more, ...
            limit_back = eventually(
                lambda: 429 in probe.flood(f"after-{time.monotonic_ns()}", batches=2),
                within=30,
                what="the rate limit enforced again",
            )
            # ... workers record committed ids there and the API finds them, ...
            # (a batch committed while a worker still waits out its Redis cooldown is not
            # recorded, which the fast path allows: it may forget anything)
            fresh: list[str] = []

            def recorded() -> bool:
                fresh[:] = [f"fresh-{time.monotonic_ns()}-{n}" for n in range(50)]
                assert repeat.send(fresh).status_code == 202
                time.sleep(0.5)
                return set(fresh) <= committed_keys_in_redis(stack, repeat.tenant)

            fast_path_back = eventually(
                recorded, within=30, what="committed ids written to Redis again"
            )
            fast_path_back += limit_back
            again = repeat.send(fresh)
            assert again.json()["duplicates"] == len(fresh), again.text
            # ... and answers are cached there again.
            eventually(
                lambda: bool(api_total(api, probe.tenant) and redis_keys(stack, probe.tenant, "q")),
                within=30,
                what="an analytics answer cached in Redis again",
            )
            time.sleep(1)
            load.stop()
        load.check()
        outcomes_during = load.outcomes(cut_at, restored_at)
        drain(stack, loaded, load.acknowledged_ids)
        drain(stack, probe.tenant, probe.acknowledged)
        drain(stack, repeat.tenant, repeat.acknowledged)
        pool.check_running()
        assert pool.terminate() == [0, 0], pool.output()
        loaded_result = verdict(stack, api, loaded, load.acknowledged_ids, load.sent_ids)
        probe_result = verdict(
            stack, api, probe.tenant, probe.acknowledged, probe.acknowledged | probe.refused
        )
        assert_exactly_once(
            stack, verdict(stack, api, repeat.tenant, repeat.acknowledged, repeat.acknowledged)
        )
        fault_report(
            "Redis unreachable under load",
            **loaded_result.summary(),
            answers_during_outage=dict(outcomes_during),
            resend_stored_once=probe_result.duplicated == 0,
            rate_limit_back_after_seconds=limit_back,
            fast_path_back_after_seconds=fast_path_back,
        )
        assert set(outcomes_during) == {"202"}, outcomes_during
        assert_exactly_once(stack, loaded_result)
        assert_exactly_once(stack, probe_result)
        assert not (probe.refused & set(stored_ids(stack.dsn, probe.tenant.project_id)))


def test_broker_outage_answers_503_and_everything_reconnects_by_itself(
    tmp_path: Path, fault_report: Callable[..., Any]
) -> None:
    """With RabbitMQ unreachable ingest answers 503 with Retry-After and accepts nothing; once it
    is back the same API and worker processes reconnect by themselves and ingest resumes, with
    every acknowledged event stored and counted exactly once."""
    with (
        fault_proxy(5672) as proxy,
        distributed_stack(tmp_path, amqp_port=proxy.port) as stack,
        stack.api() as api,
        workers(stack, 2) as pool,
    ):
        loaded = open_tenant(api, "amqp-load")
        probe = Probe(api, open_tenant(api, "amqp-probe"))
        pool.wait_consuming()
        load = LoadGenerator(str(api.client.base_url), loaded, run="amqp", senders=3)
        with load:
            load.wait_for_acknowledged(20)
            time.sleep(1)
            proxy.cut()
            cut_at = time.monotonic()
            refused = [probe.send([f"refused-{b}-{n}" for n in range(20)]) for b in range(5)]
            time.sleep(OUTAGE_SECONDS / 2)
            proxy.restore()
            restored_at = time.monotonic()
            ingest_back = eventually(
                lambda: probe.send([f"back-{time.monotonic_ns()}"]).status_code == 202,
                within=30,
                what="ingest accepted again",
            )
            time.sleep(1)
            load.stop()
        load.check()
        outcomes_during = load.outcomes(cut_at + 1, restored_at)
        drain(stack, loaded, load.acknowledged_ids)
        drain(stack, probe.tenant, probe.acknowledged)
        drained = time.monotonic() - restored_at
        pool.check_running()
        assert pool.terminate() == [0, 0], pool.output()
        loaded_result = verdict(stack, api, loaded, load.acknowledged_ids, load.sent_ids)
        probe_result = verdict(
            stack, api, probe.tenant, probe.acknowledged, probe.acknowledged | probe.refused
        )
        fault_report(
            "RabbitMQ unreachable under load",
            **loaded_result.summary(),
            answers_during_outage=dict(outcomes_during),
            ingest_back_after_seconds=ingest_back,
            drained_after_seconds=drained,
        )
        for answer in refused:
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "queue_unavailable"
            assert int(answer.headers["retry-after"]) >= 1
        assert outcomes_during, "no request was answered during the outage"
        assert set(outcomes_during) == {"503:queue_unavailable"}, outcomes_during
        # Nothing half-accepted: not one event of a refused batch was stored.
        assert not (probe.refused & set(stored_ids(stack.dsn, probe.tenant.project_id)))
        assert_exactly_once(stack, loaded_result)
        assert_exactly_once(stack, probe_result)
        reconnected = [p.output().count("rabbitmq.consumer_started") for p in pool.slots]
        assert all(count >= 2 for count in reconnected), pool.output()


async def test_the_store_answers_keys_it_has_read_while_the_database_is_away() -> None:
    """With PostgreSQL unreachable the store answers a key it has read as last read, refuses one
    it never read as Unavailable, and never answers a key it revoked itself from memory."""
    with fresh_database() as dsn, fault_proxy(5432) as proxy:
        database = dsn.rsplit("/", 1)[1]
        proxied = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
        now = datetime(2026, 3, 1, tzinfo=UTC)
        keys = [
            ApiKey(f"k{n}", "ws1", "p1", f"key {n}", f"ec_{n}", f"hash-{n}", now) for n in range(3)
        ]
        async with await PostgresStore.open(proxied, max_size=2) as store:
            owner = Membership("ws1", "u1", Role.OWNER, now)
            await store.create_signup(
                User("u1", "u1@example.com", "x", now), Workspace("ws1", "w", now), owner
            )
            await store.create_project(Project("p1", "ws1", "web", now))
            for key in keys:
                await store.create_api_key(key)
            assert await store.find_api_key("hash-0") == keys[0]
            assert await store.find_api_key("hash-1") == keys[1]
            revoked = await store.revoke_api_key("ws1", "k1", now)
            assert revoked is not None

            proxy.cut()
            assert await store.find_api_key("hash-0") == keys[0]
            assert await store.find_api_key("hash-0") == keys[0]
            for unread in ("hash-1", "hash-unknown"):
                with pytest.raises(Unavailable):
                    await store.find_api_key(unread)

            proxy.restore()

            async def fresh_read() -> ApiKey | None:
                try:
                    return await store.find_api_key("hash-1")
                except Unavailable:
                    return None

            for _ in range(150):
                found = await fresh_read()
                if found is not None:
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("the database did not answer again within 30 s")
            assert found.revoked_at is not None
