"""Crash tests: workers killed at random moments and at exact steps of the commit path lose and
duplicate nothing that the API acknowledged."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventcore.entrypoints import failpoints
from tests.faults.harness import (
    Killer,
    LoadGenerator,
    assert_exactly_once,
    committed_keys_in_redis,
    counts_agree_with_events,
    distributed_stack,
    drain,
    events_body,
    eventually,
    open_tenant,
    queue_depths,
    stored_ids,
    verdict,
    wait_for_exit,
    workers,
)

pytestmark = pytest.mark.integration

LOAD_SECONDS = 12.0


def test_workers_killed_at_random_lose_and_duplicate_nothing(
    tmp_path: Path, fault_report: Callable[..., Any]
) -> None:
    """Every event acknowledged with a 202 is stored and counted exactly once while workers are
    SIGKILLed and restarted at random moments under load."""
    # Reported with the result; FAULTS_SEED=<seed> replays the same kill schedule.
    seed = int(os.environ.get("FAULTS_SEED") or secrets.randbits(32))
    with (
        distributed_stack(tmp_path, worker_batch_events="200") as stack,
        stack.api() as api,
        workers(stack, 2) as pool,
    ):
        tenant = open_tenant(api, "crash")
        load = LoadGenerator(str(api.client.base_url), tenant, run="crash", senders=3)
        with load, Killer(pool, seed=seed, min_gap=0.3, max_gap=1.5):
            load.wait_for_acknowledged(20)
            time.sleep(LOAD_SECONDS)
            load.stop()
        load.check()
        pool.check_running()
        drain_seconds = drain(stack, tenant, load.acknowledged_ids)
        assert pool.terminate() == [0, 0], pool.output()
        result = verdict(stack, api, tenant, load.acknowledged_ids, load.sent_ids)
        fault_report(
            "SIGKILL workers at random under load",
            kills=pool.kills,
            seed=seed,
            **result.summary(),
            drain_seconds=drain_seconds,
        )
        assert pool.kills >= 3, "the killer did not get to kill enough workers"
        assert_exactly_once(stack, result)


BATCHES = 4
EVENTS_PER_BATCH = 10


@pytest.mark.parametrize(
    "point", [failpoints.AFTER_INSERT, failpoints.AFTER_COMMIT, failpoints.BEFORE_ACK]
)
def test_worker_dying_at_a_step_of_the_commit_path_loses_and_duplicates_nothing(
    tmp_path: Path, fault_report: Callable[..., Any], point: str
) -> None:
    """A worker that dies between insert and commit, between commit and the Redis write, or
    between the Redis write and the ack leaves a state from which the next worker stores and
    counts every accepted event exactly once."""
    with (
        distributed_stack(tmp_path, worker_batch_events=str(EVENTS_PER_BATCH)) as stack,
        stack.api() as api,
    ):
        tenant = open_tenant(api, f"fp-{point.replace('_', '-')}")
        batches = [[f"{point}-{b}-{n}" for n in range(EVENTS_PER_BATCH)] for b in range(BATCHES)]
        for ids in batches:
            response = api.client.post(
                "/v1/ingest", json=events_body(ids), headers={"X-API-Key": tenant.api_key}
            )
            assert response.status_code == 202, response.text
        first, second = set(batches[0]), set(batches[1])

        # One batch per group: the worker commits the first and dies on the second.
        with workers(stack, 1, failpoints=f"{point}:2") as dying:
            status = wait_for_exit(dying.slots[0], within=60)
        assert status == 137, dying.output()
        assert f"failpoint {point} reached" in dying.output()

        stored = set(stored_ids(stack.dsn, tenant.project_id))
        remembered = committed_keys_in_redis(stack, tenant)
        if point == failpoints.AFTER_INSERT:
            assert stored == first, "the uncommitted insert is visible"
            assert remembered == first
        elif point == failpoints.AFTER_COMMIT:
            assert stored == first | second
            assert remembered == first, "keys were remembered before they were written"
        else:
            assert stored == first | second
            assert remembered == first | second
        # Every batch not acked is back in the queue for the next worker (the broker requeues
        # a dead consumer's deliveries once it has noticed the connection is gone).
        eventually(
            lambda: queue_depths(stack.names)[stack.names.main] == BATCHES - 1,
            within=10,
            what="the unacknowledged batches back in the queue",
        )

        # The client did not hear back in time either, and resends the second batch.
        resent = api.client.post(
            "/v1/ingest", json=events_body(batches[1]), headers={"X-API-Key": tenant.api_key}
        )
        assert resent.status_code == 202, resent.text
        receipt = resent.json()
        assert receipt["accepted"] + receipt["duplicates"] == EVENTS_PER_BATCH
        if point == failpoints.BEFORE_ACK:
            assert receipt["duplicates"] == EVENTS_PER_BATCH, "the fast path missed them"

        acknowledged = {i for ids in batches for i in ids}
        with workers(stack, 1) as pool:
            drain_seconds = drain(stack, tenant, acknowledged)
            assert pool.terminate() == [0], pool.output()
        result = verdict(stack, api, tenant, acknowledged, acknowledged)
        fault_report(
            f"worker exits at failpoint {point}",
            **result.summary(),
            drain_seconds=drain_seconds,
        )
        assert_exactly_once(stack, result)


def test_a_deletion_under_load_with_workers_killed_sticks_and_loses_nothing_else(
    tmp_path: Path, fault_report: Callable[..., Any]
) -> None:
    """Events deleted by id while ingest runs and workers are SIGKILLed at random (some of them
    stored, some still queued when the deletion is asked for) never come back, resent or
    redelivered; every other acknowledged event is stored exactly once and counted."""
    seed = int(os.environ.get("FAULTS_SEED") or secrets.randbits(32))
    with (
        distributed_stack(tmp_path, worker_batch_events="200") as stack,
        stack.api() as api,
        workers(stack, 2) as pool,
    ):
        tenant = open_tenant(api, "deleting")
        user = {"Authorization": f"Bearer {tenant.token}"}
        load = LoadGenerator(str(api.client.base_url), tenant, run="deleting", senders=3)
        with load, Killer(pool, seed=seed, min_gap=0.3, max_gap=1.5):
            load.wait_for_acknowledged(200)
            # The oldest acknowledged batches (stored by now, most likely) and the newest
            # (still in the queue, most likely).
            acknowledged = load.acknowledged_batches()
            taken = {i for batch in acknowledged[:20] + acknowledged[-20:] for i in batch.ids}
            queued_then = taken - set(stored_ids(stack.dsn, tenant.project_id))
            asked = api.client.post(
                "/v1/deletions",
                json={"project_id": tenant.project_id, "event_ids": sorted(taken)},
                headers=user,
            )
            assert asked.status_code == 202, asked.text
            deletion = asked.json()["id"]
            # The deleted ids sent again while the load and the kills go on.
            resent = api.client.post(
                "/v1/ingest", json=events_body(sorted(taken)), headers={"X-API-Key": tenant.api_key}
            )
            assert resent.status_code in (202, 503), resent.text
            time.sleep(LOAD_SECONDS / 2)
            load.stop()
        load.check()
        pool.check_running()

        def done() -> bool:
            answer = api.client.get(f"/v1/deletions/{deletion}", headers=user)
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] != "failed", answer.text
            return bool(answer.json()["status"] == "done")

        eventually(done, within=60, what="the deletion")
        expected = load.acknowledged_ids - taken
        drain_seconds = drain(stack, tenant, expected)
        # Once more after the drain: a resend of deleted ids stores none of them.
        again = api.client.post(
            "/v1/ingest", json=events_body(sorted(taken)), headers={"X-API-Key": tenant.api_key}
        )
        assert again.status_code == 202, again.text
        drain(stack, tenant, expected)
        assert pool.terminate() == [0, 0], pool.output()
        stored = stored_ids(stack.dsn, tenant.project_id)
        fault_report(
            "a deletion under load, workers SIGKILLed at random",
            kills=pool.kills,
            seed=seed,
            acknowledged=len(load.acknowledged_ids),
            deleted=len(taken),
            deleted_while_queued=len(queued_then),
            stored=len(stored),
            drain_seconds=drain_seconds,
        )
        assert pool.kills >= 2, "the killer did not get to kill enough workers"
        assert not taken & set(stored), "a deleted event came back"
        assert len(stored) == len(set(stored)), "an event was stored twice"
        assert expected <= set(stored), "an acknowledged event that was not deleted is missing"
        # A batch whose answer the stop cut off may be stored too: sent, never deleted.
        assert set(stored) <= load.sent_ids - taken
        assert counts_agree_with_events(stack.dsn)
