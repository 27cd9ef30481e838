"""Property: duplicates, redeliveries and client resends store and count each event exactly once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventcore import Granularity, IngestBatch
from eventcore.adapters.memory import MemoryCommittedKeys, MemoryQueue
from eventcore.aggregation import CountKey
from eventcore.idempotency import IdempotencyKey
from tests.unit.conftest import NOW, App, AppFactory, Tenant
from tests.unit.helpers import body, event, floor_to

# Few ids and types so that duplicates, resends and cross-tenant collisions are the common case.
IDS = st.sampled_from(["a", "b", "c", "d", "e", "f", "g"])
TYPES = st.sampled_from(["view", "click", "buy"])
TENANTS = 3  # workspace 0 project 0, workspace 0 project 1, workspace 1 project 0


@dataclass(frozen=True)
class Submit:
    tenant: int
    events: list[tuple[str, str, int]]  # id, type, seconds before now
    over_http: bool


@dataclass(frozen=True)
class Deliver:
    """The worker takes up to ``count`` queued batches and commits them in one transaction."""

    count: int


@dataclass(frozen=True)
class Redeliver:
    """Batches already committed come back (a lost ack, a worker crash) and are processed again."""

    first: int
    count: int


STEPS = st.one_of(
    st.builds(
        Submit,
        st.integers(0, TENANTS - 1),
        st.lists(st.tuples(IDS, TYPES, st.integers(0, 3 * 3600)), min_size=1, max_size=8),
        st.booleans(),
    ),
    st.builds(Deliver, st.integers(1, 4)),
    st.builds(Redeliver, st.integers(0, 50), st.integers(1, 3)),
)


async def _tenants(app: App) -> list[Tenant]:
    first, second = await app.signup(), await app.signup()
    project, key, secret = await app.add_project(first.principal, "Second project")
    sibling = Tenant(first.email, first.principal, first.token, project, key, secret)
    return [first, sibling, second]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    steps=st.lists(STEPS, min_size=1, max_size=25),
    fast_path_size=st.sampled_from([0, 3, 1_000_000]),
)
async def test_every_event_is_stored_and_counted_once(
    make_app: AppFactory, steps: list[Submit | Deliver | Redeliver], fast_path_size: int
) -> None:
    """Duplicates, redeliveries and resends in any order leave each (workspace, project, id) once."""
    queue = MemoryQueue()
    app = make_app(queue=queue, committed=MemoryCommittedKeys(max_entries=fast_path_size))
    tenants = await _tenants(app)
    sent: set[IdempotencyKey] = set()
    committed: list[IngestBatch] = []
    inserted = 0
    # The first committed version of an id is the one kept: later ones change nothing.
    first_committed: dict[IdempotencyKey, tuple[str, datetime]] = {}

    async def deliver(batches: list[IngestBatch]) -> None:
        nonlocal inserted
        for batch in batches:
            for e in batch.events:
                key = IdempotencyKey(batch.workspace_id, batch.project_id, e.id)
                first_committed.setdefault(key, (e.type, e.timestamp))
        if batches:
            result = await app.processor.process(batches)
            inserted += result.inserted
            assert result.inserted + result.duplicates == sum(len(b.events) for b in batches)

    for step in steps:
        if isinstance(step, Submit):
            tenant = tenants[step.tenant]
            events = [
                event(i, t, timestamp=(NOW - timedelta(seconds=ago)).isoformat())
                for i, t, ago in step.events
            ]
            if step.over_http:
                receipt = await app.ingestor.ingest(tenant.api_key, body(*events))
            else:
                receipt = await app.ingestor.submit(tenant.ref, events)
            assert receipt.rejected == []
            assert receipt.accepted + receipt.duplicates == len(events)
            sent |= {
                IdempotencyKey(tenant.workspace_id, tenant.project_id, e[0]) for e in step.events
            }
        elif isinstance(step, Deliver):
            batches = queue.batches[: step.count]
            del queue.batches[: step.count]
            await deliver(batches)
            committed += batches
        elif committed:
            start = step.first % len(committed)
            await deliver(committed[start : start + step.count])
    remaining = queue.take()
    await deliver(remaining)
    committed += remaining
    # Whatever happened, every batch comes round once more at the end.
    await deliver(committed)

    assert set(app.memory.events) == sent
    assert inserted == len(sent)
    assert {k: (e.type, e.timestamp) for k, (e, _, _) in app.memory.events.items()} == (
        first_committed
    )
    stored = [(ws, project, e) for e, ws, project in app.memory.events.values()]
    assert len({e.seq for _, _, e in stored}) == len(stored)

    # The count tables hold exactly one increment per stored event, at both grains.
    expected: Counter[CountKey] = Counter()
    for ws, project, e in stored:
        for grain in (Granularity.MINUTE, Granularity.HOUR):
            expected[CountKey(ws, project, grain, floor_to(e.timestamp, grain.step), e.type)] += 1
    assert +app.memory.counts == expected

    # And the query side agrees, tenant by tenant.
    for tenant in tenants:
        mine = {k for k in sent if k[:2] == (tenant.workspace_id, tenant.project_id)}
        series = await app.analytics.counts(
            tenant.principal,
            tenant.project_id,
            start=NOW - timedelta(hours=4),
            end=NOW + timedelta(minutes=1),
        )
        assert series.total == len(mine)
        listed = await app.analytics.list_events(tenant.principal, tenant.project_id, limit=1000)
        assert sorted(e.id for e in listed.events) == sorted(k.event_id for k in mine)
