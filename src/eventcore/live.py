"""The live view: each process's subscribers to the events its projects store, and their tickets.

A :class:`LiveHub` holds one process's open streams. Whatever stores events (the inline queue of
the embedded profile, or a worker through a shared channel) hands the hub each commit's stored
events after the commit, and the hub puts them into the buffer of every subscriber of their
project, at once and without waiting for anyone: a subscriber whose buffer is full loses the
events that do not fit and, where they would have been, finds a :class:`Dropped` notice with
their number. A slow reader therefore never slows a commit or another reader.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

import msgspec

from eventcore.defaults import LIVE_BUFFER_EVENTS, LIVE_STREAMS_PER_WORKSPACE
from eventcore.errors import RateLimited
from eventcore.events import Event, IngestBatch
from eventcore.idempotency import IdempotencyKey
from eventcore.tenancy import ProjectRef, Role


class LiveEvent(msgspec.Struct, frozen=True):
    """One stored event as a subscriber receives it: the event and when it was received."""

    event: Event
    received_at: datetime


class Dropped(msgspec.Struct):
    """``count`` events the subscriber's full buffer could not take at this point of the stream."""

    count: int


class Ticket(msgspec.Struct, frozen=True):
    """What a stream ticket stands for: a user's right to open one stream of one project, until
    ``expires_at``; the stream it opens ends at ``ends_at`` at the latest (when the access token
    it was issued for expires)."""

    user_id: str
    workspace_id: str
    role: Role
    project_id: str
    expires_at: datetime
    ends_at: datetime


def ticket_hash(secret: str) -> str:
    """The SHA-256 a ticket is kept under: the secret itself is stored nowhere."""
    return hashlib.sha256(secret.encode()).hexdigest()


def stored_batches(
    batches: Sequence[IngestBatch],
    stored: Sequence[IdempotencyKey],
    projects: Iterable[ProjectRef] | None = None,
) -> list[IngestBatch]:
    """The events an append stored (``stored``, in commit order), as batches of one project
    each in that order, with the time each was received: of the ``projects`` given, or of all.

    Of two events of one id in ``batches`` the first is the one an append keeps."""
    wanted = None if projects is None else set(projects)
    found: dict[IdempotencyKey, tuple[Event, IngestBatch]] = {}
    for batch in batches:
        if wanted is not None and ProjectRef(batch.workspace_id, batch.project_id) not in wanted:
            continue
        for event in batch.events:
            found.setdefault(
                IdempotencyKey(batch.workspace_id, batch.project_id, event.id), (event, batch)
            )
    out: list[IngestBatch] = []
    for key in stored:
        hit = found.get(key)
        if hit is None:
            continue
        event, batch = hit
        last = out[-1] if out else None
        if last is not None and (last.workspace_id, last.project_id, last.received_at) == (
            batch.workspace_id,
            batch.project_id,
            batch.received_at,
        ):
            last.events.append(event)
        else:
            out.append(
                IngestBatch(batch.workspace_id, batch.project_id, batch.received_at, [event])
            )
    return out


class Subscription:
    """One stream's buffer: the project's stored events (of ``event_type``, or of every type)
    in commit order, at most ``capacity`` of them waiting, with a :class:`Dropped` notice where
    events were lost. Read with :meth:`next`; :meth:`close` ends it (the hub's closing too)."""

    def __init__(self, ref: ProjectRef, event_type: str | None, capacity: int) -> None:
        self.ref = ref
        self.event_type = event_type
        self._capacity = capacity
        self._items: deque[LiveEvent | Dropped] = deque()
        self._waiting = 0
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, batch: IngestBatch) -> None:
        for event in batch.events:
            if self.event_type is not None and event.type != self.event_type:
                continue
            if self._waiting < self._capacity:
                self._items.append(LiveEvent(event, batch.received_at))
                self._waiting += 1
            elif self._items and isinstance(self._items[-1], Dropped):
                self._items[-1].count += 1
            else:
                self._items.append(Dropped(1))
        if self._items:
            self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self, wait: float) -> LiveEvent | Dropped | None:
        """The next event or drop notice, waiting at most ``wait`` seconds; None if nothing
        came, or once the subscription is closed (see :attr:`closed`)."""
        if not self._items and not self.closed:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except TimeoutError:
                return None
        if self.closed or not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item, LiveEvent):
            self._waiting -= 1
        return item


class LiveHub:
    """One process's subscribers, by project: at most ``streams_per_workspace`` streams of one
    workspace at a time, each with a buffer of ``buffer_events``."""

    def __init__(
        self,
        *,
        streams_per_workspace: int = LIVE_STREAMS_PER_WORKSPACE,
        buffer_events: int = LIVE_BUFFER_EVENTS,
    ) -> None:
        self._limit = streams_per_workspace
        self._capacity = buffer_events
        self._by_project: dict[ProjectRef, set[Subscription]] = {}
        self._per_workspace: dict[str, int] = {}
        self._closing = False

    def subscribe(self, ref: ProjectRef, event_type: str | None = None) -> Subscription:
        """A new subscription of the project; RateLimited ``too_many_streams`` if the
        workspace has its most streams open (in this process)."""
        if self._per_workspace.get(ref.workspace_id, 0) >= self._limit:
            raise RateLimited(
                f"This workspace has {self._limit} live streams open, the most it may: close"
                " one first.",
                retry_after=1.0,
                code="too_many_streams",
            )
        subscription = Subscription(ref, event_type, self._capacity)
        if self._closing:
            subscription.close()
        self._by_project.setdefault(ref, set()).add(subscription)
        self._per_workspace[ref.workspace_id] = self._per_workspace.get(ref.workspace_id, 0) + 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> bool:
        """Forget it (closing it); whether it was the project's last subscription here."""
        subscription.close()
        ref = subscription.ref
        subscribers = self._by_project.get(ref)
        if subscribers is None or subscription not in subscribers:
            return False
        subscribers.discard(subscription)
        left = self._per_workspace[ref.workspace_id] - 1
        if left:
            self._per_workspace[ref.workspace_id] = left
        else:
            del self._per_workspace[ref.workspace_id]
        if subscribers:
            return False
        del self._by_project[ref]
        return True

    def watching(self, ref: ProjectRef) -> bool:
        return ref in self._by_project

    def projects(self) -> frozenset[ProjectRef]:
        """The projects that have a subscriber here."""
        return frozenset(self._by_project)

    def deliver(self, batches: Iterable[IngestBatch]) -> None:
        """Hand every subscriber of each batch's project its events (after their commit)."""
        for batch in batches:
            subscribers = self._by_project.get(ProjectRef(batch.workspace_id, batch.project_id))
            if subscribers:
                for subscription in subscribers:
                    subscription.offer(batch)

    def close(self) -> None:
        """End every stream (the process is stopping), and any opened from now on."""
        self._closing = True
        for subscribers in self._by_project.values():
            for subscription in subscribers:
                subscription.close()


class InProcessLive:
    """A LivePublisher and a LiveWatch for a process whose own commits are all its subscribers
    see (the embedded profile): what is published goes to the hub at once."""

    def __init__(self, hub: LiveHub) -> None:
        self._hub = hub

    async def watched(self, projects: Collection[ProjectRef]) -> frozenset[ProjectRef]:
        return frozenset(ref for ref in projects if self._hub.watching(ref))

    async def publish(self, batches: Sequence[IngestBatch]) -> None:
        self._hub.deliver(batches)

    async def watch(self, ref: ProjectRef) -> None:
        """Nothing to do: the commits are this process's own."""

    async def unwatch(self, ref: ProjectRef) -> None:
        """Nothing to do: the commits are this process's own."""
