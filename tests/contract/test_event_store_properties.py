"""EventStore properties: any history of appends and repairs leaves a store equal to the model,
and its count tables equal to the core's counting rule over the events it actually inserted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import Raw

from eventcore.aggregation import StoredGrain, count_increments
from eventcore.events import Event, IngestBatch
from tests.contract.implementations import STORES, Implementation, Scratch, StoreKit
from tests.contract.support import T0, Model, assert_matches_model, count_rows

WORKSPACES = ("ws-a", "ws-b")
PROJECTS = ("prj-1", "prj-2")
TYPES = ("view", "click", "buy")
IDS = tuple("abcdefghij")
# Bucket edges and shared instants: ties in (timestamp) and events either side of a boundary.
EDGES = (
    T0,
    T0 + timedelta(microseconds=1),
    T0 + timedelta(minutes=1) - timedelta(microseconds=1),
    T0 + timedelta(hours=1) - timedelta(microseconds=1),
    T0 + timedelta(hours=1),
    T0 + timedelta(hours=2, seconds=30),
)

moments = st.one_of(
    st.sampled_from(EDGES),
    st.integers(0, 3 * 3600 * 1_000_000 - 1).map(lambda us: T0 + timedelta(microseconds=us)),
)
events = st.builds(
    Event,
    id=st.sampled_from(IDS),
    type=st.sampled_from(TYPES),
    timestamp=moments,
    # Compact or spaced text: a store may normalise the text, never the value.
    properties=st.builds(
        lambda n, text: Raw(text % n),
        st.integers(0, 99),
        st.sampled_from((b'{"n":%d}', b'{ "n" : %d , "ok" : true }')),
    ),
)
batches = st.builds(
    IngestBatch,
    workspace_id=st.sampled_from(WORKSPACES),
    project_id=st.sampled_from(PROJECTS),
    received_at=moments,
    events=st.lists(events, max_size=6),
)


@dataclass(frozen=True)
class Append:
    batches: list[IngestBatch]


@dataclass(frozen=True)
class Rebuild:
    workspace_id: str | None


@st.composite
def histories(draw: st.DrawFn) -> list[Append | Rebuild]:
    """Appends drawn from a small pool of batches, so redeliveries and resends are common."""
    pool = draw(st.lists(batches, min_size=1, max_size=5))
    appends = st.lists(st.sampled_from(pool), min_size=1, max_size=4).map(Append)
    rebuilds = st.sampled_from((None, *WORKSPACES)).map(Rebuild)
    return draw(st.lists(st.one_of(appends, rebuilds), min_size=1, max_size=6))


def windows() -> st.SearchStrategy[tuple[datetime, datetime]]:
    return st.tuples(moments, moments).map(lambda pair: (min(pair), max(pair)))


# Every example opens a fresh store; on a real server that costs a pool and a truncation, so
# the servers run fewer examples than the in-process stores.
IN_PROCESS = [i.param() for i in STORES if not i.needs_server]
ON_SERVERS = [i.param() for i in STORES if i.needs_server]


@pytest.mark.parametrize("implementation", IN_PROCESS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), window=windows())
async def test_any_history_leaves_the_store_equal_to_the_model(
    implementation: Implementation[StoreKit],
    tmp_path_factory: pytest.TempPathFactory,
    history: list[Append | Rebuild],
    window: tuple[datetime, datetime],
) -> None:
    """Every append and rebuild reports what the model reports, every query answers what it
    answers, and the count tables hold exactly ``count_increments`` of the inserted events."""
    await check_history(implementation, tmp_path_factory, history, window)


@pytest.mark.parametrize("implementation", ON_SERVERS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), window=windows())
async def test_any_history_leaves_a_server_store_equal_to_the_model(
    implementation: Implementation[StoreKit],
    tmp_path_factory: pytest.TempPathFactory,
    history: list[Append | Rebuild],
    window: tuple[datetime, datetime],
) -> None:
    """On a database server too, every append and every query answers what the model does."""
    await check_history(implementation, tmp_path_factory, history, window)


async def check_history(
    implementation: Implementation[StoreKit],
    tmp_path_factory: pytest.TempPathFactory,
    history: list[Append | Rebuild],
    window: tuple[datetime, datetime],
) -> None:
    """Replay ``history`` on a fresh store and on the model; the store must answer as the model,
    and its count rows must be the core's increments of exactly the events the model kept (the
    first of each id: redeliveries and resends add nothing)."""
    scratch = Scratch(tmp_path_factory.mktemp("store"), f"prop_{uuid.uuid4().hex[:12]}")
    model = Model()
    async with implementation.open(scratch) as kit:
        store = kit.store
        for step in history:
            if isinstance(step, Append):
                assert await store.append(step.batches) == model.append(step.batches)
            else:
                assert await store.rebuild_counts(step.workspace_id) == model.recount(
                    step.workspace_id
                )

        tenants = [(ws, prj) for ws in WORKSPACES for prj in PROJECTS]
        assert await count_rows(store, tenants) == count_increments(model.inserted())
        await assert_matches_model(store, model, tenants, TYPES, page_size=2)
        start, end = window
        for ws, prj in tenants:
            for grain in StoredGrain:
                assert await store.count_series(ws, prj, grain, start, end) == model.series(
                    ws, prj, grain, start, end
                )
            assert await store.event_type_totals(ws, prj, start, end) == model.totals(
                ws, prj, start, end
            )
