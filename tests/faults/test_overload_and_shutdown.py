"""Overload and stopping: a full queue refuses with 503 and loses nothing it accepted; SIGTERM
stops the API and the workers cleanly under load, answering or refusing every request and
leaving no batch half-done."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    LoadGenerator,
    assert_exactly_once,
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
from tests.support.processes import STOP_TIMEOUT_SECONDS, Process

pytestmark = pytest.mark.integration

QUEUE_LENGTH = 5


def test_full_queue_answers_503_and_loses_nothing_it_accepted(
    tmp_path: Path, fault_report: Callable[..., Any]
) -> None:
    """With the queue at its maximum length ingest answers 503 with Retry-After and stores none
    of those events; every batch accepted before is committed once workers start."""
    with (
        distributed_stack(tmp_path, queue_max_length=str(QUEUE_LENGTH)) as stack,
        stack.api() as api,
    ):
        tenant = open_tenant(api, "full")
        answers = []
        for number in range(QUEUE_LENGTH + 4):
            ids = [f"full-{number}-{n}" for n in range(10)]
            response = api.client.post(
                "/v1/ingest", json=events_body(ids), headers={"X-API-Key": tenant.api_key}
            )
            answers.append((ids, response))
        statuses = [response.status_code for _, response in answers]
        # A quorum queue checks its length before it enqueues, so it may take one message
        # beyond it; every 202 is a message it holds, and after the first 503 all are 503.
        held = statuses.count(202)
        assert QUEUE_LENGTH <= held <= QUEUE_LENGTH + 1, statuses
        assert statuses == [202] * held + [503] * (len(statuses) - held)
        for _, refused in answers[held:]:
            assert refused.json()["error"]["code"] == "queue_full"
            assert int(refused.headers["retry-after"]) >= 1
        assert queue_depths(stack.names)[stack.names.main] == held

        accepted = {i for ids, response in answers if response.status_code == 202 for i in ids}
        refused_ids = {i for ids, r in answers if r.status_code != 202 for i in ids}
        with workers(stack, 1) as pool:
            drained = drain(stack, tenant, accepted)
            # Room again: the refused batches, sent again, are accepted now.
            for ids, _ in answers[held:]:
                again = api.client.post(
                    "/v1/ingest", json=events_body(ids), headers={"X-API-Key": tenant.api_key}
                )
                assert again.status_code == 202, again.text
            resent_stored = drain(stack, tenant, accepted | refused_ids)
            assert pool.terminate() == [0], pool.output()
        result = verdict(stack, api, tenant, accepted | refused_ids, accepted | refused_ids)
        fault_report(
            f"queue full (x-max-length {QUEUE_LENGTH}), no workers",
            **result.summary(),
            answers=" ".join(str(s) for s in statuses),
            drained_after_seconds=drained + resent_stored,
        )
        assert_exactly_once(stack, result)


def committed_groups(process: Process) -> int:
    """How many groups the worker has committed so far, by its log."""
    process.check_running()
    return process.output().count('"worker.batch_committed"')


def wait_until_in_flight(load: LoadGenerator, worker: Process | None = None) -> None:
    """Until the API has acknowledged more batches than it had (and, given ``worker``, that
    worker has committed more groups than it had): the load is demonstrably flowing, so a
    signal sent now lands while it runs."""
    acknowledged = len(load.acknowledged_batches())
    commits = committed_groups(worker) if worker is not None else 0

    def flowing() -> bool:
        if worker is not None and committed_groups(worker) <= commits:
            return False
        return len(load.acknowledged_batches()) > acknowledged

    eventually(flowing, within=60, what="load flowing through the API and the worker")


def test_sigterm_under_load_stops_api_and_workers_cleanly(
    tmp_path: Path, fault_report: Callable[..., Any]
) -> None:
    """SIGTERM under load stops a worker with status 0 leaving every batch committed or queued
    (never half-done), and stops the API with status 0 after answering what it accepted: every
    202 is stored, and no request left unanswered was stored."""
    with distributed_stack(tmp_path) as stack, workers(stack, 2) as pool:
        with stack.api() as api:
            tenant = open_tenant(api, "sigterm")
        # A new API process for the load, so that it is the one stopped.
        with stack.api("api-stopping") as stopping:
            pool.wait_consuming()
            # One connection per request: a refused or reset connection then belongs to one
            # request only (with keep-alive, a request on an idle connection the server just
            # closed fails without having reached it, which says nothing about shutdown). The
            # client waits far longer than the API may take to stop, so that no request the API
            # answered is given up on by a client of a slow machine before its answer came.
            load = LoadGenerator(
                str(stopping.client.base_url),
                tenant,
                run="term",
                senders=4,
                resend=False,
                keepalive=False,
                timeout=4 * STOP_TIMEOUT_SECONDS,
            )
            with load:
                load.wait_for_acknowledged(20)
                statuses = []
                for slot in range(2):
                    process = pool.slots[slot]
                    wait_until_in_flight(load, process)
                    process.process.send_signal(signal.SIGTERM)
                    # An impatient operator sends it twice.
                    time.sleep(0.05)
                    process.process.send_signal(signal.SIGTERM)
                    statuses.append(wait_for_exit(process, STOP_TIMEOUT_SECONDS))
                    # Whatever it was doing is committed whole or not at all.
                    assert counts_agree_with_events(stack.dsn)
                    pool.kill_and_restart(slot)
                wait_until_in_flight(load)
                stopping.process.send_signal(signal.SIGTERM)
                terminated_at = time.monotonic()
                api_status = wait_for_exit(stopping, STOP_TIMEOUT_SECONDS)
                # The load goes on until it meets the closed listener.
                eventually(
                    lambda: load.outcomes(terminated_at)["ConnectError"] > 0,
                    within=60,
                    what="a request refused by the stopped API",
                )
                load.stop(settle_within=0)
        load.check()
        assert statuses == [0, 0], pool.output()
        assert api_status == 0, stopping.output()
        drained = drain(stack, tenant, load.acknowledged_ids)
        assert pool.terminate() == [0, 0], pool.output()

        with stack.api("api-after") as api:
            result = verdict(stack, api, tenant, load.acknowledged_ids, load.sent_ids)
        stored = set(stored_ids(stack.dsn, tenant.project_id))
        refused = [
            b for b in load.batches if b.attempts and b.attempts[-1].outcome == "ConnectError"
        ]
        # Every other batch without a 202, including one the load stopped before sending.
        unanswered = [b for b in load.batches if not b.acknowledged and b not in refused]
        after = load.outcomes(terminated_at)
        fault_report(
            "SIGTERM twice to each worker, then SIGTERM to the API, under load",
            **result.summary(),
            answers_after_api_sigterm=dict(after),
            drained_after_seconds=drained,
        )
        assert_exactly_once(stack, result)
        assert refused, "no request met the closed listener: the API stopped too late to tell"
        stored_unanswered = [b for b in unanswered if set(b.ids) & stored]
        assert not stored_unanswered, (
            f"{len(stored_unanswered)} batches were stored without a 202: "
            f"{[b.attempts for b in stored_unanswered][:5]}"
        )
        assert not ({i for b in refused for i in b.ids} & stored), (
            "a refused connection's batch was stored"
        )


def test_a_worker_sent_sigterm_again_and_again_still_stops_with_status_0(tmp_path: Path) -> None:
    """SIGTERM repeated every few milliseconds from the first until the worker is gone (through
    the group in flight, the closing of its connections and the interpreter's own exit) stops
    it with status 0: no moment of the stop lets a repeated signal kill it."""
    with distributed_stack(tmp_path) as stack, workers(stack, 1) as pool:
        pool.wait_consuming()
        worker = pool.slots[0]
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        sent = 0
        while worker.process.poll() is None and time.monotonic() < deadline:
            try:
                worker.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                break
            sent += 1
            time.sleep(0.002)
        status = wait_for_exit(worker, STOP_TIMEOUT_SECONDS)
        assert sent > 1, "the worker was gone before a second SIGTERM"
        assert status == 0, worker.output()
