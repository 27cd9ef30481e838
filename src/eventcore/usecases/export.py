"""Export: a project's stored events, oldest first, page by page.

An export reads its window in pages of :data:`~eventcore.defaults.EXPORT_PAGE` events, each page
a query of its own that starts strictly after the last event of the one before (by
(timestamp, seq), the store's order): whatever the window holds, a reader holds one page at a
time, and no database transaction stays open between pages. Each stored event of the window is
read once. An event committed while the export runs is in it if its place in that order is
still ahead of the export's position (an event stamped earlier than the position, a late
arrival, is not): an export of a window that ended some minutes ago holds every event of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import msgspec

from eventcore.defaults import EXPORT_PAGE
from eventcore.errors import InvalidRequest
from eventcore.events import EARLIEST, LATEST, EventCursor, StoredEvent
from eventcore.ports import EventStore


class ExportWindow(msgspec.Struct, frozen=True):
    """The events an export holds: timestamps in [start, end), of ``event_type`` or of any."""

    start: datetime = EARLIEST
    end: datetime = LATEST
    event_type: str | None = None

    @classmethod
    def of(
        cls,
        start: datetime | None = None,
        end: datetime | None = None,
        event_type: str | None = None,
    ) -> ExportWindow:
        """The window, checked: a 400 naming the parameter that is wrong."""
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.tzinfo is None:
                raise InvalidRequest(
                    f"`{name}` needs a time zone offset (RFC 3339).", code="invalid_query"
                )
        window = cls(start or EARLIEST, end or LATEST, event_type)
        if window.start >= window.end:
            raise InvalidRequest("`start` must be before `end`.", code="invalid_query")
        if event_type == "":
            raise InvalidRequest(
                "`event_type` must not be empty: leave it out for every type.",
                code="invalid_query",
            )
        return window


async def event_pages(
    store: EventStore,
    workspace_id: str,
    project_id: str,
    window: ExportWindow,
    page: int = EXPORT_PAGE,
) -> AsyncIterator[list[StoredEvent]]:
    """The window's stored events, oldest first, in pages of at most ``page`` (none empty)."""
    after: EventCursor | None = None
    while True:
        events = await store.export_events(
            workspace_id,
            project_id,
            window.start,
            window.end,
            limit=page,
            event_type=window.event_type,
            after=after,
        )
        if events:
            yield events
        if len(events) < page:
            return
        last = events[-1]
        after = EventCursor(last.timestamp, last.seq)
