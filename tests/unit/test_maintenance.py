"""Maintenance: a rebuild of the count tables repairs them and retires every answer cached from
the counts it replaced."""

from __future__ import annotations

from eventcore import Recount
from tests.unit.conftest import App, Tenant
from tests.unit.helpers import event


async def _drift_and_cache(app: App, tenant: Tenant) -> int:
    """Inflate the tenant's stored counts (as drift, or a bug, would) and cache an answer
    computed from them; the inflated total."""
    for key in [k for k in app.memory.counts if k.workspace_id == tenant.workspace_id]:
        app.memory.counts[key] += 5
    drifted = (await app.analytics.counts(tenant.principal, tenant.project_id)).total
    assert (await app.analytics.counts(tenant.principal, tenant.project_id)).total == drifted
    return drifted


async def test_a_rebuild_of_every_workspace_retires_every_cached_answer(app: App) -> None:
    """`rebuild_counts()` recounts every workspace and none of them serves a cached answer from
    the old counts afterwards."""
    tenants = [await app.signup(), await app.signup(workspace="Other")]
    for number, tenant in enumerate(tenants):
        await app.ingestor.submit(tenant.ref, [event(f"e{number}-{n}") for n in range(3)])
    drifted = [await _drift_and_cache(app, tenant) for tenant in tenants]
    assert all(total > 3 for total in drifted)

    recount = await app.platform.maintenance.rebuild_counts()

    assert recount == Recount(6, frozenset(tenant.workspace_id for tenant in tenants))
    for tenant in tenants:
        assert (await app.analytics.counts(tenant.principal, tenant.project_id)).total == 3


async def test_a_rebuild_of_one_workspace_retires_its_cached_answers_only(app: App) -> None:
    """`rebuild_counts(workspace_id)` recounts that workspace, gives it a new data generation,
    and leaves every other workspace's counts and cache alone."""
    rebuilt, other = await app.signup(), await app.signup(workspace="Other")
    for tenant in (rebuilt, other):
        await app.ingestor.submit(tenant.ref, [event("e1"), event("e2")])
        await _drift_and_cache(app, tenant)
    generation = await app.query_cache.generation(other.workspace_id)

    recount = await app.platform.maintenance.rebuild_counts(rebuilt.workspace_id)

    assert recount.events == 2
    assert (await app.analytics.counts(rebuilt.principal, rebuilt.project_id)).total == 2
    assert await app.query_cache.generation(other.workspace_id) == generation
    assert (await app.analytics.counts(other.principal, other.project_id)).total > 2


async def test_a_rebuild_of_a_workspace_without_events_still_retires_its_answers(
    app: App, tenant: Tenant
) -> None:
    """A workspace with nothing left to count gets a new generation too: its old counts went."""
    before = await app.query_cache.generation(tenant.workspace_id)

    recount = await app.platform.maintenance.rebuild_counts(tenant.workspace_id)

    assert recount.events == 0
    assert await app.query_cache.generation(tenant.workspace_id) == before + 1
