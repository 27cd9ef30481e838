"""The stores' contract for a project's allowed origins: set, read, listed, cleared, and walled
off by workspace."""

from __future__ import annotations

from eventcore.ports import Store
from tests.contract.support import project
from tests.contract.test_dimension_store import declared_project


async def test_allowed_origins_are_set_read_and_cleared_within_their_workspace(
    store: Store,
) -> None:
    """The origins set are read back in order, with the other columns untouched; another
    workspace's project is not changed; an empty list clears them."""
    ours, web = await declared_project(store, ("plan",))
    theirs, shop = await declared_project(store, ("plan",))
    await store.create_project(project(ours))
    fresh = (await store.list_projects(ours))[-1]
    assert fresh.allowed_origins == ()
    await store.set_retention(ours, web, 30)

    changed = await store.set_allowed_origins(
        ours, web, ("https://www.example.com", "http://localhost:3000")
    )

    assert changed is not None
    assert changed.allowed_origins == ("https://www.example.com", "http://localhost:3000")
    assert changed.retention_days == 30
    assert changed.dimensions == ("plan",)
    assert await store.get_project(ours, web) == changed
    assert [p for p in await store.list_projects(ours) if p.id == web] == [changed]
    assert [p for p in await store.projects_with_retention() if p.id == web] == [changed]
    assert await store.set_allowed_origins(theirs, web, ("https://evil.example",)) is None
    assert await store.get_project(ours, web) == changed
    unchanged = await store.get_project(theirs, shop)
    assert unchanged is not None
    assert unchanged.allowed_origins == ()
    cleared = await store.set_allowed_origins(ours, web, ())
    assert cleared is not None
    assert cleared.allowed_origins == ()
    assert await store.get_project(ours, web) == cleared
