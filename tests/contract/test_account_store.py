"""The AccountStore contract: users, workspaces, memberships, projects and API keys."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import msgspec
import pytest

from eventcore.errors import AlreadyExists, AlreadyMember, EmailTaken, LastOwner
from eventcore.ports import Store
from eventcore.tenancy import Invitation, Member, Membership, Role, User, Workspace
from tests.contract.support import (
    T0,
    api_key,
    at,
    is_utc,
    membership,
    new_id,
    project,
    user,
    workspace,
)


async def signup(store: Store, email: str | None = None) -> tuple[User, Workspace, Membership]:
    owner_user, owned = user(email), workspace()
    owner = membership(owned.id, owner_user.id, Role.OWNER)
    await store.create_signup(owner_user, owned, owner)
    return owner_user, owned, owner


async def test_signup_stores_the_user_and_their_ownership(store: Store) -> None:
    """A signup stores the user, findable by id and email, as owner of the new workspace."""
    new_user, new_workspace, owner = await signup(store, "ada@example.com")

    assert await store.get_user(new_user.id) == new_user
    assert await store.get_user_by_email("ada@example.com") == new_user
    assert await store.get_membership(new_workspace.id, new_user.id) == owner
    assert await store.list_memberships(new_user.id) == [owner]


async def test_signup_with_a_taken_email_conflicts_and_stores_nothing(store: Store) -> None:
    """A second signup with the same email raises email_taken and leaves no trace."""
    first, _, _ = await signup(store, "ada@example.com")
    second, second_workspace = user("ada@example.com"), workspace()

    with pytest.raises(EmailTaken) as raised:
        await store.create_signup(
            second, second_workspace, membership(second_workspace.id, second.id, Role.OWNER)
        )

    assert raised.value.code == "email_taken"
    assert await store.get_user(second.id) is None
    assert await store.get_membership(second_workspace.id, second.id) is None
    assert await store.list_memberships(second.id) == []
    assert await store.get_user_by_email("ada@example.com") == first


async def test_unknown_records_are_none_or_empty(store: Store) -> None:
    """Lookups of things never stored answer None or an empty list."""
    assert await store.get_user("nobody") is None
    assert await store.get_user_by_email("nobody@example.com") is None
    assert await store.get_membership("ws", "nobody") is None
    assert await store.list_memberships("nobody") == []
    assert await store.get_project("ws", "prj") is None
    assert await store.list_projects("ws") == []
    assert await store.list_api_keys("ws", "prj") == []
    assert await store.find_api_key("0" * 64) is None


async def test_memberships_are_listed_oldest_first(store: Store) -> None:
    """A user's memberships across workspaces come back ordered by when they were made."""
    member, _, owner = await signup(store)
    later = membership(new_id("ws"), member.id, Role.ADMIN, owner.created_at + timedelta(hours=2))
    earlier = membership(
        new_id("ws"), member.id, Role.VIEWER, owner.created_at - timedelta(hours=1)
    )
    await store.add_membership(later)
    await store.add_membership(earlier)

    assert await store.list_memberships(member.id) == [earlier, owner, later]
    assert await store.get_membership(later.workspace_id, member.id) == later


async def test_adding_a_member_twice_conflicts_and_keeps_the_first(store: Store) -> None:
    """A second membership of the same user in the same workspace raises already_member."""
    owner_user, owned, owner = await signup(store)

    with pytest.raises(AlreadyMember) as raised:
        await store.add_membership(membership(owned.id, owner_user.id, Role.VIEWER, at(5)))

    assert raised.value.code == "already_member"
    assert await store.get_membership(owned.id, owner_user.id) == owner
    assert await store.list_memberships(owner_user.id) == [owner]


async def test_a_membership_belongs_to_its_workspace_only(store: Store) -> None:
    """A member of workspace A is not a member of workspace B."""
    member, _, _ = await signup(store)
    _, other_workspace, _ = await signup(store)

    assert await store.get_membership(other_workspace.id, member.id) is None


async def joined(store: Store, owned: Workspace, role: Role, hours: int) -> User:
    """A new user (signed up elsewhere) made a member of ``owned`` ``hours`` after T0."""
    newcomer, _, _ = await signup(store)
    await store.add_membership(membership(owned.id, newcomer.id, role, at(hours * 60)))
    return newcomer


async def test_members_are_listed_with_their_emails_oldest_first(store: Store) -> None:
    owner_user, owned, owner = await signup(store, "owner@example.com")
    viewer = await joined(store, owned, Role.VIEWER, 2)
    admin = await joined(store, owned, Role.ADMIN, 1)
    elsewhere_owner, elsewhere, _ = await signup(store)

    assert await store.list_members(owned.id) == [
        Member(owner_user.id, "owner@example.com", Role.OWNER, owner.created_at),
        Member(admin.id, admin.email, Role.ADMIN, at(60)),
        Member(viewer.id, viewer.email, Role.VIEWER, at(120)),
    ]
    assert [m.user_id for m in await store.list_members(elsewhere.id)] == [elsewhere_owner.id]
    assert await store.list_members("no-such-workspace") == []


async def test_a_role_is_changed_in_its_workspace_only(store: Store) -> None:
    _, owned, _ = await signup(store)
    member = await joined(store, owned, Role.VIEWER, 1)
    _, other, _ = await signup(store)

    changed = await store.change_role(owned.id, member.id, Role.ADMIN)
    assert changed == membership(owned.id, member.id, Role.ADMIN, at(60))
    assert await store.get_membership(owned.id, member.id) == changed
    assert await store.change_role(other.id, member.id, Role.OWNER) is None
    assert await store.get_membership(other.id, member.id) is None
    assert await store.change_role(owned.id, "nobody", Role.ADMIN) is None


async def test_the_last_owner_is_neither_demoted_nor_removed(store: Store) -> None:
    owner_user, owned, owner = await signup(store)
    await joined(store, owned, Role.ADMIN, 1)

    for role in (Role.ADMIN, Role.VIEWER):
        with pytest.raises(LastOwner) as raised:
            await store.change_role(owned.id, owner_user.id, role)
        assert raised.value.code == "last_owner"
    with pytest.raises(LastOwner):
        await store.remove_membership(owned.id, owner_user.id)
    assert await store.get_membership(owned.id, owner_user.id) == owner
    # An owner made owner again changes nothing and needs no other owner.
    assert await store.change_role(owned.id, owner_user.id, Role.OWNER) == owner


async def test_an_owner_goes_once_another_owner_remains(store: Store) -> None:
    owner_user, owned, _ = await signup(store)
    second = await joined(store, owned, Role.OWNER, 1)

    demoted = await store.change_role(owned.id, owner_user.id, Role.VIEWER)
    assert demoted is not None
    assert demoted.role is Role.VIEWER
    with pytest.raises(LastOwner):
        await store.remove_membership(owned.id, second.id)
    assert await store.remove_membership(owned.id, owner_user.id) is True
    assert await store.get_membership(owned.id, owner_user.id) is None
    assert [m.user_id for m in await store.list_members(owned.id)] == [second.id]


async def test_a_membership_is_removed_in_its_workspace_only(store: Store) -> None:
    owner_user, owned, _ = await signup(store)
    member = await joined(store, owned, Role.VIEWER, 1)
    _, other, _ = await signup(store)

    assert await store.remove_membership(other.id, member.id) is False
    assert await store.remove_membership(owned.id, "nobody") is False
    assert await store.get_membership(owned.id, member.id) is not None
    assert await store.remove_membership(owned.id, member.id) is True
    assert await store.remove_membership(owned.id, member.id) is False
    assert owned.id not in {m.workspace_id for m in await store.list_memberships(member.id)}
    assert await store.get_membership(owned.id, owner_user.id) is not None


async def test_projects_are_listed_oldest_first_within_their_workspace(store: Store) -> None:
    """list_projects returns the workspace's projects by creation time and no other's."""
    mine, theirs = new_id("ws"), new_id("ws")
    second = project(mine, at(10), "second")
    first = project(mine, at(0), "first")
    foreign = project(theirs, at(5), "foreign")
    for p in (second, foreign, first):
        await store.create_project(p)

    assert await store.list_projects(mine) == [first, second]
    assert await store.list_projects(theirs) == [foreign]
    assert await store.get_project(mine, first.id) == first


async def test_a_project_is_invisible_from_another_workspace(store: Store) -> None:
    """get_project with another workspace's id answers None."""
    owned = project(new_id("ws"))
    await store.create_project(owned)

    assert await store.get_project(new_id("ws"), owned.id) is None


async def test_api_keys_are_found_by_hash_and_listed_per_project(store: Store) -> None:
    """A key is found by its hash and listed, oldest first, under its own project only."""
    web = project(new_id("ws"))
    mobile = project(web.workspace_id, name="Mobile")
    newer, older, other = api_key(web, at(3)), api_key(web, at(1)), api_key(mobile, at(2))
    for key in (newer, older, other):
        await store.create_api_key(key)

    assert await store.find_api_key(newer.key_hash) == newer
    assert await store.list_api_keys(web.workspace_id, web.id) == [older, newer]
    assert await store.list_api_keys(web.workspace_id, mobile.id) == [other]


async def test_api_keys_are_invisible_from_another_workspace(store: Store) -> None:
    """Listing or revoking a key with another workspace's id finds nothing and changes nothing."""
    web = project(new_id("ws"))
    key = api_key(web)
    await store.create_api_key(key)
    intruder = new_id("ws")

    assert await store.list_api_keys(intruder, web.id) == []
    assert await store.revoke_api_key(intruder, key.id, at(1)) is None
    assert await store.find_api_key(key.key_hash) == key


async def test_revoking_a_key_keeps_the_first_revocation_time(store: Store) -> None:
    """Revocation marks the key once; revoking again returns the first time unchanged."""
    web = project(new_id("ws"))
    key = api_key(web)
    await store.create_api_key(key)

    first = await store.revoke_api_key(web.workspace_id, key.id, at(1))
    again = await store.revoke_api_key(web.workspace_id, key.id, at(2))

    assert first is not None
    assert first.revoked_at == at(1)
    assert first.id == key.id
    assert first.key_hash == key.key_hash
    assert again == first
    assert await store.find_api_key(key.key_hash) == first
    assert await store.list_api_keys(web.workspace_id, web.id) == [first]


async def test_deleting_a_project_revokes_its_keys_and_nothing_else(store: Store) -> None:
    """The project goes, its keys are revoked (an earlier revocation keeps its time), and the
    other projects and keys, in its workspace or another, are untouched."""
    web = project(new_id("ws"))
    app = project(web.workspace_id, name="App")
    other = project(new_id("ws"))
    for each in (web, app, other):
        await store.create_project(each)
    live, old = api_key(web), api_key(web)
    kept, foreign = api_key(app), api_key(other)
    for key in (live, old, kept, foreign):
        await store.create_api_key(key)
    await store.revoke_api_key(web.workspace_id, old.id, at(1))

    revoked = await store.delete_project(web.workspace_id, web.id, at(2))

    assert revoked is not None
    assert sorted((k.id, k.revoked_at) for k in revoked) == sorted(
        [(live.id, at(2)), (old.id, at(1))]
    )
    assert await store.get_project(web.workspace_id, web.id) is None
    assert await store.list_projects(web.workspace_id) == [app]
    found = await store.find_api_key(live.key_hash)
    assert found is not None
    assert found.revoked_at == at(2)
    assert await store.find_api_key(kept.key_hash) == kept
    assert await store.find_api_key(foreign.key_hash) == foreign
    assert await store.delete_project(web.workspace_id, web.id, at(3)) is None


async def test_a_project_is_deleted_from_its_workspace_only(store: Store) -> None:
    web = project(new_id("ws"))
    await store.create_project(web)
    key = api_key(web)
    await store.create_api_key(key)

    assert await store.delete_project(new_id("ws"), web.id, at(1)) is None
    assert await store.delete_project(web.workspace_id, "no-such-project", at(1)) is None
    assert await store.get_project(web.workspace_id, web.id) == web
    assert await store.find_api_key(key.key_hash) == key


async def test_revoking_an_unknown_key_returns_none(store: Store) -> None:
    """revoke_api_key of a key that does not exist answers None."""
    assert await store.revoke_api_key(new_id("ws"), "no-such-key", at(1)) is None


async def test_times_come_back_exact_and_in_utc(store: Store) -> None:
    """Stored times keep their microseconds and come back timezone-aware UTC."""
    moment = T0 + timedelta(microseconds=123_457)
    new_user, new_workspace = user(created_at=moment), workspace(moment)
    await store.create_signup(
        new_user, new_workspace, membership(new_workspace.id, new_user.id, Role.OWNER, moment)
    )
    web = project(new_workspace.id, moment)
    await store.create_project(web)
    key = api_key(web, moment)
    await store.create_api_key(key)
    revoked = await store.revoke_api_key(
        web.workspace_id, key.id, moment + timedelta(microseconds=1)
    )

    found_user = await store.get_user(new_user.id)
    found_membership = await store.get_membership(new_workspace.id, new_user.id)
    found_project = await store.get_project(web.workspace_id, web.id)
    assert found_user is not None
    assert found_membership is not None
    assert found_project is not None
    assert revoked is not None
    assert revoked.revoked_at is not None
    for stamp in (
        found_user.created_at,
        found_membership.created_at,
        found_project.created_at,
        revoked.created_at,
    ):
        assert stamp == moment
        assert is_utc(stamp)
    assert revoked.revoked_at == moment + timedelta(microseconds=1)
    assert is_utc(revoked.revoked_at)


# Reused ids: a store holds one record per id and refuses a second one with the same id, as a
# primary key does, rather than silently replacing the first (AlreadyExists, "already_exists";
# test_store_errors holds every store to the same error for each).


async def test_a_reused_project_id_conflicts_and_keeps_the_first(store: Store) -> None:
    """Creating a project under an id its workspace already uses raises AlreadyExists."""
    first = project(new_id("ws"), at(0), "First")
    await store.create_project(first)
    again = msgspec.structs.replace(first, name="Second", created_at=at(5))

    with pytest.raises(AlreadyExists) as raised:
        await store.create_project(again)

    assert raised.value.code == "already_exists"
    assert await store.get_project(first.workspace_id, first.id) == first
    assert await store.list_projects(first.workspace_id) == [first]


async def test_a_reused_api_key_id_conflicts_and_keeps_the_first(store: Store) -> None:
    """Creating an API key under an id its workspace already uses raises AlreadyExists."""
    web = project(new_id("ws"))
    first = api_key(web, at(0))
    await store.create_api_key(first)
    again = msgspec.structs.replace(api_key(web, at(5)), id=first.id)

    with pytest.raises(AlreadyExists) as raised:
        await store.create_api_key(again)

    assert raised.value.code == "already_exists"
    assert await store.find_api_key(first.key_hash) == first
    assert await store.find_api_key(again.key_hash) is None
    assert await store.list_api_keys(web.workspace_id, web.id) == [first]


async def test_a_reused_api_key_hash_conflicts_and_keeps_the_first(store: Store) -> None:
    """A second key with an existing key's hash raises AlreadyExists, so a hash finds one key only."""
    web = project(new_id("ws"))
    first = api_key(web, at(0))
    await store.create_api_key(first)
    again = msgspec.structs.replace(api_key(web, at(5)), key_hash=first.key_hash)

    with pytest.raises(AlreadyExists) as raised:
        await store.create_api_key(again)

    assert raised.value.code == "already_exists"
    assert await store.find_api_key(first.key_hash) == first
    assert await store.list_api_keys(web.workspace_id, web.id) == [first]


async def test_a_signup_reusing_a_workspace_id_conflicts_and_stores_nothing(store: Store) -> None:
    """A signup whose new workspace's id is taken raises AlreadyExists and stores no user."""
    first_user, taken, first_owner = await signup(store)
    second = user()
    again = Workspace(id=taken.id, name="Other", created_at=at(5))

    with pytest.raises(AlreadyExists) as raised:
        await store.create_signup(second, again, membership(taken.id, second.id, Role.OWNER))

    assert raised.value.code == "already_exists"
    assert await store.get_user(second.id) is None
    assert await store.get_user_by_email(second.email) is None
    assert await store.get_membership(taken.id, second.id) is None
    assert await store.list_memberships(second.id) == []
    assert await store.get_membership(taken.id, first_user.id) == first_owner


async def test_a_signup_reusing_a_user_id_conflicts_and_stores_nothing(store: Store) -> None:
    """A signup whose new user's id is taken (under another email) raises AlreadyExists."""
    first_user, _, first_owner = await signup(store)
    again = msgspec.structs.replace(user(), id=first_user.id)
    other = workspace()

    with pytest.raises(AlreadyExists) as raised:
        await store.create_signup(again, other, membership(other.id, again.id, Role.OWNER))

    assert raised.value.code == "already_exists"
    assert await store.get_user(first_user.id) == first_user
    assert await store.get_user_by_email(again.email) is None
    assert await store.get_membership(other.id, first_user.id) is None
    assert await store.list_memberships(first_user.id) == [first_owner]


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(store: Store) -> None:
    """Changes of one workspace's memberships are atomic: of two owners stepping down together,
    exactly one does; the other gets last_owner."""
    first, owned, _ = await signup(store)
    second = await joined(store, owned, Role.OWNER, 1)

    outcomes = await asyncio.gather(
        store.change_role(owned.id, first.id, Role.VIEWER),
        store.remove_membership(owned.id, second.id),
        return_exceptions=True,
    )
    assert sum(isinstance(outcome, LastOwner) for outcome in outcomes) == 1, outcomes
    owners = [m for m in await store.list_members(owned.id) if m.role is Role.OWNER]
    assert len(owners) == 1


def invitation(
    workspace_id: str, email: str = "new@example.com", role: Role = Role.ADMIN
) -> Invitation:
    return Invitation(
        id=new_id("inv"),
        workspace_id=workspace_id,
        email=email,
        role=role,
        token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        created_at=T0,
        expires_at=at(7 * 24 * 60),
    )


async def test_an_invitation_is_found_by_its_token_in_its_workspace_only(store: Store) -> None:
    _, owned, _ = await signup(store)
    _, other, _ = await signup(store)
    offered = invitation(owned.id)
    await store.create_invitation(offered)

    assert await store.find_invitation(owned.id, offered.token_hash) == offered
    assert await store.find_invitation(other.id, offered.token_hash) is None
    assert await store.find_invitation(owned.id, "0" * 64) is None
    with pytest.raises(AlreadyExists):
        await store.create_invitation(msgspec.structs.replace(offered, id=new_id("inv")))


async def test_accepting_an_invitation_adds_the_member_once(store: Store) -> None:
    _, owned, _ = await signup(store)
    newcomer, _, _ = await signup(store, "new@example.com")
    offered = invitation(owned.id)
    await store.create_invitation(offered)
    joined_as = membership(owned.id, newcomer.id, Role.ADMIN, at(5))

    assert await store.accept_invitation(owned.id, offered.id, joined_as, at(5)) is True
    assert await store.get_membership(owned.id, newcomer.id) == joined_as
    accepted = await store.find_invitation(owned.id, offered.token_hash)
    assert accepted is not None
    assert accepted.accepted_at == at(5)
    again = membership(owned.id, newcomer.id, Role.OWNER, at(6))
    assert await store.accept_invitation(owned.id, offered.id, again, at(6)) is False
    assert await store.get_membership(owned.id, newcomer.id) == joined_as


async def test_accepting_as_a_member_changes_nothing(store: Store) -> None:
    """AlreadyMember, and the invitation stays open (the whole transaction is undone)."""
    owner_user, owned, owner = await signup(store)
    offered = invitation(owned.id, role=Role.VIEWER)
    await store.create_invitation(offered)

    with pytest.raises(AlreadyMember):
        await store.accept_invitation(
            owned.id, offered.id, membership(owned.id, owner_user.id, Role.VIEWER, at(1)), at(1)
        )
    assert await store.get_membership(owned.id, owner_user.id) == owner
    still = await store.find_invitation(owned.id, offered.token_hash)
    assert still is not None
    assert still.accepted_at is None
