"""Workspace deletion in the store: every row of the workspace goes, nothing of another, and a
batch of it still queued stores nothing."""

from __future__ import annotations

from eventcore.aggregation import StoredGrain
from eventcore.ports import AppendResult, Store
from eventcore.tenancy import Role
from tests.contract.support import (
    EVERYTHING,
    T0,
    api_key,
    batch,
    event,
    membership,
    project,
    user,
    workspace,
)
from tests.contract.test_audit_store import entry

START, END = EVERYTHING


async def tenant(store: Store) -> tuple[str, str]:
    owner, owned = user(), workspace()
    await store.create_signup(owner, owned, membership(owned.id, owner.id, Role.OWNER))
    made = project(owned.id)
    await store.create_project(made)
    await store.create_api_key(api_key(made))
    await store.set_dimensions(owned.id, made.id, ("plan",))
    await store.append(
        [batch(owned.id, made.id, event("e1", user_id="ada", properties=b'{"plan": "pro"}'))]
    )
    await store.record_audit(entry(owned.id))
    return owned.id, made.id


async def test_every_row_of_the_workspace_goes_and_nothing_of_another(store: Store) -> None:
    gone, web = await tenant(store)
    kept, shop = await tenant(store)

    keys = await store.delete_workspace(gone, T0)

    assert keys is not None
    assert len(keys) == 1
    assert await store.get_workspace(gone) is None
    assert await store.get_project(gone, web) is None
    assert await store.list_events(gone, web, limit=10) == []
    assert await store.count_series(gone, web, StoredGrain.HOUR, START, END) == []
    assert await store.user_sketches(gone, web, START, END) == []
    assert await store.dimension_tallies(gone, web, "plan", START, END) == []
    assert await store.list_audit(gone, limit=10) == []
    assert await store.find_api_key(keys[0].key_hash) is None
    # The other workspace has all of its own.
    assert await store.get_workspace(kept) is not None
    assert len(await store.list_events(kept, shop, limit=10)) == 1
    assert len(await store.list_audit(kept, limit=10)) == 1
    assert await store.delete_workspace(gone, T0) is None


async def test_a_batch_of_a_deleted_workspace_stores_nothing(store: Store) -> None:
    gone, web = await tenant(store)
    kept, shop = await tenant(store)
    await store.delete_workspace(gone, T0)

    late = await store.append([batch(gone, web, event("q1")), batch(kept, shop, event("q2"))])

    assert late == AppendResult(inserted=1, duplicates=1)
    assert await store.list_events(gone, web, limit=10) == []
    assert {e.id for e in await store.list_events(kept, shop, limit=10)} == {"e1", "q2"}
