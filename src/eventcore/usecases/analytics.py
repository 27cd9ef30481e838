"""Analytics: counts over time, event-type totals and the event list, for one workspace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import msgspec

from eventcore.aggregation import (
    CountSeries,
    EventTypeTotals,
    Granularity,
    Window,
    make_window,
    roll_up,
)
from eventcore.defaults import ANALYTICS_CACHE_SECONDS, DEFAULT_PAGE, MAX_PAGE
from eventcore.errors import InvalidRequest, NotFound
from eventcore.events import EventCursor, StoredEvent
from eventcore.ports import AccountStore, Clock, EventStore, QueryCache
from eventcore.tenancy import Permission, Principal

T = TypeVar("T")


class EventPage(msgspec.Struct, frozen=True):
    events: list[StoredEvent]
    next_cursor: str | None


class Analytics:
    """Reads come from the count tables through a cache keyed by the workspace's generation.

    An answer is filed under the generation read before it was computed, and whoever changes a
    workspace's counts (the processor after each commit, a rebuild) bumps its generation after,
    so once the bump has landed no reader is answered from before the change. What holds
    exactly: a cached answer is served at most ``cache_ttl`` seconds after it was computed; it
    can be staler than the data between a commit and its bump, and until the TTL ends if the
    bump never lands (the cache was away and the committing process ended before a later bump
    carried it). While the cache cannot be read (a Redis outage), every answer is computed
    fresh from the count tables.
    """

    def __init__(
        self,
        accounts: AccountStore,
        events: EventStore,
        cache: QueryCache,
        clock: Clock,
        cache_ttl: float = ANALYTICS_CACHE_SECONDS,
    ) -> None:
        self._accounts = accounts
        self._events = events
        self._cache = cache
        self._clock = clock
        self._ttl = cache_ttl

    async def _check(self, principal: Principal, project_id: str) -> None:
        principal.require(Permission.READ_ANALYTICS)
        if await self._accounts.get_project(principal.workspace_id, project_id) is None:
            raise NotFound("No such project.")

    async def counts(
        self,
        principal: Principal,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        granularity: Granularity = Granularity.HOUR,
        event_type: str | None = None,
    ) -> CountSeries:
        await self._check(principal, project_id)
        window = make_window(start, end, granularity, now=self._clock.now())
        key = _key("counts", project_id, window, "*" if event_type is None else "=" + event_type)
        return await self._cached(
            principal.workspace_id,
            key,
            CountSeries,
            lambda: self._count_series(principal.workspace_id, project_id, window, event_type),
        )

    async def _count_series(
        self, workspace_id: str, project_id: str, window: Window, event_type: str | None
    ) -> CountSeries:
        grain = window.granularity
        stored = grain.stored_as
        points = await self._events.count_series(
            workspace_id, project_id, stored, window.start, window.end, event_type
        )
        if grain is not stored.granularity:
            points = roll_up(points, grain)
        return CountSeries(
            project_id=project_id,
            granularity=grain,
            start=window.start,
            end=window.end,
            total=sum(point.count for point in points),
            series=points,
        )

    async def event_types(
        self,
        principal: Principal,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> EventTypeTotals:
        await self._check(principal, project_id)
        window = make_window(start, end, Granularity.HOUR, now=self._clock.now())
        key = _key("types", project_id, window, "")
        return await self._cached(
            principal.workspace_id,
            key,
            EventTypeTotals,
            lambda: self._event_types(principal.workspace_id, project_id, window),
        )

    async def _event_types(
        self, workspace_id: str, project_id: str, window: Window
    ) -> EventTypeTotals:
        totals = await self._events.event_type_totals(
            workspace_id, project_id, window.start, window.end
        )
        return EventTypeTotals(totals)

    async def _cached(
        self, workspace_id: str, key: str, kind: type[T], compute: Callable[[], Awaitable[T]]
    ) -> T:
        # The generation is read before computing: an answer that races a commit is filed under
        # the old generation, which no reader asks for once the commit has bumped it.
        full_key = f"{key}|{await self._cache.generation(workspace_id)}"
        hit = await self._cache.get(workspace_id, full_key)
        if hit is not None:
            try:
                return msgspec.json.decode(hit, type=kind)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
        value = await compute()
        await self._cache.put(workspace_id, full_key, msgspec.json.encode(value), self._ttl)
        return value

    async def list_events(
        self,
        principal: Principal,
        project_id: str,
        *,
        event_type: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> EventPage:
        await self._check(principal, project_id)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"`limit` must be 1 to {MAX_PAGE}.", code="invalid_query")
        before = EventCursor.decode(cursor) if cursor else None
        rows = await self._events.list_events(
            principal.workspace_id,
            project_id,
            limit=limit + 1,
            event_type=event_type,
            before=before,
        )
        next_cursor = EventCursor.after(rows[limit - 1]).encode() if len(rows) > limit else None
        return EventPage(rows[:limit], next_cursor)


def _key(kind: str, project_id: str, window: Window, extra: str) -> str:
    return "|".join(
        (
            kind,
            project_id,
            window.granularity.value,
            window.start.isoformat(),
            window.end.isoformat(),
            extra,
        )
    )
