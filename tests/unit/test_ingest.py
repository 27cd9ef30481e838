"""The write path: per-event errors, rate limiting, the committed-keys fast path and a failing queue."""

from __future__ import annotations

from typing import Any

import pytest

from eventcore import AuthenticationFailed, EventsRejected, RateLimited, Unavailable
from eventcore.adapters.memory import MemoryCommittedKeys, MemoryQueue
from tests.unit.conftest import App, Tenant
from tests.unit.helpers import body, event


async def test_invalid_events_are_reported_by_index_and_valid_ones_stored(
    app: App, tenant: Tenant
) -> None:
    """Each invalid event is reported at its index while the valid ones go through."""
    receipt = await app.ingestor.ingest(
        tenant.api_key,
        body(
            event("a"),
            {"id": "b"},
            event("c", properties=[1]),
            event("d"),
            event("e", timestamp="2026-01-10T10:00:00"),
        ),
    )
    assert receipt.accepted == 2
    assert receipt.duplicates == 0
    assert [(r.index, r.code) for r in receipt.rejected] == [
        (1, "invalid_event"),
        (2, "invalid_properties"),
        (4, "invalid_event"),
    ]
    assert all(r.message for r in receipt.rejected)
    assert {e.id for e in app.stored(tenant.ref)} == {"a", "d"}


async def test_submit_reports_by_index_like_ingest(app: App, tenant: Tenant) -> None:
    """Submitting mappings and JSON texts mixed reports errors at the same indexes."""
    receipt = await app.ingestor.submit(
        tenant.ref, [b"{", event("a"), b'{"id":"b","type":"t"}', {"type": ""}]
    )
    assert receipt.accepted == 2
    assert [r.index for r in receipt.rejected] == [0, 3]
    assert {e.id for e in app.stored(tenant.ref)} == {"a", "b"}


async def test_all_events_invalid_raises_events_rejected(app: App, tenant: Tenant) -> None:
    """When no event is valid the whole request is refused, listing every event's error."""
    with pytest.raises(EventsRejected) as caught:
        await app.ingestor.ingest(tenant.api_key, body({"id": "a"}, event("b", properties="x")))
    assert caught.value.code == "invalid_events"
    assert [(r.index, r.code) for r in caught.value.rejected] == [
        (0, "invalid_event"),
        (1, "invalid_properties"),
    ]
    assert app.stored(tenant.ref) == []


async def test_rate_limit_refuses_with_retry_after(make_app: Any) -> None:
    """A workspace over its event rate is refused with a Retry-After of at least one second."""
    app: App = make_app(rate=10)
    tenant = await app.signup()
    receipt = await app.ingestor.submit(tenant.ref, [event(str(i)) for i in range(10)])
    assert receipt.accepted == 10
    with pytest.raises(RateLimited) as caught:
        await app.ingestor.submit(tenant.ref, [event("over")])
    assert caught.value.retry_after >= 1
    assert caught.value.code == "rate_limited"
    assert "over" not in {e.id for e in app.stored(tenant.ref)}


async def test_rate_limit_counts_events_not_requests(make_app: Any) -> None:
    """One request of many events uses up the allowance as much as many requests would."""
    app: App = make_app(rate=5)
    tenant = await app.signup()
    await app.ingestor.submit(tenant.ref, [event(str(i)) for i in range(4)])
    with pytest.raises(RateLimited):
        await app.ingestor.submit(tenant.ref, [event("x"), event("y")])
    receipt = await app.ingestor.submit(tenant.ref, [event("z")])
    assert receipt.accepted == 1


async def test_rate_limit_recovers_with_time(make_app: Any) -> None:
    """After waiting the advised time the workspace may send again."""
    app: App = make_app(rate=2)
    tenant = await app.signup()
    await app.ingestor.submit(tenant.ref, [event("a"), event("b")])
    with pytest.raises(RateLimited) as caught:
        await app.ingestor.submit(tenant.ref, [event("c")])
    app.clock.advance(caught.value.retry_after)
    receipt = await app.ingestor.submit(tenant.ref, [event("c")])
    assert receipt.accepted == 1


async def test_rate_limits_are_per_workspace(make_app: Any) -> None:
    """One workspace over its rate does not slow another down."""
    app: App = make_app(rate=3)
    noisy, quiet = await app.signup(), await app.signup()
    await app.ingestor.submit(noisy.ref, [event("1"), event("2"), event("3")])
    with pytest.raises(RateLimited):
        await app.ingestor.submit(noisy.ref, [event("4")])
    receipt = await app.ingestor.submit(quiet.ref, [event("1"), event("2"), event("3")])
    assert receipt.accepted == 3
    assert len(app.stored(quiet.ref)) == 3


async def test_rate_limit_is_shared_by_projects_of_a_workspace(make_app: Any) -> None:
    """The allowance belongs to the workspace: its projects draw from one bucket."""
    app: App = make_app(rate=2)
    tenant = await app.signup()
    _, _, other_key = await app.add_project(tenant.principal, "Mobile")
    await app.ingestor.ingest(tenant.api_key, body(event("1"), event("2")))
    with pytest.raises(RateLimited):
        await app.ingestor.ingest(other_key, body(event("3")))


INVALID = {"id": "no-type"}


async def test_invalid_events_use_the_rate_limit_like_valid_ones(make_app: Any) -> None:
    """Every event sent counts against the rate, valid or not: 4 invalid + 2 valid use up 6."""
    app: App = make_app(rate=10)
    tenant = await app.signup()
    await app.ingestor.submit(tenant.ref, [event("first")])  # 9 of 10 left: the bucket is not full
    receipt = await app.ingestor.submit(tenant.ref, [event("a"), *[INVALID] * 4, event("b")])
    assert (receipt.accepted, len(receipt.rejected)) == (2, 4)

    # 3 left, not the 7 that counting only the valid events would leave.
    with pytest.raises(RateLimited):
        await app.ingestor.submit(tenant.ref, [event(f"four-{i}") for i in range(4)])
    receipt = await app.ingestor.submit(tenant.ref, [event(f"three-{i}") for i in range(3)])
    assert receipt.accepted == 3
    with pytest.raises(RateLimited):
        await app.ingestor.submit(tenant.ref, [event("none-left")])


async def test_the_rate_limit_is_checked_before_validation(make_app: Any) -> None:
    """A request of only invalid events uses the rate up, and over the rate it is refused as such."""
    app: App = make_app(rate=5)
    tenant = await app.signup()
    with pytest.raises(EventsRejected):
        await app.ingestor.submit(tenant.ref, [INVALID] * 5)

    with pytest.raises(RateLimited):
        await app.ingestor.submit(tenant.ref, [event("valid")])
    with pytest.raises(RateLimited):
        await app.ingestor.submit(tenant.ref, [INVALID])
    assert app.stored(tenant.ref) == []


async def test_a_request_larger_than_the_burst_passes_only_when_the_bucket_is_full(
    make_app: Any,
) -> None:
    """Over the burst a request passes on a full bucket only, and its every event leaves a debt."""
    app: App = make_app(rate=5)
    tenant = await app.signup()
    await app.ingestor.submit(tenant.ref, [event("first")])  # 4 of 5 left
    oversized = [event("a"), event("b"), event("c"), INVALID, INVALID, INVALID]  # 6 > burst 5

    with pytest.raises(RateLimited) as caught:
        await app.ingestor.submit(tenant.ref, oversized)
    assert caught.value.retry_after == 1  # the one token missing for a full bucket
    app.clock.advance(caught.value.retry_after)
    receipt = await app.ingestor.submit(tenant.ref, oversized)
    assert (receipt.accepted, len(receipt.rejected)) == (3, 3)

    # All 6 were taken from the 5: one second later the bucket holds 4, not the 7 it would
    # hold (capped at 5) had only the 3 valid events been counted.
    app.clock.advance(1)
    with pytest.raises(RateLimited):
        await app.ingestor.submit(tenant.ref, [event(f"five-{i}") for i in range(5)])
    receipt = await app.ingestor.submit(tenant.ref, [event(f"four-{i}") for i in range(4)])
    assert receipt.accepted == 4


async def test_fast_path_reports_committed_ids_as_duplicates(queued_app: App) -> None:
    """Ids already committed are dropped before the queue and reported as duplicates."""
    app = queued_app
    assert isinstance(app.queue, MemoryQueue)
    tenant = await app.signup()
    first = await app.ingestor.submit(tenant.ref, [event("a"), event("b")])
    assert (first.accepted, first.duplicates) == (2, 0)
    await app.processor.process(app.queue.take())
    again = await app.ingestor.submit(tenant.ref, [event("a"), event("b"), event("c")])
    assert (again.accepted, again.duplicates) == (1, 2)
    (published,) = app.queue.take()
    assert [e.id for e in published.events] == ["c"]


async def test_fast_path_drops_repeats_within_a_batch(queued_app: App) -> None:
    """An id repeated inside one batch is sent on once and the repeats are duplicates."""
    app = queued_app
    assert isinstance(app.queue, MemoryQueue)
    tenant = await app.signup()
    receipt = await app.ingestor.submit(
        tenant.ref, [event("a", "first"), event("b"), event("a", "second"), event("a")]
    )
    assert (receipt.accepted, receipt.duplicates) == (2, 2)
    (published,) = app.queue.take()
    assert [(e.id, e.type) for e in published.events] == [("a", "first"), ("b", "click")]


async def test_fast_path_counts_known_and_repeated_together(app: App, tenant: Tenant) -> None:
    """A batch holding committed ids and repeats reports both as duplicates."""
    await app.ingestor.submit(tenant.ref, [event("a")])
    receipt = await app.ingestor.submit(tenant.ref, [event("a"), event("a"), event("d")])
    assert (receipt.accepted, receipt.duplicates) == (1, 2)
    assert sorted(e.id for e in app.stored(tenant.ref)) == ["a", "d"]


async def test_fast_path_never_hides_another_tenants_ids(app: App) -> None:
    """An id committed by one project is not a duplicate in any other project or workspace."""
    alice, bob = await app.signup(), await app.signup()
    _, _, alice_mobile = await app.add_project(alice.principal, "Mobile")
    await app.ingestor.ingest(alice.api_key, body(event("same")))
    for key in (alice_mobile, bob.api_key):
        receipt = await app.ingestor.ingest(key, body(event("same")))
        assert (receipt.accepted, receipt.duplicates) == (1, 0)


async def test_store_dedups_when_the_fast_path_forgot(make_app: Any) -> None:
    """With the fast path empty, a resend is queued again and the store keeps it once."""
    queue = MemoryQueue()
    app: App = make_app(queue=queue, committed=MemoryCommittedKeys(max_entries=0))
    tenant = await app.signup()
    await app.ingestor.submit(tenant.ref, [event("a")])
    assert (await app.processor.process(queue.take())).inserted == 1
    receipt = await app.ingestor.submit(tenant.ref, [event("a")])
    assert (receipt.accepted, receipt.duplicates) == (1, 0)
    result = await app.processor.process(queue.take())
    assert (result.inserted, result.duplicates) == (0, 1)
    assert len(app.stored(tenant.ref)) == 1


async def test_keys_are_remembered_only_after_commit(queued_app: App) -> None:
    """A batch still in the queue does not make its ids look committed."""
    app = queued_app
    assert isinstance(app.queue, MemoryQueue)
    tenant = await app.signup()
    await app.ingestor.submit(tenant.ref, [event("a")])
    assert await app.committed.known(tenant.ref, ["a"]) == set()
    await app.processor.process(app.queue.take())
    assert await app.committed.known(tenant.ref, ["a"]) == {"a"}


async def test_unavailable_queue_refuses_and_stores_nothing(queued_app: App) -> None:
    """With the queue down, ingest raises Unavailable and nothing of the request is kept."""
    app = queued_app
    assert isinstance(app.queue, MemoryQueue)
    tenant = await app.signup()
    app.queue.available = False
    with pytest.raises(Unavailable) as caught:
        await app.ingestor.ingest(tenant.api_key, body(event("a"), event("b")))
    assert caught.value.retry_after >= 1
    with pytest.raises(Unavailable):
        await app.ingestor.submit(tenant.ref, [event("c")])
    assert app.queue.batches == []
    assert app.memory.events == {}
    assert await app.committed.known(tenant.ref, ["a", "b", "c"]) == set()
    app.queue.available = True
    receipt = await app.ingestor.ingest(tenant.api_key, body(event("a"), event("b")))
    assert (receipt.accepted, receipt.duplicates) == (2, 0)


async def test_one_batch_per_request_carrying_the_tenant(queued_app: App) -> None:
    """A request becomes one queued batch stamped with the key's workspace and project."""
    app = queued_app
    assert isinstance(app.queue, MemoryQueue)
    tenant = await app.signup()
    await app.ingestor.ingest(tenant.api_key, body(event("a"), event("b")))
    (batch,) = app.queue.take()
    assert (batch.workspace_id, batch.project_id) == (tenant.workspace_id, tenant.project_id)
    assert batch.received_at == app.clock.now()
    assert [e.id for e in batch.events] == ["a", "b"]


@pytest.mark.parametrize("api_key", [None, "", "ek_not-a-key"])
async def test_ingest_without_a_valid_key_is_refused(
    app: App, tenant: Tenant, api_key: str | None
) -> None:
    """Ingest without a known key is refused and stores nothing."""
    with pytest.raises(AuthenticationFailed):
        await app.ingestor.ingest(api_key, body(event("a")))
    assert app.memory.events == {}
