"""Analytics: counts over time, event-type totals and the event list, for one workspace."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import msgspec

from eventcore.aggregation import (
    CountSeries,
    EventTypeTotals,
    Granularity,
    Window,
    make_window,
    roll_up,
)
from eventcore.cursors import CursorCodec, CursorScope
from eventcore.defaults import (
    ANALYTICS_CACHE_SECONDS,
    DEFAULT_BREAKDOWN_LIMIT,
    DEFAULT_PAGE,
    MAX_BREAKDOWN_LIMIT,
    MAX_PAGE,
    MAX_RAW_EVENTS,
)
from eventcore.dimensions import (
    Breakdown,
    FilteredEvent,
    Where,
    breakdown_of_events,
    breakdown_of_totals,
    count_points,
    exact_user_series,
    parse_where,
)
from eventcore.errors import InvalidRequest, NotFound
from eventcore.events import EventCursor, StoredEvent
from eventcore.funnels import FunnelQuery, FunnelResult, StepRule, funnel_counts
from eventcore.persons import UserSeries, window_user_series
from eventcore.ports import AccountStore, Clock, EventStore, ProjectCache, QueryCache
from eventcore.tenancy import Permission, Principal, Project
from eventcore.usecases.export import ExportWindow, event_pages

T = TypeVar("T")
E = TypeVar("E")
Answer = TypeVar("Answer", covariant=True)

# 96 bits of SHA-256 (the fastest digest here: hardware-assisted), in hex.
_DIGEST_LENGTH = 24
_DIGEST = re.compile(rb"[0-9a-f]{%d}" % _DIGEST_LENGTH)
# The layout of what an answer's cache entry holds (EncodedAnswer.pack); a process writing
# another layout files its answers under other keys.
_LAYOUT = "digest+json"
# A last step may come at its first step's time plus the window, included.
_JUST_AFTER = timedelta(microseconds=1)


class EventPage(msgspec.Struct, frozen=True):
    events: list[StoredEvent]
    next_cursor: str | None


class EncodedAnswer(msgspec.Struct, frozen=True, gc=False):
    """An answer's JSON ``body``, and ``digest``: a short hex digest of exactly those bytes, made
    once when the answer was computed (equal bytes have equal digests, whoever computed them).

    The cache holds the digest followed by the body (:meth:`pack`), so that a cached answer comes
    back with its digest and nothing is hashed, decoded or encoded again to serve it.
    """

    body: bytes
    digest: str

    @classmethod
    def of(cls, body: bytes) -> EncodedAnswer:
        return cls(body, hashlib.sha256(body).hexdigest()[:_DIGEST_LENGTH])

    def pack(self) -> bytes:
        return self.digest.encode() + self.body

    @classmethod
    def unpack(cls, stored: bytes) -> EncodedAnswer | None:
        """What :meth:`pack` stored, or None if ``stored`` is not that (then it is recomputed)."""
        if len(stored) <= _DIGEST_LENGTH or not _DIGEST.fullmatch(stored, 0, _DIGEST_LENGTH):
            return None
        return cls(stored[_DIGEST_LENGTH:], stored[:_DIGEST_LENGTH].decode())


@dataclass(frozen=True, slots=True)
class _Query(Generic[Answer]):
    """One cacheable question: its workspace, its cache key and how to compute its answer."""

    workspace_id: str
    key: str
    compute: Callable[[], Awaitable[Answer]]


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

    Each answer comes typed (:meth:`counts`, :meth:`event_types`) or as its JSON encoding with a
    digest of it (:meth:`counts_json`, :meth:`event_types_json`, an :class:`EncodedAnswer`): a
    cached answer is the bytes that were stored, and a fresh one the same bytes a typed answer
    encodes to. The caller's role and the
    project are checked before the cache is asked. A project read is taken as it was (existing,
    with its dimensions) for the project cache's lifetime (one second by default) without
    asking the store again.
    """

    def __init__(
        self,
        accounts: AccountStore,
        events: EventStore,
        cache: QueryCache,
        projects: ProjectCache,
        clock: Clock,
        cursors: CursorCodec,
        cache_ttl: float = ANALYTICS_CACHE_SECONDS,
    ) -> None:
        self._accounts = accounts
        self._cursors = cursors
        self._events = events
        self._cache = cache
        self._projects = projects
        self._clock = clock
        self._ttl = cache_ttl

    async def check_project(self, principal: Principal, project_id: str) -> None:
        """The caller may read the project's events (its role, and the project in its
        workspace): PermissionDenied or NotFound otherwise, as every read answers."""
        await self._project(principal, project_id)

    async def counts(
        self,
        principal: Principal,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        granularity: Granularity = Granularity.HOUR,
        event_type: str | None = None,
        where: Sequence[str] = (),
    ) -> CountSeries:
        query = await self._counts(
            principal, project_id, start, end, granularity, event_type, where
        )
        return await self._typed(query, CountSeries)

    async def counts_json(
        self,
        principal: Principal,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        granularity: Granularity = Granularity.HOUR,
        event_type: str | None = None,
        where: Sequence[str] = (),
    ) -> EncodedAnswer:
        """:meth:`counts`, encoded as JSON."""
        query = await self._counts(
            principal, project_id, start, end, granularity, event_type, where
        )
        answer, _ = await self._answer(query)
        return answer

    async def _counts(
        self,
        principal: Principal,
        project_id: str,
        start: datetime | None,
        end: datetime | None,
        granularity: Granularity,
        event_type: str | None,
        where: Sequence[str],
    ) -> _Query[CountSeries]:
        filters = await self._filters(principal, project_id, where)
        window = make_window(start, end, granularity, now=self._clock.now())
        workspace_id = principal.workspace_id
        key = _key("counts", project_id, window, _extra(event_type, filters))
        if filters:

            async def filtered() -> CountSeries:
                events = await self._filtered(workspace_id, project_id, window, event_type, filters)
                points = count_points(events, granularity)
                return CountSeries(
                    project_id=project_id,
                    granularity=granularity,
                    start=window.start,
                    end=window.end,
                    total=sum(point.count for point in points),
                    series=points,
                )

            return _Query(workspace_id, key, filtered)
        return _Query(
            workspace_id,
            key,
            lambda: self._count_series(workspace_id, project_id, window, event_type),
        )

    async def _filters(
        self, principal: Principal, project_id: str, where: Sequence[str]
    ) -> tuple[Where, ...]:
        """The project checked, and ``where`` checked against its dimensions."""
        if not where:
            await self.check_project(principal, project_id)
            return ()
        return parse_where(where, (await self._project(principal, project_id)).dimensions)

    async def _project(self, principal: Principal, project_id: str) -> Project:
        """The project (its dimensions with it) as read at most the project cache's lifetime
        ago, after the caller's role is checked."""
        principal.require(Permission.READ_ANALYTICS)
        workspace_id = principal.workspace_id
        project = await self._projects.get(workspace_id, project_id)
        if project is not None:
            return project
        project = await self._accounts.get_project(workspace_id, project_id)
        if project is None:
            raise NotFound("No such project.")
        await self._projects.remember(project)
        return project

    async def _filtered(
        self,
        workspace_id: str,
        project_id: str,
        window: Window,
        event_type: str | None,
        filters: Sequence[Where],
    ) -> list[FilteredEvent]:
        """The window's events matching ``filters``, refused past MAX_RAW_EVENTS."""
        return _bounded(
            await self._events.filtered_events(
                workspace_id,
                project_id,
                window.start,
                window.end,
                event_type,
                filters,
                MAX_RAW_EVENTS + 1,
            )
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
        query = await self._event_types(principal, project_id, start, end)
        return await self._typed(query, EventTypeTotals)

    async def event_types_json(
        self,
        principal: Principal,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> EncodedAnswer:
        """:meth:`event_types`, encoded as JSON."""
        answer, _ = await self._answer(await self._event_types(principal, project_id, start, end))
        return answer

    async def _event_types(
        self, principal: Principal, project_id: str, start: datetime | None, end: datetime | None
    ) -> _Query[EventTypeTotals]:
        await self.check_project(principal, project_id)
        window = make_window(start, end, Granularity.HOUR, now=self._clock.now())
        workspace_id = principal.workspace_id

        async def compute() -> EventTypeTotals:
            totals = await self._events.event_type_totals(
                workspace_id, project_id, window.start, window.end
            )
            return EventTypeTotals(totals)

        return _Query(workspace_id, _key("types", project_id, window, ""), compute)

    async def users(
        self,
        principal: Principal,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        granularity: Granularity = Granularity.HOUR,
        event_type: str | None = None,
        where: Sequence[str] = (),
    ) -> UserSeries:
        """Distinct persons per bucket and over the window, from the hours' sketches (exactly
        from the stored events when filtered by ``where``)."""
        query = await self._users(principal, project_id, start, end, granularity, event_type, where)
        return await self._typed(query, UserSeries)

    async def users_json(
        self,
        principal: Principal,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        granularity: Granularity = Granularity.HOUR,
        event_type: str | None = None,
        where: Sequence[str] = (),
    ) -> EncodedAnswer:
        """:meth:`users`, encoded as JSON."""
        query = await self._users(principal, project_id, start, end, granularity, event_type, where)
        answer, _ = await self._answer(query)
        return answer

    async def _users(
        self,
        principal: Principal,
        project_id: str,
        start: datetime | None,
        end: datetime | None,
        granularity: Granularity,
        event_type: str | None,
        where: Sequence[str],
    ) -> _Query[UserSeries]:
        _check_event_type(event_type)
        filters = await self._filters(principal, project_id, where)
        if granularity is Granularity.MINUTE:
            raise InvalidRequest(
                "Unique users are kept per hour: `granularity` must be hour or day.",
                code="invalid_query",
            )
        window = make_window(start, end, granularity, now=self._clock.now())
        workspace_id = principal.workspace_id

        async def compute() -> UserSeries:
            if filters:
                events = await self._filtered(workspace_id, project_id, window, event_type, filters)
                return exact_user_series(project_id, granularity, window.start, window.end, events)
            rows = await self._events.user_window(
                workspace_id, project_id, window.start, window.end, granularity, event_type
            )
            return window_user_series(project_id, granularity, window.start, window.end, rows)

        key = _key("users", project_id, window, _extra(event_type, filters))
        return _Query(workspace_id, key, compute)

    async def breakdown(
        self,
        principal: Principal,
        project_id: str,
        prop: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        event_type: str | None = None,
        where: Sequence[str] = (),
        limit: int = DEFAULT_BREAKDOWN_LIMIT,
    ) -> Breakdown:
        """Events and persons per value of the declared dimension ``prop``, over whole UTC days
        (``start`` rounded down, ``end`` up), largest first."""
        query = await self._breakdown(
            principal, project_id, prop, start, end, event_type, where, limit
        )
        return await self._typed(query, Breakdown)

    async def breakdown_json(
        self,
        principal: Principal,
        project_id: str,
        prop: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        event_type: str | None = None,
        where: Sequence[str] = (),
        limit: int = DEFAULT_BREAKDOWN_LIMIT,
    ) -> EncodedAnswer:
        """:meth:`breakdown`, encoded as JSON."""
        query = await self._breakdown(
            principal, project_id, prop, start, end, event_type, where, limit
        )
        answer, _ = await self._answer(query)
        return answer

    async def _breakdown(
        self,
        principal: Principal,
        project_id: str,
        prop: str,
        start: datetime | None,
        end: datetime | None,
        event_type: str | None,
        where: Sequence[str],
        limit: int,
    ) -> _Query[Breakdown]:
        _check_event_type(event_type)
        project = await self._project(principal, project_id)
        if prop not in project.dimensions:
            raise InvalidRequest(
                f"`property` {prop[:60]!r} is not a dimension of the project"
                " (PUT /v1/projects/{project_id}/dimensions declares them).",
                code="invalid_query",
            )
        if not 1 <= limit <= MAX_BREAKDOWN_LIMIT:
            raise InvalidRequest(
                f"`limit` must be 1 to {MAX_BREAKDOWN_LIMIT}.", code="invalid_query"
            )
        filters = parse_where(where, project.dimensions)
        window = make_window(start, end, Granularity.DAY, now=self._clock.now())
        workspace_id = principal.workspace_id

        async def compute() -> Breakdown:
            if filters:
                events = await self._filtered(workspace_id, project_id, window, event_type, filters)
                return breakdown_of_events(
                    project_id, prop, window.start, window.end, events, limit
                )
            totals = await self._events.dimension_totals(
                workspace_id, project_id, prop, window.start, window.end, event_type, listed=limit
            )
            return breakdown_of_totals(project_id, prop, window.start, window.end, totals, limit)

        extra = f"{prop}|{limit}|{_extra(event_type, filters)}"
        return _Query(workspace_id, _key("breakdown", project_id, window, extra), compute)

    async def funnel(self, principal: Principal, query: FunnelQuery) -> FunnelResult:
        """Persons who did ``query``'s steps in order, each within its window of the first."""
        return await self._typed(await self._funnel(principal, query), FunnelResult)

    async def funnel_json(self, principal: Principal, query: FunnelQuery) -> EncodedAnswer:
        """:meth:`funnel`, encoded as JSON."""
        answer, _ = await self._answer(await self._funnel(principal, query))
        return answer

    async def _funnel(self, principal: Principal, query: FunnelQuery) -> _Query[FunnelResult]:
        if "\x00" in query.project_id or any("\x00" in s.event_type for s in query.steps):
            raise InvalidRequest(
                "`project_id` and `event_type` may not contain the NUL character (\\u0000).",
                code="invalid_request",
            )
        if any(step.where for step in query.steps):
            declared = (await self._project(principal, query.project_id)).dimensions
            steps = [StepRule(s.event_type, parse_where(s.where, declared)) for s in query.steps]
        else:
            await self.check_project(principal, query.project_id)
            steps = [StepRule(s.event_type) for s in query.steps]
        # The first steps' window obeys the counts' bounds (hour buckets).
        make_window(query.start, query.end, Granularity.HOUR, now=self._clock.now())
        workspace_id = principal.workspace_id
        window = timedelta(seconds=query.window_seconds)
        try:
            last_step_end = query.end + window + _JUST_AFTER
        except OverflowError:
            last_step_end = datetime.max.replace(tzinfo=UTC)

        async def compute() -> FunnelResult:
            events = _bounded(
                await self._events.person_events(
                    workspace_id,
                    query.project_id,
                    sorted({step.event_type for step in steps}),
                    query.start,
                    last_step_end,
                    MAX_RAW_EVENTS + 1,
                )
            )
            return funnel_counts(events, steps, window, query.start, query.end)

        key = "|".join((_LAYOUT, "funnel", msgspec.json.encode(query).decode()))
        return _Query(workspace_id, key, compute)

    async def _answer(self, query: _Query[T]) -> tuple[EncodedAnswer, T | None]:
        """The answer encoded, and the answer itself when it was computed here (None on a hit)."""
        # The generation comes with the lookup, read before computing: an answer that races a
        # commit is filed under the old generation, which no reader asks for once the commit
        # has bumped it.
        generation, stored = await self._cache.lookup(query.workspace_id, query.key)
        if stored is not None and (cached := EncodedAnswer.unpack(stored)) is not None:
            return cached, None
        value = await query.compute()
        answer = EncodedAnswer.of(msgspec.json.encode(value))
        await self._cache.put(query.workspace_id, query.key, generation, answer.pack(), self._ttl)
        return answer, value

    async def _typed(self, query: _Query[T], kind: type[T]) -> T:
        answer, value = await self._answer(query)
        if value is not None:
            return value
        try:
            return msgspec.json.decode(answer.body, type=kind)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return await query.compute()

    async def list_events(
        self,
        principal: Principal,
        project_id: str,
        *,
        event_type: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> EventPage:
        await self.check_project(principal, project_id)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"`limit` must be 1 to {MAX_PAGE}.", code="invalid_query")
        # A cursor pages the listing it was made for, and no other.
        scope = CursorScope(principal.workspace_id, project_id, event_type)
        before = self._cursors.decode(scope, cursor) if cursor else None
        rows = await self._events.list_events(
            principal.workspace_id,
            project_id,
            limit=limit + 1,
            event_type=event_type,
            before=before,
        )
        next_cursor = (
            self._cursors.encode(scope, EventCursor.after(rows[limit - 1]))
            if len(rows) > limit
            else None
        )
        return EventPage(rows[:limit], next_cursor)

    async def export(
        self,
        principal: Principal,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        event_type: str | None = None,
    ) -> AsyncIterator[list[StoredEvent]]:
        """The project's stored events with a timestamp in [start, end) (default: all), of
        ``event_type`` or of any, oldest first, page by page (:mod:`eventcore.usecases.export`).
        The role, the project and the window are checked before it returns, so that a refusal
        comes before the first event."""
        await self.check_project(principal, project_id)
        window = ExportWindow.of(start, end, event_type)
        return event_pages(self._events, principal.workspace_id, project_id, window)


def _bounded(events: list[E]) -> list[E]:
    """A raw read's events, refused when the store found more than an answer may read."""
    if len(events) > MAX_RAW_EVENTS:
        raise InvalidRequest(
            f"This answer is counted from the window's stored events (a `where` filter or a"
            f" funnel), and the window holds more than {MAX_RAW_EVENTS:,} of them: narrow the"
            " window or name an event type.",
            code="window_too_large",
        )
    return events


def _check_event_type(event_type: str | None) -> None:
    if event_type == "":
        raise InvalidRequest(
            "`event_type` must not be empty: leave it out for every type.", code="invalid_query"
        )


def _extra(event_type: str | None, filters: Sequence[Where]) -> str:
    """The part of a cache key saying which events a query counts: one JSON text, so that no
    event type (which may hold any character) reads as another type with filters."""
    if event_type is None and not filters:
        return "*"
    return msgspec.json.encode([event_type, [list(w) for w in filters]]).decode()


def _key(kind: str, project_id: str, window: Window, extra: str) -> str:
    return "|".join(
        (
            _LAYOUT,
            kind,
            project_id,
            window.granularity.value,
            window.start.isoformat(),
            window.end.isoformat(),
            extra,
        )
    )
