"""Property: whatever the data of other tenants, a workspace only ever sees its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventcore import AuthenticationFailed, NotFound, Principal
from tests.unit.conftest import NOW, App, AppFactory, Tenant
from tests.unit.helpers import body, event

# The same small sets of ids and types everywhere, so tenants collide on purpose.
IDS = st.sampled_from(["1", "2", "3", "order-7", "x"])
TYPES = st.sampled_from(["view", "click", "buy"])
PROJECT_EVENTS = st.lists(st.tuples(IDS, TYPES, st.integers(0, 6 * 3600)), max_size=12)
WORKSPACES = st.lists(st.lists(PROJECT_EVENTS, min_size=1, max_size=3), min_size=2, max_size=3)
START, END = NOW - timedelta(hours=7), NOW + timedelta(minutes=1)


async def _build(app: App, data: list[list[list[tuple[str, str, int]]]]) -> list[list[Tenant]]:
    """One owner per workspace, one project (with its own key) per inner list, events sent."""
    workspaces: list[list[Tenant]] = []
    for w, projects in enumerate(data):
        owner = await app.signup(workspace=f"Workspace {w}")
        tenants = [owner]
        for p in range(1, len(projects)):
            project, key, secret = await app.add_project(owner.principal, f"Project {p}")
            tenants.append(Tenant(owner.email, owner.principal, owner.token, project, key, secret))
        for p, (tenant, events) in enumerate(zip(tenants, projects, strict=True)):
            if events:
                wire = [
                    event(
                        i,
                        t,
                        timestamp=(NOW - timedelta(seconds=ago)).isoformat(),
                        properties={"tenant": f"{w}/{p}"},
                    )
                    for i, t, ago in events
                ]
                await app.ingestor.ingest(tenant.api_key, body(*wire))
        workspaces.append(tenants)
    return workspaces


def _reaches_into(
    app: App, principal: Principal, other: Tenant
) -> list[Callable[[], Awaitable[object]]]:
    """Every read or write a principal could aim at another tenant's project or key."""
    return [
        lambda: app.analytics.counts(principal, other.project_id, start=START, end=END),
        lambda: app.analytics.event_types(principal, other.project_id, start=START, end=END),
        lambda: app.analytics.list_events(principal, other.project_id),
        lambda: app.accounts.list_api_keys(principal, other.project_id),
        lambda: app.accounts.create_api_key(principal, other.project_id, "stolen"),
        lambda: app.accounts.project(principal, other.project_id),
        lambda: app.accounts.revoke_api_key(principal, other.key.id),
    ]


def _expected(events: list[tuple[str, str, int]]) -> dict[str, str]:
    """Each id with the type of its first occurrence: the version that is stored."""
    kept: dict[str, str] = {}
    for i, t, _ in events:
        kept.setdefault(i, t)
    return kept


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=WORKSPACES)
async def test_a_workspace_sees_nothing_of_another(
    make_app: AppFactory, data: list[list[list[tuple[str, str, int]]]]
) -> None:
    """Counts, types, events, projects and keys of workspace A never include workspace B's."""
    app = make_app()
    workspaces = await _build(app, data)

    for w, tenants in enumerate(workspaces):
        principal = tenants[0].principal
        projects = await app.accounts.list_projects(principal)
        assert {p.id for p in projects} == {t.project_id for t in tenants}
        assert all(p.workspace_id == principal.workspace_id for p in projects)

        for p, tenant in enumerate(tenants):
            own = _expected(data[w][p])
            series = await app.analytics.counts(principal, tenant.project_id, start=START, end=END)
            assert series.total == len(own)
            assert Counter(pt.event_type for pt in series.series for _ in range(pt.count)) == (
                Counter(own.values())
            )
            totals = await app.analytics.event_types(
                principal, tenant.project_id, start=START, end=END
            )
            assert {t.event_type: t.count for t in totals.event_types} == Counter(own.values())
            page = await app.analytics.list_events(principal, tenant.project_id, limit=1000)
            assert {e.id: e.type for e in page.events} == own
            assert len(page.events) == len(own)
            assert {msgspec.json.decode(e.properties)["tenant"] for e in page.events} <= {
                f"{w}/{p}"
            }
            keys = await app.accounts.list_api_keys(principal, tenant.project_id)
            assert [k.id for k in keys] == [tenant.key.id]
            assert all(k.tenant == tenant.ref for k in keys)

        # Every project of every other workspace is, to this one, a project that does not exist.
        for v, others in enumerate(workspaces):
            if v == w:
                continue
            for other in others:
                for attempt in _reaches_into(app, principal, other):
                    with pytest.raises(NotFound):
                        await attempt()
                assert (await app.platform.keys.resolve(other.api_key)).tenant == other.ref

    # The refused attempts above created and revoked nothing.
    assert len(app.memory.api_keys) == sum(len(t) for t in workspaces)
    assert all(k.revoked_at is None for k in app.memory.api_keys.values())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=WORKSPACES)
async def test_a_revoked_key_stops_only_its_own_project(
    make_app: AppFactory, data: list[list[list[tuple[str, str, int]]]]
) -> None:
    """Revoking one project's key leaves every other tenant's key working."""
    app = make_app()
    workspaces = await _build(app, data)
    victim = workspaces[0][-1]
    await app.accounts.revoke_api_key(victim.principal, victim.key.id)
    with pytest.raises(AuthenticationFailed):
        await app.platform.keys.resolve(victim.api_key)
    for tenants in workspaces:
        for tenant in tenants:
            if tenant is not victim:
                assert (await app.platform.keys.resolve(tenant.api_key)).tenant == tenant.ref
