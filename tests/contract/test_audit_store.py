"""The audit log half of the AccountStore contract: an action's entry is stored with the action,
in its transaction and only if it took effect; entries come back newest first, per workspace."""

from __future__ import annotations

from datetime import timedelta

import pytest

from eventcore.audit import ActorType, AuditAction, AuditEntry
from eventcore.errors import AlreadyExists, EmailTaken, LastOwner
from eventcore.events import EventCursor
from eventcore.ports import Store
from eventcore.tenancy import Role
from tests.contract.support import T0, api_key, membership, new_id, project, user, workspace


def entry(
    workspace_id: str, action: AuditAction = AuditAction.PROJECT_CREATED, minutes: int = 0
) -> AuditEntry:
    return AuditEntry(
        id=new_id("audit"),
        workspace_id=workspace_id,
        at=T0 + timedelta(minutes=minutes),
        action=action,
        actor_type=ActorType.USER,
        actor_id="user-1",
        target_type="project",
        target_id="prj-1",
        details={"name": "Web", "properties": ["plan", "context.page.path"], "left": False},
        request_id="req-1",
        client_address="192.0.2.7",
    )


async def owned_workspace(store: Store) -> str:
    owner, owned = user(), workspace()
    await store.create_signup(owner, owned, membership(owned.id, owner.id, Role.OWNER))
    return owned.id


async def test_an_entry_comes_back_as_it_was_recorded(store: Store) -> None:
    ws = await owned_workspace(store)
    recorded = entry(ws)

    await store.record_audit(recorded)

    [found] = await store.list_audit(ws, limit=10)
    assert found.seq > 0
    assert found == AuditEntry(**{**_fields(recorded), "seq": found.seq})


async def test_entries_are_newest_first_filtered_and_paged(store: Store) -> None:
    ws = await owned_workspace(store)
    actions = [AuditAction.PROJECT_CREATED, AuditAction.API_KEY_CREATED] * 4
    for n, action in enumerate(actions):
        # Two entries share each instant: insertion order breaks the tie.
        await store.record_audit(entry(ws, action, minutes=n // 2))

    everything = await store.list_audit(ws, limit=100)
    assert [(e.at, e.seq) for e in everything] == sorted(
        ((e.at, e.seq) for e in everything), reverse=True
    )
    keys = await store.list_audit(ws, limit=100, action=AuditAction.API_KEY_CREATED)
    assert keys == [e for e in everything if e.action is AuditAction.API_KEY_CREATED]
    visited: list[AuditEntry] = []
    before: EventCursor | None = None
    while True:
        page = await store.list_audit(ws, limit=3, before=before)
        visited += page
        if len(page) < 3:
            break
        before = EventCursor(page[-1].at, page[-1].seq)
    assert visited == everything


async def test_a_workspace_reads_only_its_own_entries(store: Store) -> None:
    ours, theirs = await owned_workspace(store), await owned_workspace(store)
    await store.record_audit(entry(ours))

    assert await store.list_audit(theirs, limit=10) == []
    assert len(await store.list_audit(ours, limit=10)) == 1


async def test_each_write_records_its_entry_when_it_takes_effect(store: Store) -> None:
    owner, owned = user(), workspace()
    ws = owned.id
    await store.create_signup(
        owner, owned, membership(ws, owner.id, Role.OWNER), audit=entry(ws, AuditAction.SIGNUP)
    )
    web = project(ws)
    await store.create_project(web, audit=entry(ws, AuditAction.PROJECT_CREATED))
    key = api_key(web)
    await store.create_api_key(key, audit=entry(ws, AuditAction.API_KEY_CREATED))
    await store.set_dimensions(
        ws, web.id, ("plan",), audit=entry(ws, AuditAction.DIMENSIONS_CHANGED)
    )
    await store.revoke_api_key(ws, key.id, T0, audit=entry(ws, AuditAction.API_KEY_REVOKED))
    viewer = user()
    await store.add_membership(membership(ws, viewer.id))
    await store.change_role(ws, viewer.id, Role.ADMIN, audit=entry(ws, AuditAction.ROLE_CHANGED))
    await store.remove_membership(ws, viewer.id, audit=entry(ws, AuditAction.MEMBER_REMOVED))
    await store.delete_project(ws, web.id, T0, audit=entry(ws, AuditAction.PROJECT_DELETED))

    recorded = [e.action for e in reversed(await store.list_audit(ws, limit=100))]
    assert recorded == [
        AuditAction.SIGNUP,
        AuditAction.PROJECT_CREATED,
        AuditAction.API_KEY_CREATED,
        AuditAction.DIMENSIONS_CHANGED,
        AuditAction.API_KEY_REVOKED,
        AuditAction.ROLE_CHANGED,
        AuditAction.MEMBER_REMOVED,
        AuditAction.PROJECT_DELETED,
    ]


async def test_a_write_that_changes_nothing_records_nothing(store: Store) -> None:
    ws = await owned_workspace(store)
    before = await store.list_audit(ws, limit=100)

    assert await store.revoke_api_key(ws, "no-such-key", T0, audit=entry(ws)) is None
    assert await store.delete_project(ws, "no-such-project", T0, audit=entry(ws)) is None
    assert await store.set_dimensions(ws, "no-such-project", ("plan",), audit=entry(ws)) is None
    assert await store.change_role(ws, "no-such-user", Role.ADMIN, audit=entry(ws)) is None
    assert await store.remove_membership(ws, "no-such-user", audit=entry(ws)) is False

    assert await store.list_audit(ws, limit=100) == before


async def test_a_refused_write_records_nothing(store: Store) -> None:
    """The entry is in the write's transaction: a refusal takes it back with the write."""
    owner, owned = user("taken@example.com"), workspace()
    ws = owned.id
    await store.create_signup(owner, owned, membership(ws, owner.id, Role.OWNER))
    web = project(ws)
    await store.create_project(web)
    before = await store.list_audit(ws, limit=100)

    with pytest.raises(AlreadyExists):
        await store.create_project(web, audit=entry(ws))
    with pytest.raises(LastOwner):
        await store.remove_membership(ws, owner.id, audit=entry(ws))
    with pytest.raises(LastOwner):
        await store.change_role(ws, owner.id, Role.VIEWER, audit=entry(ws))
    other = workspace()
    second = user("taken@example.com")
    with pytest.raises(EmailTaken):
        await store.create_signup(
            second, other, membership(other.id, second.id, Role.OWNER), audit=entry(other.id)
        )

    assert await store.list_audit(ws, limit=100) == before
    assert await store.list_audit(other.id, limit=100) == []


def _fields(recorded: AuditEntry) -> dict[str, object]:
    return {name: getattr(recorded, name) for name in recorded.__struct_fields__}


async def test_expiry_removes_the_entries_before_a_time_in_every_workspace(store: Store) -> None:
    """The log's retention: entries recorded before ``before`` go, whatever their workspace;
    the later ones stay, as they were."""
    ours, theirs = await owned_workspace(store), await owned_workspace(store)
    for ws in (ours, theirs):
        for minutes in (0, 10, 20):
            await store.record_audit(entry(ws, minutes=minutes))
    kept = {ws: await store.list_audit(ws, limit=10) for ws in (ours, theirs)}

    removed = await store.expire_audit_log(T0 + timedelta(minutes=10))

    assert removed == 2
    for ws in (ours, theirs):
        assert await store.list_audit(ws, limit=10) == [
            e for e in kept[ws] if e.at >= T0 + timedelta(minutes=10)
        ]
    assert await store.expire_audit_log(T0) == 0
