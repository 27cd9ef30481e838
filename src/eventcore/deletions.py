"""Deletion of stored events: which events a request takes, and what stays known of them.

A deletion names a project and any of: persons (``user_ids``: an event matches when its
``user_id`` or its ``anonymous_id`` is one of them), event ids, and a time range [start, end) of
the events' timestamps. An event is deleted when it matches every criterion given (their
intersection); a request must give at least one.

An event accepted before a deletion was requested but committed after it (it was still in the
queue) is withheld by the store's append (:func:`withheld`): not stored, its id kept as deleted.

A request with ``suppress`` also suppresses its persons (:mod:`eventcore.suppressions`): their
later events are refused at ingest and never stored, until the suppression is lifted.

A deleted event is gone from every answer (listing, export, analytics), but its id stays known
to the store as deleted (a tombstone: the id, nothing of its content): an append of the same id
again, a client's resend or a queue's redelivery, is a duplicate and is never stored again.
The counts, sketches and tallies of the buckets it leaves are made again from the events that
remain (a sketch cannot forget one person).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

import msgspec

from eventcore.events import Event, StoredEvent


class EventSelector(msgspec.Struct, frozen=True):
    """The events of one project a deletion takes: those matching every criterion given."""

    user_ids: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None

    def is_empty(self) -> bool:
        return not (self.user_ids or self.event_ids or self.start or self.end)

    @property
    def ids_only(self) -> bool:
        """Whether this selector names event ids and nothing else: then every event with one of
        them is taken, whenever it is received, and the stores keep the ids as deleted from the
        request on (a resend of one, committed before the original still queued, is a
        duplicate like the original)."""
        return bool(self.event_ids) and not (self.user_ids or self.start or self.end)

    def matches(self, event: Event | StoredEvent) -> bool:
        """Whether ``event`` is one this selector takes (the reference the stores follow)."""
        if self.user_ids and not (
            event.user_id in self.user_ids or event.anonymous_id in self.user_ids
        ):
            return False
        if self.event_ids and event.id not in self.event_ids:
            return False
        if self.start is not None and event.timestamp < self.start:
            return False
        return self.end is None or event.timestamp < self.end


def taken(selector: EventSelector, events: Iterable[StoredEvent]) -> list[StoredEvent]:
    return [event for event in events if selector.matches(event)]


class DeletionStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Deletion(msgspec.Struct, frozen=True):
    """A deletion request and how far it has got. ``events_deleted`` grows as it runs;
    with ``suppress``, its persons (``selector.user_ids``) were suppressed with it."""

    id: str
    workspace_id: str
    project_id: str
    selector: EventSelector
    status: DeletionStatus
    requested_at: datetime
    requested_by: str | None
    events_deleted: int = 0
    completed_at: datetime | None = None
    error: str | None = None
    suppress: bool = False

    @property
    def open(self) -> bool:
        return self.status in (DeletionStatus.PENDING, DeletionStatus.RUNNING)


def withheld(deletions: Iterable[Deletion], received_at: datetime, event: Event) -> bool:
    """Whether a deletion of the event's project requested at or after the event was received
    takes it: an append then stores it as deleted (its id alone), not as an event."""
    return any(d.requested_at >= received_at and d.selector.matches(event) for d in deletions)
