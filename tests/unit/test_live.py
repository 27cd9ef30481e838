"""The live view's core: the hub's buffers, drops, limits and closing; which events a commit
publishes; and the stream tickets, over the in-memory adapters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory import build_memory_platform
from eventcore.errors import AuthenticationFailed, NotFound, PermissionDenied, RateLimited
from eventcore.events import Event, IngestBatch
from eventcore.idempotency import IdempotencyKey
from eventcore.live import Dropped, LiveEvent, LiveHub, Subscription, stored_batches
from eventcore.platform import Platform
from eventcore.ports import AppendResult
from eventcore.tenancy import Principal, ProjectRef
from tests.contract.support import T0, batch, event

WEB = ProjectRef("ws-a", "web")
APP = ProjectRef("ws-a", "app")
PASSWORD = "correct horse battery staple"


def ids(items: Sequence[object]) -> list[object]:
    return [i.event.id if isinstance(i, LiveEvent) else i for i in items]


async def drain(subscription: Subscription) -> list[LiveEvent | Dropped]:
    items = []
    while (item := await subscription.next(0)) is not None:
        items.append(item)
    return items


# The hub


async def test_a_slow_subscriber_loses_what_does_not_fit_and_learns_where() -> None:
    """Past its buffer a subscriber keeps the events it holds, and one notice stands where the
    events it lost were, counting them; what comes after it read again arrives after it."""
    hub = LiveHub(buffer_events=3)
    slow = hub.subscribe(WEB)
    hub.deliver([batch(WEB.workspace_id, WEB.project_id, *(event(f"e{n}") for n in range(5)))])
    hub.deliver([batch(WEB.workspace_id, WEB.project_id, event("e5"))])

    first = await slow.next(0)
    hub.deliver([batch(WEB.workspace_id, WEB.project_id, event("e6"))])

    assert ids([first, *await drain(slow)]) == ["e0", "e1", "e2", Dropped(3), "e6"]


async def test_a_slow_subscriber_does_not_hold_back_another() -> None:
    """One subscriber's full buffer costs another subscriber of the project nothing."""
    hub = LiveHub(buffer_events=2)
    slow, quick = hub.subscribe(WEB), hub.subscribe(WEB)
    for n in range(4):
        hub.deliver([batch(WEB.workspace_id, WEB.project_id, event(f"e{n}"))])
        assert ids([await quick.next(0)]) == [f"e{n}"]

    assert ids(await drain(slow)) == ["e0", "e1", Dropped(2)]


async def test_each_subscriber_gets_its_own_project_and_type() -> None:
    """Events go to the subscribers of their project only, filtered by type when asked."""
    hub = LiveHub()
    web, clicks, app = hub.subscribe(WEB), hub.subscribe(WEB, "click"), hub.subscribe(APP)
    hub.deliver(
        [
            batch(WEB.workspace_id, WEB.project_id, event("v", "view"), event("c", "click")),
            batch("ws-b", "web", event("theirs")),
        ]
    )

    assert ids(await drain(web)) == ["v", "c"]
    assert ids(await drain(clicks)) == ["c"]
    assert await drain(app) == []


async def test_a_workspace_has_at_most_its_streams() -> None:
    """Past the bound a new stream of the workspace is refused (429 too_many_streams); one
    closed makes room, and another workspace is not affected."""
    hub = LiveHub(streams_per_workspace=2)
    first = hub.subscribe(WEB)
    hub.subscribe(APP)
    with pytest.raises(RateLimited) as refused:
        hub.subscribe(WEB)
    assert refused.value.code == "too_many_streams"
    hub.subscribe(ProjectRef("ws-b", "web"))

    assert hub.unsubscribe(first) is True
    hub.subscribe(WEB)


async def test_unsubscribing_says_whether_it_was_the_projects_last() -> None:
    """The hub watches a project while it has a subscriber, and says when the last one goes."""
    hub = LiveHub()
    one, two = hub.subscribe(WEB), hub.subscribe(WEB)

    assert hub.unsubscribe(one) is False
    assert hub.watching(WEB)
    assert hub.unsubscribe(two) is True
    assert not hub.watching(WEB)
    assert hub.unsubscribe(two) is False


async def test_closing_the_hub_ends_every_stream_and_any_new_one() -> None:
    """A stopping process's streams end: a waiting reader returns at once, closed."""
    hub = LiveHub()
    open_one = hub.subscribe(WEB)
    hub.close()
    later = hub.subscribe(APP)

    assert await open_one.next(5) is None
    assert open_one.closed
    assert later.closed


async def test_a_reader_with_nothing_to_read_waits_then_returns_none() -> None:
    """next() without events returns None after its wait, without closing."""
    subscription = LiveHub().subscribe(WEB)

    assert await subscription.next(0.01) is None
    assert not subscription.closed


# What a commit publishes


def test_stored_batches_are_the_stored_events_in_commit_order() -> None:
    """The stored keys pick, in their order, the first event of each id from the batches, with
    its batch's receipt time; events not stored and projects not asked for are left out."""
    later = T0 + timedelta(seconds=1)
    batches = [
        batch("ws", "web", event("a", "x"), event("b"), event("a", "y")),
        batch("ws", "web", event("c"), received_at=later),
        batch("ws", "app", event("d")),
    ]
    stored = [IdempotencyKey("ws", "web", i) for i in ("a", "c")] + [
        IdempotencyKey("ws", "app", "d")
    ]

    published = stored_batches(batches, stored, [ProjectRef("ws", "web")])

    assert [
        (b.project_id, b.received_at, [(e.id, e.type) for e in b.events]) for b in published
    ] == [
        ("web", T0, [("a", "x")]),
        ("web", later, [("c", "page_view")]),
    ]


class ListingStore:
    """A memory store that records, for each append, whether it was asked to list its rows."""

    def __init__(self, platform_store: object) -> None:
        self.inner = platform_store
        self.listed: list[bool] = []

    async def append(self, batches: Sequence[IngestBatch], *, listed: bool = False) -> AppendResult:
        self.listed.append(listed)
        return await self.inner.append(batches, listed=listed)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def signed_up(platform: Platform) -> tuple[Principal, str]:
    token = (await platform.accounts.signup("owner@example.com", PASSWORD, "Acme")).access_token
    principal = platform.accounts.authenticate(token)
    project = await platform.accounts.create_project(principal, "web")
    return principal, project.id


async def test_a_commit_nobody_watches_lists_nothing_and_a_watched_one_publishes() -> None:
    """The append is asked for its stored rows only while the project has a subscriber; the
    subscriber then gets exactly the stored events (no duplicate), in order."""
    from eventcore.adapters.memory import MemoryStore

    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    store = ListingStore(MemoryStore(clock))
    platform = build_memory_platform(clock, store=store)
    me, project_id = await signed_up(platform)
    tenant = ProjectRef(me.workspace_id, project_id)

    await platform.ingestor.submit(tenant, [{"id": "e1", "type": "a"}])
    subscription = await platform.live.open(me, project_id, None)
    await platform.ingestor.submit(
        tenant, [{"id": "e1", "type": "a"}, {"id": "e2", "type": "b"}, {"id": "e3", "type": "c"}]
    )
    received = ids(await drain(subscription))
    await platform.live.close(subscription)
    await platform.ingestor.submit(tenant, [{"id": "e4", "type": "a"}])

    assert store.listed == [False, True, False]
    assert received == ["e2", "e3"]
    assert subscription.closed


async def test_a_watched_commit_reaches_the_subscriber() -> None:
    """Events submitted while a stream is open arrive on it, duplicates left out."""
    platform = build_memory_platform(ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC)))
    me, project_id = await signed_up(platform)
    tenant = ProjectRef(me.workspace_id, project_id)
    await platform.ingestor.submit(tenant, [{"id": "old", "type": "a"}])
    subscription = await platform.live.open(me, project_id, None)

    await platform.ingestor.submit(
        tenant, [{"id": "old", "type": "a"}, {"id": "new", "type": "b", "properties": {"k": 1}}]
    )

    [item] = await drain(subscription)
    assert isinstance(item, LiveEvent)
    assert isinstance(item.event, Event)
    assert (item.event.id, bytes(item.event.properties)) == ("new", b'{"k":1}')


# Tickets


async def test_a_ticket_opens_one_stream_once_within_its_time() -> None:
    """A ticket is redeemed once, for its project, as its user; used again, too late, or for
    another project it is refused."""
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    platform = build_memory_platform(clock)
    me, project_id = await signed_up(platform)
    other = (await platform.accounts.create_project(me, "app")).id

    issued = await platform.live.issue_ticket(me, project_id, None)
    assert len(issued.ticket) >= 22  # at least 128 bits, URL-safe
    assert issued.expires_at == clock.now() + timedelta(seconds=30)
    principal, _ = await platform.live.redeem(issued.ticket, project_id)
    assert principal == me
    with pytest.raises(AuthenticationFailed) as reused:
        await platform.live.redeem(issued.ticket, project_id)
    assert reused.value.code == "invalid_ticket"

    late = await platform.live.issue_ticket(me, project_id, None)
    clock.advance(31)
    with pytest.raises(AuthenticationFailed):
        await platform.live.redeem(late.ticket, project_id)

    elsewhere = await platform.live.issue_ticket(me, project_id, None)
    with pytest.raises(PermissionDenied) as mismatch:
        await platform.live.redeem(elsewhere.ticket, other)
    assert mismatch.value.code == "ticket_mismatch"


async def test_tickets_are_random_and_only_for_a_readable_project() -> None:
    """Two tickets differ; none is issued for a project of another workspace (404)."""
    platform = build_memory_platform(ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC)))
    me, project_id = await signed_up(platform)
    stranger = Principal(me.user_id, "another-workspace", me.role)

    one = await platform.live.issue_ticket(me, project_id, None)
    two = await platform.live.issue_ticket(me, project_id, None)
    assert one.ticket != two.ticket
    with pytest.raises(NotFound):
        await platform.live.issue_ticket(stranger, project_id, None)


async def test_a_ticket_stream_ends_when_its_token_would() -> None:
    """The stream a ticket opened is refused from the session's end on."""
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    platform = build_memory_platform(clock)
    me, project_id = await signed_up(platform)
    ends = clock.now() + timedelta(seconds=60)
    issued = await platform.live.issue_ticket(me, project_id, None, session_ends_at=ends)
    principal, ends_at = await platform.live.redeem(issued.ticket, project_id)
    assert ends_at == ends

    await platform.live.current(principal, project_id, ends_at=ends_at)
    clock.advance(60)
    with pytest.raises(AuthenticationFailed) as expired:
        await platform.live.current(principal, project_id, ends_at=ends_at)
    assert expired.value.code == "token_expired"
