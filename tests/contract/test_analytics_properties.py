"""Product analytics properties, over every store: for any history of appends with persons,
dimension values, duplicates and redeliveries (and rebuilds), unique users equal an exact
recount (they are few: the sketches are exact and say so), breakdowns equal a brute-force
recount with values + other = every event (read as an API reads them, the same answer as from
every tally), funnels equal the brute-force reference, and nothing of one workspace appears in
another's answers. The stores give the same answers as one
another because each gives the brute-force one."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import Raw

from eventcore.aggregation import Granularity, bucket_start
from eventcore.dimensions import Kind, breakdown_of_tallies, breakdown_of_totals, value_at
from eventcore.events import Event, IngestBatch
from eventcore.funnels import PersonEvent, StepRule, funnel_counts
from eventcore.persons import user_series, window_user_series
from eventcore.ports import Store
from eventcore.tenancy import Project, Workspace
from tests.contract.implementations import STORES, Implementation, Scratch, StoreKit
from tests.contract.support import T0, Model, membership, user
from tests.unit.test_funnels import brute_force

# Two tenants, each with a project that declares both dimensions.
TENANTS = (("ws-a", "prj-a"), ("ws-b", "prj-b"))
PATHS = ("plan", "context.page.path")
TYPES = ("view", "signup", "buy")
IDS = tuple("abcdefghijkl")
START, END = T0 - timedelta(days=1), T0 + timedelta(days=4)

plans = st.sampled_from((b'"pro"', b'"free"', b"null", b"7", b"true", None))
pages = st.sampled_from((b'"/"', b'"/pricing"', b"{}", None))


def _properties(plan: bytes | None, page: bytes | None, spaced: bool) -> Raw:
    fields = []
    if plan is not None:
        fields.append(b'"plan":' + plan)
    if page is not None:
        fields.append(b'"context":{"page":{"path":' + page + b"}}")
    glue = b" , " if spaced else b","
    return Raw(b"{" + glue.join(fields) + b"}")


events = st.builds(
    Event,
    id=st.sampled_from(IDS),
    type=st.sampled_from(TYPES),
    timestamp=st.integers(0, 3 * 24 * 60 - 1).map(lambda m: T0 + timedelta(minutes=m)),
    properties=st.builds(_properties, plans, pages, st.booleans()),
    user_id=st.sampled_from((None, "ada", "bob", "cy", "dee")),
    anonymous_id=st.sampled_from((None, "anon-1", "anon-2")),
)
batches = st.builds(
    lambda tenant, received, evs: IngestBatch(tenant[0], tenant[1], received, evs),
    st.sampled_from(TENANTS),
    st.just(T0),
    st.lists(events, max_size=8),
)


@dataclass(frozen=True)
class Append:
    batches: list[IngestBatch]


@dataclass(frozen=True)
class Rebuild:
    workspace_id: str | None


@st.composite
def histories(draw: st.DrawFn) -> list[Append | Rebuild]:
    """Appends from a small pool of batches (so resends and redeliveries are common), and
    rebuilds between them."""
    pool = draw(st.lists(batches, min_size=1, max_size=5))
    appends = st.lists(st.sampled_from(pool), min_size=1, max_size=3).map(Append)
    rebuilds = st.sampled_from((None, "ws-a", "ws-b")).map(Rebuild)
    return draw(st.lists(st.one_of(appends, appends, rebuilds), min_size=1, max_size=6))


funnel_steps = st.lists(st.sampled_from(TYPES), min_size=2, max_size=4)
funnel_windows = st.integers(0, 3 * 24 * 60).map(lambda m: timedelta(minutes=m))


async def open_tenants(store: Store) -> None:
    for ws, prj in TENANTS:
        owner = user()
        await store.create_signup(owner, Workspace(ws, "W", T0), membership(ws, owner.id))
        await store.create_project(Project(prj, ws, "P", T0))
        assert await store.set_dimensions(ws, prj, PATHS) is not None


def exact_value(event: Event, path: str) -> tuple[Kind, str]:
    value = value_at(msgspec.json.decode(bytes(event.properties)), path)
    return (Kind.NONE, "") if value is None else (Kind.VALUE, value)


async def check(
    implementation: Implementation[StoreKit],
    tmp_path_factory: pytest.TempPathFactory,
    history: list[Append | Rebuild],
    steps: list[str],
    window: timedelta,
) -> None:
    scratch = Scratch(tmp_path_factory.mktemp("store"), f"prop_{uuid.uuid4().hex[:12]}")
    model = Model()
    async with implementation.open(scratch) as kit:
        store = kit.store
        await open_tenants(store)
        for step in history:
            if isinstance(step, Append):
                assert await store.append(step.batches) == model.append(step.batches)
            else:
                await store.rebuild_counts(step.workspace_id)

        for ws, prj in TENANTS:
            mine = [
                m.event
                for m in model.stored.values()
                if (m.workspace_id, m.project_id) == (ws, prj)
            ]

            # Unique users, of every type and of each, per hour and per day.
            for event_type in (None, *TYPES):
                typed = [e for e in mine if event_type in (None, e.type)]
                hours = await store.user_sketches(ws, prj, START, END, event_type)
                for granularity in (Granularity.HOUR, Granularity.DAY):
                    # The answer the use case gives, from the whole days' sketches, is the one
                    # of every hour's sketch merged (few persons: exact).
                    rows = await store.user_window(ws, prj, START, END, granularity, event_type)
                    answer = window_user_series(prj, granularity, START, END, rows)
                    assert answer == user_series(prj, granularity, START, END, hours)
                    buckets: dict[datetime, set[str]] = {}
                    for e in typed:
                        if e.person is not None:
                            buckets.setdefault(bucket_start(e.timestamp, granularity), set()).add(
                                e.person
                            )
                    assert answer.relative_error == 0
                    assert answer.total == len({e.person for e in typed if e.person})
                    assert [(p.bucket, p.users) for p in answer.series] == [
                        (b, len(buckets[b])) for b in sorted(buckets)
                    ]

            # Breakdowns: each value's events and persons, values + other = every event.
            for path in PATHS:
                for event_type in (None, "view"):
                    typed = [e for e in mine if event_type in (None, e.type)]
                    tallies = await store.dimension_tallies(ws, prj, path, START, END, event_type)
                    # The read an API makes (totals, the listed values' sketches) gives exactly
                    # the answer of every tally, whatever the limit.
                    for limit in (1, 2, 100):
                        totals = await store.dimension_totals(
                            ws, prj, path, START, END, event_type, listed=limit
                        )
                        answer = breakdown_of_totals(prj, path, START, END, totals, limit)
                        assert answer == breakdown_of_tallies(prj, path, START, END, tallies, limit)
                    counts = Counter(exact_value(e, path) for e in typed)
                    persons: dict[tuple[Kind, str], set[str]] = {}
                    for e in typed:
                        if e.person is not None:
                            persons.setdefault(exact_value(e, path), set()).add(e.person)
                    got = {
                        (Kind.NONE, "") if v.value is None else (Kind.VALUE, v.value): (
                            v.count,
                            v.users,
                        )
                        for v in answer.values
                    }
                    assert got == {
                        key: (count, len(persons.get(key, ()))) for key, count in counts.items()
                    }
                    assert sum(v.count for v in answer.values) + answer.other.count == len(typed)

            # Funnels: the store's events of the steps are the model's, and the funnel over
            # them is the brute-force one over the model's, person by person.
            rows = await store.person_events(ws, prj, sorted(set(steps)), START, END + window)
            kept = sorted(
                (
                    m
                    for m in model.stored.values()
                    if (m.workspace_id, m.project_id) == (ws, prj)
                    and m.event.person is not None
                    and m.event.type in steps
                ),
                key=lambda m: (m.event.person or "", m.event.timestamp, m.order),
            )
            assert [(r.person, r.timestamp, r.type) for r in rows] == [
                (m.event.person, m.event.timestamp, m.event.type) for m in kept
            ]
            result = funnel_counts(rows, [StepRule(s) for s in steps], window, START, END)
            progress = [
                brute_force(
                    [
                        PersonEvent(person, m.event.timestamp, m.order, m.event.type)
                        for m in kept
                        if m.event.person == person
                    ],
                    steps,
                    window,
                    START,
                    END,
                )
                for person in {m.event.person for m in kept if m.event.person is not None}
            ]
            assert [s.users for s in result.steps] == [
                sum(1 for done in progress if done > i) for i in range(len(steps))
            ]


IN_PROCESS = [i.param() for i in STORES if not i.needs_server]
ON_SERVERS = [i.param() for i in STORES if i.needs_server]


@pytest.mark.parametrize("implementation", IN_PROCESS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), steps=funnel_steps, window=funnel_windows)
async def test_product_analytics_equal_a_recount_in_process(
    implementation: Implementation[StoreKit],
    tmp_path_factory: pytest.TempPathFactory,
    history: list[Append | Rebuild],
    steps: list[str],
    window: timedelta,
) -> None:
    await check(implementation, tmp_path_factory, history, steps, window)


@pytest.mark.parametrize("implementation", ON_SERVERS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), steps=funnel_steps, window=funnel_windows)
async def test_product_analytics_equal_a_recount_on_servers(
    implementation: Implementation[StoreKit],
    tmp_path_factory: pytest.TempPathFactory,
    history: list[Append | Rebuild],
    steps: list[str],
    window: timedelta,
) -> None:
    await check(implementation, tmp_path_factory, history, steps, window)
