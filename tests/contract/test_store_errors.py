"""One vocabulary of store errors: the same failure gets the same class, code and message from
every store, and none of the driver's own words."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
import pytest

from eventcore.errors import (
    AlreadyExists,
    AlreadyMember,
    DatabaseUnavailable,
    EmailTaken,
    EventcoreError,
)
from eventcore.ports import Store
from eventcore.tenancy import Membership, Role, User, Workspace
from tests.contract.implementations import StoreKit
from tests.contract.support import api_key, at, batch, event, membership, project, user, workspace

# Words of SQLite's and psycopg's own messages, none of which may reach an error's message.
DRIVER_WORDS = (
    "constraint",
    "duplicate key",
    "sqlite",
    "psycopg",
    "violates",
    "database is locked",
    "couldn't get a connection",
    "connection",
    "pool",
)


def assert_translated(error: EventcoreError, expected: EventcoreError) -> None:
    """``error`` is exactly ``expected`` (class, code, message), in eventcore's words only."""
    assert type(error) is type(expected)
    assert error.code == expected.code
    assert error.message == expected.message
    lowered = error.message.lower()
    assert not [word for word in DRIVER_WORDS if word in lowered], error.message
    cause = error.__cause__
    if cause is not None and str(cause):
        assert str(cause) not in error.message


async def signup(store: Store, email: str | None = None) -> tuple[User, Workspace]:
    owner, owned = user(email), workspace()
    await store.create_signup(owner, owned, membership(owned.id, owner.id, Role.OWNER))
    return owner, owned


async def email_taken(store: Store) -> None:
    await signup(store, "ada@example.com")
    await signup(store, "ada@example.com")


async def already_member(store: Store) -> None:
    owner, owned = await signup(store)
    await store.add_membership(membership(owned.id, owner.id, Role.VIEWER, at(5)))


async def reused_user_id(store: Store) -> None:
    first, _ = await signup(store)
    again, other = msgspec.structs.replace(user(), id=first.id), workspace()
    await store.create_signup(again, other, membership(other.id, again.id, Role.OWNER))


async def reused_workspace_id(store: Store) -> None:
    _, taken = await signup(store)
    second = user()
    await store.create_signup(
        second, msgspec.structs.replace(taken, name="Other"), membership(taken.id, second.id)
    )


async def reused_project_id(store: Store) -> None:
    first = project("ws-a")
    await store.create_project(first)
    await store.create_project(msgspec.structs.replace(first, name="Renamed"))


async def reused_api_key_id(store: Store) -> None:
    web = project("ws-a")
    first = api_key(web)
    await store.create_api_key(first)
    await store.create_api_key(msgspec.structs.replace(api_key(web), id=first.id))


async def reused_api_key_hash(store: Store) -> None:
    web = project("ws-a")
    first = api_key(web)
    await store.create_api_key(first)
    await store.create_api_key(msgspec.structs.replace(api_key(web), key_hash=first.key_hash))


@dataclass(frozen=True)
class Refusal:
    """Something every store refuses, and exactly the error it refuses it with."""

    act: Callable[[Store], Awaitable[None]]
    expected: EventcoreError


REFUSALS = {
    "email taken": Refusal(email_taken, EmailTaken()),
    "already member": Refusal(already_member, AlreadyMember()),
    "reused user id": Refusal(reused_user_id, AlreadyExists("user")),
    "reused workspace id": Refusal(reused_workspace_id, AlreadyExists("workspace")),
    "reused project id": Refusal(reused_project_id, AlreadyExists("project")),
    "reused API key id": Refusal(reused_api_key_id, AlreadyExists("API key")),
    "reused API key hash": Refusal(reused_api_key_hash, AlreadyExists("API key", key="hash")),
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
async def test_every_refusal_is_the_same_error_from_every_store(
    store: Store, refusal: Refusal
) -> None:
    """A taken email, a second membership and each reused id or key hash raise one class, code
    and message, whichever store refuses it."""
    with pytest.raises(EventcoreError) as raised:
        await refusal.act(store)

    assert_translated(raised.value, refusal.expected)


async def test_a_store_cut_off_from_its_database_is_database_unavailable(
    database_store_kit: StoreKit,
) -> None:
    """Writes to a store whose database is locked or unreachable raise DatabaseUnavailable."""
    store_kit = database_store_kit
    assert store_kit.unreachable is not None
    web = project("ws-a")
    writes: list[Callable[[Store], Awaitable[object]]] = [
        lambda store: store.append([batch(web.workspace_id, web.id, event("e1"))]),
        lambda store: store.create_project(web),
        lambda store: store.create_signup(*_signup_parts()),
    ]

    async with store_kit.unreachable() as cut_off:
        for write in writes:
            with pytest.raises(DatabaseUnavailable) as raised:
                await write(cut_off)
            assert_translated(raised.value, DatabaseUnavailable())
            assert raised.value.retry_after > 0

    # Nothing was written, and the store itself was never cut off.
    assert await store_kit.store.list_events(web.workspace_id, web.id, limit=10) == []
    await store_kit.store.create_project(web)
    assert await store_kit.store.get_project(web.workspace_id, web.id) == web


def _signup_parts() -> tuple[User, Workspace, Membership]:
    owner, owned = user(), workspace()
    return owner, owned, membership(owned.id, owner.id, Role.OWNER)
