"""The live view's contracts: the publisher with the watch that feeds an API process's hub, and
the stream ticket store. Every implementation (in process; Redis) passes the same tests."""

from __future__ import annotations

from datetime import timedelta

from eventcore.live import Dropped, LiveEvent, Subscription, Ticket, ticket_hash
from eventcore.ports import TicketStore
from eventcore.tenancy import ProjectRef, Role
from tests.contract.implementations import LiveKit, Timed
from tests.contract.support import T0, batch, event

WEB = ProjectRef("ws-a", "web")
APP = ProjectRef("ws-a", "app")
THEIRS = ProjectRef("ws-b", "web")
# Within a second of the commit, the promise the live view makes.
WITHIN = 1.0


async def received(subscription: Subscription, count: int) -> list[str]:
    """The ids of the next ``count`` events the subscription gets, each within WITHIN."""
    ids = []
    for _ in range(count):
        item = await subscription.next(WITHIN)
        assert isinstance(item, LiveEvent), item
        ids.append(item.event.id)
    return ids


async def watching(live: LiveKit, ref: ProjectRef, event_type: str | None = None) -> Subscription:
    subscription = live.hub.subscribe(ref, event_type)
    await live.watch.watch(ref)
    return subscription


async def test_a_project_nobody_watches_is_not_watched(live: LiveKit) -> None:
    """Before any subscription, no project is watched, and publishing to it raises nothing."""
    assert await live.publisher.watched({WEB, THEIRS}) == frozenset()
    await live.publisher.publish([batch(WEB.workspace_id, WEB.project_id, event("e1"))])


async def test_a_watched_project_is_watched_and_no_other(live: LiveKit) -> None:
    """Once an API process watches a project, the publisher says so for it alone."""
    await watching(live, WEB)

    assert await live.publisher.watched({WEB, APP, THEIRS}) == frozenset({WEB})


async def test_published_events_reach_their_projects_subscribers_in_order(live: LiveKit) -> None:
    """Every event published for the project reaches each of its subscribers, in order."""
    first = await watching(live, WEB)
    second = await watching(live, WEB)
    await live.publisher.publish(
        [
            batch(WEB.workspace_id, WEB.project_id, event("e1"), event("e2")),
            batch(WEB.workspace_id, WEB.project_id, event("e3"), received_at=T0 + timedelta(1)),
        ]
    )
    await live.publisher.publish([batch(WEB.workspace_id, WEB.project_id, event("e4"))])

    assert await received(first, 4) == ["e1", "e2", "e3", "e4"]
    assert await received(second, 4) == ["e1", "e2", "e3", "e4"]


async def test_a_subscriber_hears_nothing_of_another_project_or_workspace(live: LiveKit) -> None:
    """Events of another project of the workspace, or of another workspace's project of the
    same id, never reach a subscriber; its own do, with their receipt time."""
    mine = await watching(live, WEB)
    await watching(live, APP)
    await watching(live, THEIRS)
    await live.publisher.publish(
        [
            batch(APP.workspace_id, APP.project_id, event("app-1")),
            batch(THEIRS.workspace_id, THEIRS.project_id, event("theirs-1")),
            batch(WEB.workspace_id, WEB.project_id, event("mine-1")),
        ]
    )

    item = await mine.next(WITHIN)
    assert isinstance(item, LiveEvent)
    assert (item.event.id, item.received_at) == ("mine-1", T0)
    assert await mine.next(0.3) is None


async def test_an_event_type_filter_passes_only_that_type(live: LiveKit) -> None:
    """A subscription of one event type receives only events of that type."""
    clicks = await watching(live, WEB, "click")
    await live.publisher.publish(
        [batch(WEB.workspace_id, WEB.project_id, event("v1", "view"), event("c1", "click"))]
    )

    assert await received(clicks, 1) == ["c1"]
    assert await clicks.next(0.3) is None


async def test_a_full_buffer_drops_and_says_how_many(live: LiveKit) -> None:
    """A subscriber that reads nothing keeps the first events its buffer holds, then a notice
    of how many it lost, then what came after it read again."""
    subscription = await watching(live, WEB)
    capacity = 1000
    events = [event(f"e{n}") for n in range(capacity + 5)]
    await live.publisher.publish([batch(WEB.workspace_id, WEB.project_id, *events)])

    assert len(await received(subscription, capacity)) == capacity
    notice = await subscription.next(WITHIN)
    assert notice == Dropped(5)
    await live.publisher.publish([batch(WEB.workspace_id, WEB.project_id, event("after"))])
    assert await received(subscription, 1) == ["after"]


# TicketStore


def ticket(project_id: str = "web") -> Ticket:
    return Ticket("user-1", "ws-a", Role.VIEWER, project_id, T0, T0 + timedelta(hours=1))


async def test_a_ticket_is_taken_once(tickets: Timed[TicketStore]) -> None:
    """A ticket put comes back whole from the first take, and from no other."""
    store = tickets.port
    await store.put(ticket_hash("secret-1"), ticket(), 30)

    assert await store.take(ticket_hash("secret-1")) == ticket()
    assert await store.take(ticket_hash("secret-1")) is None


async def test_an_unknown_ticket_is_none(tickets: Timed[TicketStore]) -> None:
    """A hash never put finds nothing, and takes nothing from another ticket."""
    store = tickets.port
    await store.put(ticket_hash("secret-1"), ticket("web"), 30)

    assert await store.take(ticket_hash("secret-2")) is None
    assert await store.take(ticket_hash("secret-1")) == ticket("web")


async def test_a_ticket_past_its_time_is_gone(tickets: Timed[TicketStore]) -> None:
    """Once its time to live has passed, a ticket cannot be taken."""
    store = tickets.port
    await store.put(ticket_hash("short"), ticket(), 0.5)
    await store.put(ticket_hash("long"), ticket("app"), 30)
    await tickets.advance(0.7)

    assert await store.take(ticket_hash("short")) is None
    assert await store.take(ticket_hash("long")) == ticket("app")
