"""The cache contracts: API key lookups, committed idempotency keys, analytics answers, projects.

Written so that a Redis implementation can satisfy them: expiry is checked only after the whole
time to live has passed (``advance`` sleeps for a real server), never at an exact instant.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from eventcore.ports import ApiKeyCache, CommittedKeys, MembershipCache, ProjectCache, QueryCache
from eventcore.tenancy import Project, ProjectRef, Role
from tests.contract.implementations import Timed
from tests.contract.support import T0, api_key, batch, event, project

# A revoked key must stop working within one second; this is "just past" that second.
KEY_TTL_PASSED = 1.1


# ApiKeyCache


async def test_an_unknown_key_hash_is_a_miss(key_cache: Timed[ApiKeyCache]) -> None:
    """get of a hash never cached answers None."""
    assert await key_cache.port.get("f" * 64) is None


async def test_a_cached_key_comes_back_whole(key_cache: Timed[ApiKeyCache]) -> None:
    """A key put in the cache is returned unchanged by its hash, revocation time included."""
    cache = key_cache.port
    live = api_key(project("ws-1"), T0 + timedelta(microseconds=7))
    revoked = msgspec.structs.replace(
        api_key(project("ws-2")), revoked_at=T0 + timedelta(seconds=3)
    )
    await cache.put(live)
    await cache.put(revoked)

    assert await cache.get(live.key_hash) == live
    assert await cache.get(revoked.key_hash) == revoked


async def test_putting_a_key_again_replaces_it(key_cache: Timed[ApiKeyCache]) -> None:
    """A second put under the same hash (say, now revoked) replaces the first."""
    cache = key_cache.port
    key = api_key(project("ws-1"))
    revoked = msgspec.structs.replace(key, revoked_at=T0)
    await cache.put(key)
    await cache.put(revoked)

    assert await cache.get(key.key_hash) == revoked


async def test_evict_removes_only_that_key(key_cache: Timed[ApiKeyCache]) -> None:
    """After evict the hash is a miss; other keys stay; evicting an unknown hash is harmless."""
    cache = key_cache.port
    gone, kept = api_key(project("ws-1")), api_key(project("ws-1"))
    await cache.put(gone)
    await cache.put(kept)

    await cache.evict(gone.key_hash)
    await cache.evict("0" * 64)

    assert await cache.get(gone.key_hash) is None
    assert await cache.get(kept.key_hash) == kept


async def test_cached_keys_expire_within_one_second(key_cache: Timed[ApiKeyCache]) -> None:
    """An entry is gone once a second has passed, so a revocation elsewhere takes effect."""
    cache = key_cache.port
    key = api_key(project("ws-1"))
    await cache.put(key)

    await key_cache.advance(KEY_TTL_PASSED)

    assert await cache.get(key.key_hash) is None


# CommittedKeys

A1 = ProjectRef("ws-a", "prj-1")
A2 = ProjectRef("ws-a", "prj-2")
B1 = ProjectRef("ws-b", "prj-1")


async def test_nothing_is_known_before_it_is_remembered(committed_keys: CommittedKeys) -> None:
    """A fresh fast path knows no ids."""
    assert await committed_keys.known(A1, ["e1", "e2"]) == set()


async def test_remembered_ids_are_known_and_only_those_asked(
    committed_keys: CommittedKeys,
) -> None:
    """known answers the subset of the asked ids that were remembered for the tenant."""
    await committed_keys.remember([batch("ws-a", "prj-1", event("e1"), event("e2"), event("e3"))])

    assert await committed_keys.known(A1, ["e2", "e3", "e9"]) == {"e2", "e3"}
    assert await committed_keys.known(A1, ["e1"]) == {"e1"}
    assert await committed_keys.known(A1, []) == set()


async def test_committed_keys_are_scoped_by_workspace_and_project(
    committed_keys: CommittedKeys,
) -> None:
    """An id remembered for one (workspace, project) is unknown to every other."""
    await committed_keys.remember([batch("ws-a", "prj-1", event("shared"), event("only-a1"))])

    assert await committed_keys.known(A1, ["shared", "only-a1"]) == {"shared", "only-a1"}
    assert await committed_keys.known(A2, ["shared", "only-a1"]) == set()
    assert await committed_keys.known(B1, ["shared", "only-a1"]) == set()


async def test_one_remember_covers_batches_of_several_tenants(
    committed_keys: CommittedKeys,
) -> None:
    """remember records each batch's ids under that batch's own tenant."""
    await committed_keys.remember(
        [batch("ws-a", "prj-1", event("x")), batch("ws-b", "prj-1", event("y"))]
    )

    assert await committed_keys.known(A1, ["x", "y"]) == {"x"}
    assert await committed_keys.known(B1, ["x", "y"]) == {"y"}


# QueryCache


async def test_generation_is_stable_until_bumped(query_cache: Timed[QueryCache]) -> None:
    """The generation reads the same until its own workspace is bumped, then changes and holds."""
    cache = query_cache.port
    first = await cache.generation("ws-a")
    assert await cache.generation("ws-a") == first

    await cache.bump(["ws-b"])
    assert await cache.generation("ws-a") == first, "another workspace's bump changed it"

    await cache.bump(["ws-a"])
    bumped = await cache.generation("ws-a")
    assert bumped != first
    assert await cache.generation("ws-a") == bumped


async def test_bumping_raises_the_generation_every_time(query_cache: Timed[QueryCache]) -> None:
    """Each bump makes the workspace's generation strictly larger than before."""
    cache = query_cache.port
    seen = [await cache.generation("ws-a")]
    for _ in range(3):
        await cache.bump(["ws-a"])
        seen.append(await cache.generation("ws-a"))

    assert seen == sorted(set(seen))
    assert len(seen) == 4


async def test_bumps_are_isolated_between_workspaces(query_cache: Timed[QueryCache]) -> None:
    """Bumping some workspaces leaves every other workspace's generation alone."""
    cache = query_cache.port
    before = {ws: await cache.generation(ws) for ws in ("ws-a", "ws-b", "ws-c")}

    await cache.bump({"ws-a", "ws-b"})
    await cache.bump([])

    assert await cache.generation("ws-a") > before["ws-a"]
    assert await cache.generation("ws-b") > before["ws-b"]
    assert await cache.generation("ws-c") == before["ws-c"]


async def test_lookup_reads_the_generation_with_the_answer(query_cache: Timed[QueryCache]) -> None:
    """lookup answers the workspace's generation as `generation` reads it, before and after a bump."""
    cache = query_cache.port
    generation, hit = await cache.lookup("ws-a", "q")
    assert (generation, hit) == (await cache.generation("ws-a"), None)
    assert generation >= 0

    await cache.bump(["ws-a"])

    assert (await cache.lookup("ws-a", "q"))[0] == await cache.generation("ws-a") > generation


async def test_a_cached_answer_comes_back_for_its_workspace_only(
    query_cache: Timed[QueryCache],
) -> None:
    """An answer put for one workspace is returned for it and is a miss for any other."""
    cache = query_cache.port
    generation = await cache.generation("ws-a")
    await cache.put("ws-a", "series:q1", generation, b'{"total":1}', 60)

    assert await cache.lookup("ws-a", "series:q1") == (generation, b'{"total":1}')
    assert (await cache.lookup("ws-b", "series:q1"))[1] is None
    assert (await cache.lookup("ws-a", "series:q2"))[1] is None


async def test_an_answer_is_found_only_at_its_generation(query_cache: Timed[QueryCache]) -> None:
    """Once the workspace is bumped, an answer filed before (or filed late, under the old
    generation, by a computation that raced the bump) is never looked up again."""
    cache = query_cache.port
    old = await cache.generation("ws-a")
    await cache.put("ws-a", "q", old, b"before", 60)

    await cache.bump(["ws-a"])
    await cache.put("ws-a", "q", old, b"raced", 60)
    new, hit = await cache.lookup("ws-a", "q")

    assert new != old
    assert hit is None
    await cache.put("ws-a", "q", new, b"after", 60)
    assert await cache.lookup("ws-a", "q") == (new, b"after")


async def test_answers_of_one_workspace_survive_another_ones_bump(
    query_cache: Timed[QueryCache],
) -> None:
    """Bumping a workspace leaves the answers of every other workspace found."""
    cache = query_cache.port
    generation = await cache.generation("ws-a")
    await cache.put("ws-a", "q", generation, b"kept", 60)

    await cache.bump(["ws-b"])

    assert await cache.lookup("ws-a", "q") == (generation, b"kept")


async def test_putting_an_answer_again_replaces_it(query_cache: Timed[QueryCache]) -> None:
    """A second put under the same workspace, key and generation replaces the value; one with
    no time to live replaces it with nothing."""
    cache = query_cache.port
    generation = await cache.generation("ws-a")
    await cache.put("ws-a", "k", generation, b"old", 60)
    await cache.put("ws-a", "k", generation, b"new", 60)
    assert await cache.lookup("ws-a", "k") == (generation, b"new")

    await cache.put("ws-a", "k", generation, b"newer", 0)
    assert await cache.lookup("ws-a", "k") == (generation, None)


async def test_cached_answers_expire_after_their_ttl(query_cache: Timed[QueryCache]) -> None:
    """An answer is a miss once its time to live has passed; a longer-lived one is still there."""
    cache = query_cache.port
    generation = await cache.generation("ws-a")
    await cache.put("ws-a", "short", generation, b"1", 1)
    await cache.put("ws-a", "long", generation, b"2", 60)

    await query_cache.advance(1.1)

    assert await cache.lookup("ws-a", "short") == (generation, None)
    assert await cache.lookup("ws-a", "long") == (generation, b"2")


# ProjectCache

# A deleted project must stop being answered for within one second; this is "just past" it.
PROJECT_TTL_PASSED = 1.1


def shop(workspace_id: str, project_id: str, dimensions: tuple[str, ...] = ()) -> Project:
    return Project(project_id, workspace_id, "Shop", T0, dimensions)


async def test_a_project_never_remembered_is_not_known(
    project_cache: Timed[ProjectCache],
) -> None:
    """get answers None for a project nobody remembered, in any workspace."""
    assert await project_cache.port.get("ws-a", "p1") is None


async def test_a_remembered_project_comes_back_whole_in_its_workspace_only(
    project_cache: Timed[ProjectCache],
) -> None:
    """A project remembered for one workspace comes back as it was (its dimensions with it)
    there, not under another workspace."""
    cache = project_cache.port
    await cache.remember(shop("ws-a", "p1", ("plan", "context.page.path")))

    assert await cache.get("ws-a", "p1") == shop("ws-a", "p1", ("plan", "context.page.path"))
    assert await cache.get("ws-b", "p1") is None
    assert await cache.get("ws-a", "p2") is None


async def test_remembering_a_project_again_replaces_it(
    project_cache: Timed[ProjectCache],
) -> None:
    cache = project_cache.port
    await cache.remember(shop("ws-a", "p1", ("plan",)))
    await cache.remember(shop("ws-a", "p1", ()))

    assert await cache.get("ws-a", "p1") == shop("ws-a", "p1", ())


async def test_a_forgotten_project_is_unknown_at_once(
    project_cache: Timed[ProjectCache],
) -> None:
    cache = project_cache.port
    await cache.remember(shop("ws-a", "p1"))
    await cache.remember(shop("ws-a", "p2"))
    await cache.forget("ws-a", "p1")
    await cache.forget("ws-b", "never-remembered")

    assert await cache.get("ws-a", "p1") is None
    assert await cache.get("ws-a", "p2") == shop("ws-a", "p2")


async def test_a_remembered_project_is_forgotten_within_a_second(
    project_cache: Timed[ProjectCache],
) -> None:
    """Just past one second after it was last remembered, a project is no longer known."""
    cache = project_cache.port
    await cache.remember(shop("ws-a", "p1"))

    await project_cache.advance(PROJECT_TTL_PASSED)

    assert await cache.get("ws-a", "p1") is None


async def test_a_membership_nobody_remembered_has_no_role(
    membership_cache: Timed[MembershipCache],
) -> None:
    assert await membership_cache.port.role("ws-a", "u1") is None


async def test_a_remembered_role_is_the_memberships_only(
    membership_cache: Timed[MembershipCache],
) -> None:
    """A role remembered for (workspace, user) is answered there, not for another pair."""
    cache = membership_cache.port
    await cache.remember("ws-a", "u1", Role.ADMIN)
    await cache.remember("ws-b", "u1", Role.VIEWER)

    assert await cache.role("ws-a", "u1") is Role.ADMIN
    assert await cache.role("ws-b", "u1") is Role.VIEWER
    assert await cache.role("ws-a", "u2") is None


async def test_a_forgotten_role_is_gone_at_once(membership_cache: Timed[MembershipCache]) -> None:
    cache = membership_cache.port
    await cache.remember("ws-a", "u1", Role.OWNER)
    await cache.forget("ws-a", "u1")
    await cache.forget("ws-a", "never-remembered")

    assert await cache.role("ws-a", "u1") is None


async def test_a_remembered_role_ends_within_a_second(
    membership_cache: Timed[MembershipCache],
) -> None:
    """Just past one second after it was remembered, a role is asked of the store again."""
    cache = membership_cache.port
    await cache.remember("ws-a", "u1", Role.ADMIN)

    await membership_cache.advance(PROJECT_TTL_PASSED)

    assert await cache.role("ws-a", "u1") is None
