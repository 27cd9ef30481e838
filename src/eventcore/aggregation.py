"""Counting: time buckets, the exact count increments of stored events, and query windows."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import NamedTuple

import msgspec

from eventcore.defaults import DEFAULT_WINDOW, MAX_BUCKETS
from eventcore.errors import InvalidRequest
from eventcore.events import IngestBatch


class Granularity(enum.StrEnum):
    """The bucket width a query asks for."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def step(self) -> timedelta:
        return _STEPS[self]

    @property
    def stored_as(self) -> StoredGrain:
        """The grain whose count table answers this granularity (days are summed from hours)."""
        return StoredGrain.HOUR if self is Granularity.DAY else StoredGrain(self.value)


class StoredGrain(enum.StrEnum):
    """A grain the count tables are kept at: the only granularities a store is asked for."""

    MINUTE = "minute"
    HOUR = "hour"

    @property
    def granularity(self) -> Granularity:
        return Granularity(self.value)


_STEPS = MappingProxyType(
    {
        Granularity.MINUTE: timedelta(minutes=1),
        Granularity.HOUR: timedelta(hours=1),
        Granularity.DAY: timedelta(days=1),
    }
)


def bucket_start(moment: datetime, granularity: Granularity) -> datetime:
    """The UTC start of the bucket holding ``moment``."""
    moment = moment.astimezone(UTC)
    if granularity is Granularity.MINUTE:
        return moment.replace(second=0, microsecond=0)
    if granularity is Granularity.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_end(moment: datetime, granularity: Granularity) -> datetime:
    """The smallest bucket boundary at or after ``moment``."""
    start = bucket_start(moment, granularity)
    return start if start == moment else start + granularity.step


class CountKey(NamedTuple):
    """One row of a count table."""

    workspace_id: str
    project_id: str
    grain: StoredGrain
    bucket: datetime
    event_type: str


def count_increments(batches: Iterable[IngestBatch]) -> Counter[CountKey]:
    """What the count tables gain when exactly these events are newly stored: one at each
    stored grain for every event.

    Callers pass only events that were actually inserted: a duplicate adds nothing. Every store
    keeps its count tables by this rule (the SQL stores state it in SQL); a contract test holds
    each of them to it.
    """
    increments: Counter[CountKey] = Counter()
    for batch in batches:
        for event in batch.events:
            for grain in StoredGrain:
                increments[
                    CountKey(
                        batch.workspace_id,
                        batch.project_id,
                        grain,
                        bucket_start(event.timestamp, grain.granularity),
                        event.type,
                    )
                ] += 1
    return increments


class CountPoint(msgspec.Struct, frozen=True):
    bucket: datetime
    event_type: str
    count: int


class CountSeries(msgspec.Struct, frozen=True):
    project_id: str
    granularity: Granularity
    start: datetime
    end: datetime
    total: int
    series: list[CountPoint]


class EventTypeCount(msgspec.Struct, frozen=True):
    event_type: str
    count: int


class EventTypeTotals(msgspec.Struct, frozen=True):
    event_types: list[EventTypeCount]


class Window(msgspec.Struct, frozen=True):
    """A query window normalised to bucket boundaries: buckets starting in ``[start, end)``.

    Widening ``end`` up to the next boundary selects exactly the same buckets, so two requests
    that differ only inside a bucket share a normalised form (and a cache entry).
    """

    start: datetime
    end: datetime
    granularity: Granularity


def make_window(
    start: datetime | None,
    end: datetime | None,
    granularity: Granularity,
    *,
    now: datetime,
    max_buckets: int = MAX_BUCKETS,
) -> Window:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(
                f"`{name}` needs a time zone offset (RFC 3339).", code="invalid_query"
            )
    try:
        end = end or now
        start = start or end - DEFAULT_WINDOW
        if start >= end:
            raise InvalidRequest("`start` must be before `end`.", code="invalid_query")
        window = Window(bucket_start(start, granularity), bucket_end(end, granularity), granularity)
    except OverflowError:
        raise InvalidRequest(
            "The window is outside the supported range.", code="invalid_query"
        ) from None
    buckets = (window.end - window.start) // granularity.step
    if buckets > max_buckets:
        raise InvalidRequest(
            f"The window spans {buckets} {granularity.value} buckets; the limit is {max_buckets}.",
            code="window_too_large",
        )
    return window


def roll_up(points: Iterable[CountPoint], granularity: Granularity) -> list[CountPoint]:
    """Sum finer points into ``granularity`` buckets, ordered by bucket then event type."""
    sums: Counter[tuple[datetime, str]] = Counter()
    for point in points:
        sums[(bucket_start(point.bucket, granularity), point.event_type)] += point.count
    return [
        CountPoint(bucket, event_type, count)
        for (bucket, event_type), count in sorted(sums.items())
    ]
