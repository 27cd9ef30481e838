"""Unique users: the persons of stored events, kept as mergeable sketches per hour and per day.

Every store keeps one HyperLogLog sketch (Apache DataSketches' ``hll_sketch``, HLL_8, ``lg_k`` =
:data:`~eventcore.defaults.SKETCH_LG_K`) per (project, hour bucket, event type) and one per
(project, hour bucket) for every type together (:data:`ALL_TYPES`), the same per UTC day, and
adds to them exactly the persons of the events it inserted, in the transaction that inserted
them: a duplicate, a resend or a redelivery changes no sketch. A window's total merges the
sketches of its whole days and of the hours left at its edges (a 30-day window: 30 to 31 day
sketches and at most 46 hour sketches, instead of 720), and each bucket's answer is its own
sketch's estimate. The bytes are the library's own compact serialisation, the same whichever
store made them, so every profile gives the same answers for the same events.

A union keeps the maximum of each register, so a day's sketch holds the registers of the union
of its hours' sketches: whichever sketches cover the window, the total estimates the same
persons with the same stated error (the estimates may differ within it: a union of sketches
past exact counting estimates from its registers, a union fed coupons from the order they
came in). A day sketch made where its hours already held persons (a store upgraded from one
that kept hours only) starts as the union of those hours (:func:`day_sketch_of_hours`).

A sketch keeps each person's 26-bit coupon until it holds a few thousand of them (its LIST and
SET modes): the answer is then the number of distinct coupons, exact but for a collision of two
persons' coupons, and :func:`estimate` reports a ``relative_error`` of 0. Past that it is an
HLL estimate with the standard error DataSketches computes for it (about 0.8 % at lg_k 14).
Sketches of different sizes merge (the union has the smaller one's registers): a declared
dimension's values keep smaller ones (:mod:`eventcore.dimensions`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import datasketches
import msgspec

from eventcore.aggregation import Granularity, bucket_start
from eventcore.defaults import SKETCH_LG_K
from eventcore.events import IngestBatch

# The event type of the sketches of every type together (no event type is empty).
ALL_TYPES = ""
_TARGET = datasketches.tgt_hll_type.HLL_8
# Byte 7 of a serialised HLL sketch (DataSketches' HLL binary format) holds its mode in its two
# low bits: 0 LIST, 1 SET (coupons: one per person), 2 HLL (registers: an estimate).
_MODE_BYTE = 7
_HLL_MODE = 2


class SketchKey(NamedTuple):
    """One stored sketch: the persons of a project's events of one type (or of all) in an hour
    bucket, or in a UTC day (``granularity`` DAY)."""

    workspace_id: str
    project_id: str
    bucket: datetime
    event_type: str
    granularity: Granularity = Granularity.HOUR

    @property
    def day(self) -> SketchKey:
        """The key of the day sketch this hour's persons also go to."""
        return self._replace(
            bucket=bucket_start(self.bucket, Granularity.DAY), granularity=Granularity.DAY
        )


def person_increments(batches: Iterable[IngestBatch]) -> dict[SketchKey, set[str]]:
    """The persons each sketch, of an hour and of a day, gains when exactly these events are
    newly stored.

    Callers pass only events that were actually inserted, as for the counts
    (:func:`eventcore.aggregation.count_increments`); events without a person add nothing.
    """
    increments: dict[SketchKey, set[str]] = {}
    for batch in batches:
        for event in batch.events:
            person = event.person
            if person is None:
                continue
            hour = bucket_start(event.timestamp, Granularity.HOUR)
            for event_type in (event.type, ALL_TYPES):
                key = SketchKey(batch.workspace_id, batch.project_id, hour, event_type)
                increments.setdefault(key, set()).add(person)
    return with_days(increments)


def with_days(hours: dict[SketchKey, set[str]]) -> dict[SketchKey, set[str]]:
    """``hours``' increments (of hour sketches) and the increments of their days' sketches."""
    increments = dict(hours)
    for key, persons in hours.items():
        increments.setdefault(key.day, set()).update(persons)
    return increments


def day_sketch_of_hours(hours: Iterable[bytes]) -> bytes | None:
    """The sketch a new day sketch starts from: the union of the sketches its hours already
    hold (None when they hold none, the usual case: a day's first events make its first hour
    sketch and its day sketch together)."""
    stored = [sketch for sketch in hours if sketch]
    if not stored:
        return None
    union = datasketches.hll_union(SKETCH_LG_K)
    for sketch in stored:
        union.update(datasketches.hll_sketch.deserialize(sketch))
    return bytes(union.get_result(_TARGET).serialize_compact())


def add_persons(stored: bytes | None, persons: Iterable[str], lg_k: int = SKETCH_LG_K) -> bytes:
    """The sketch ``stored`` (None: an empty one of 2^``lg_k`` registers) with ``persons``
    added, serialised."""
    return _added(stored, persons, lg_k)[0]


def add_persons_estimated(
    stored: bytes | None, persons: Iterable[str], lg_k: int = SKETCH_LG_K
) -> tuple[bytes, Estimate]:
    """:func:`add_persons`, and the new sketch's :func:`estimate_of` (a store that keeps it
    beside the sketch answers an hour's bucket without reading the sketch)."""
    return _added(stored, persons, lg_k)


def _added(stored: bytes | None, persons: Iterable[str], lg_k: int) -> tuple[bytes, Estimate]:
    sketch = (
        datasketches.hll_sketch(lg_k, _TARGET)
        if stored is None
        else datasketches.hll_sketch.deserialize(stored)
    )
    for person in sorted(persons):
        sketch.update(person)
    serialised = bytes(sketch.serialize_compact())
    return serialised, _estimate(sketch, serialised)


def sketch_of(persons: Iterable[str], lg_k: int = SKETCH_LG_K) -> bytes:
    """A new sketch holding ``persons`` (a rebuild makes each sketch so, from raw events)."""
    return add_persons(None, persons, lg_k)


def sketch_estimated(persons: Iterable[str], lg_k: int = SKETCH_LG_K) -> tuple[bytes, Estimate]:
    """:func:`sketch_of`, and its :func:`estimate_of`."""
    return _added(None, persons, lg_k)


class Estimate(msgspec.Struct, frozen=True):
    """How many distinct persons, and the relative standard error of that number (0: exact)."""

    users: int
    relative_error: float


def estimate(sketches: Iterable[bytes]) -> Estimate:
    """The distinct persons of the union of ``sketches``."""
    sketches = list(sketches)
    if len(sketches) == 1:
        # One sketch: its own estimate, without building a union (16 KiB of registers).
        return estimate_of(sketches[0])
    union = datasketches.hll_union(SKETCH_LG_K)
    coupons = True
    empty = True
    for stored in sketches:
        empty = False
        coupons = coupons and stored[_MODE_BYTE] & 3 != _HLL_MODE
        union.update(datasketches.hll_sketch.deserialize(stored))
    if empty:
        return Estimate(0, 0.0)
    merged = union.get_result(_TARGET)
    value = merged.get_estimate()
    # The union keeps coupons while it can: then the answer is their count.
    if coupons and bytes(merged.serialize_compact())[_MODE_BYTE] & 3 != _HLL_MODE:
        return Estimate(round(value), 0.0)
    if value <= 0:
        return Estimate(0, 0.0)
    return Estimate(round(value), round(merged.get_upper_bound(1) / value - 1, 4))


def estimate_of(stored: bytes) -> Estimate:
    """The distinct persons of one sketch: a bucket's answer."""
    return _estimate(datasketches.hll_sketch.deserialize(stored), stored)


def _estimate(sketch: datasketches.hll_sketch, stored: bytes) -> Estimate:
    value = sketch.get_estimate()
    if stored[_MODE_BYTE] & 3 != _HLL_MODE:
        return Estimate(round(value), 0.0)
    if value <= 0:
        return Estimate(0, 0.0)
    return Estimate(round(value), round(sketch.get_upper_bound(1) / value - 1, 4))


class UsersPoint(msgspec.Struct, frozen=True):
    bucket: datetime
    users: int


class UserSeries(msgspec.Struct, frozen=True):
    """Distinct persons per bucket, and ``total``: distinct persons over the whole window (not the
    sum of the buckets). ``relative_error`` is the largest standard error of those numbers."""

    project_id: str
    granularity: Granularity
    start: datetime
    end: datetime
    total: int
    series: list[UsersPoint]
    relative_error: float


def user_series(
    project_id: str,
    granularity: Granularity,
    start: datetime,
    end: datetime,
    hours: Iterable[tuple[datetime, bytes]],
) -> UserSeries:
    """The answer for a window from the sketches of its hours (``(bucket, sketch)``, any order)."""
    by_bucket: dict[datetime, list[bytes]] = {}
    every: list[bytes] = []
    for hour, stored in hours:
        by_bucket.setdefault(bucket_start(hour, granularity), []).append(stored)
        every.append(stored)
    found = {bucket: estimate(sketches) for bucket, sketches in by_bucket.items()}
    return _series(project_id, granularity, start, end, found, estimate(every))


def _series(
    project_id: str,
    granularity: Granularity,
    start: datetime,
    end: datetime,
    buckets: dict[datetime, Estimate],
    total: Estimate,
) -> UserSeries:
    """The answer: the buckets with persons, in order, and the largest error."""
    points: list[UsersPoint] = []
    error = 0.0
    for bucket in sorted(buckets):
        one = buckets[bucket]
        error = max(error, one.relative_error)
        if one.users:
            points.append(UsersPoint(bucket, one.users))
    return UserSeries(
        project_id=project_id,
        granularity=granularity,
        start=start,
        end=end,
        total=total.users,
        series=points,
        relative_error=max(error, total.relative_error),
    )


class StoredSketch(NamedTuple):
    """One stored sketch as a window's read gives it (:meth:`EventStore.user_window`): an hour's
    or a whole UTC day's (``granularity``), with its estimate where the store keeps it beside the
    sketch, and its bytes where the answer merges it (``None`` elsewhere)."""

    bucket: datetime
    granularity: Granularity
    estimate: Estimate | None
    sketch: bytes | None

    def counted(self) -> Estimate:
        """This sketch's own estimate: the answer of its bucket."""
        if self.estimate is not None:
            return self.estimate
        assert self.sketch is not None, "a stored sketch comes with its estimate or its bytes"
        return estimate_of(self.sketch)


def window_user_series(
    project_id: str,
    granularity: Granularity,
    start: datetime,
    end: datetime,
    rows: Iterable[StoredSketch],
) -> UserSeries:
    """The answer for a window from the sketches a store's window read gives
    (:meth:`EventStore.user_window`): each bucket's estimate from its own sketch (an hour's, or
    a day's; a day without one from the union of its hours'), and the total from the union of
    the whole days' sketches and the other hours'. The same answer as :func:`user_series` over
    every hour's sketch where the sketches count exactly, and the same hourly buckets; past
    that, the days and the total estimate the same registers (see above)."""
    days: dict[datetime, StoredSketch] = {}
    hours: list[StoredSketch] = []
    for row in rows:
        if row.granularity is Granularity.DAY:
            days[row.bucket] = row
        else:
            hours.append(row)
    merged: list[bytes] = []
    for day in days.values():
        assert day.sketch is not None, "a whole day's sketch comes with its bytes"
        merged.append(day.sketch)
    uncovered: dict[datetime, list[bytes]] = {}
    for hour in hours:
        # A store gives an hour without its bytes only where a whole day's sketch covers it.
        if hour.sketch is None:
            continue
        day_start = bucket_start(hour.bucket, Granularity.DAY)
        if day_start not in days:
            merged.append(hour.sketch)
            uncovered.setdefault(day_start, []).append(hour.sketch)
    found: dict[datetime, Estimate] = {}
    if granularity is Granularity.DAY:
        for bucket, day in days.items():
            found[bucket] = day.counted()
        for bucket, sketches in uncovered.items():
            found[bucket] = estimate(sketches)
    else:
        for hour in hours:
            found[hour.bucket] = hour.counted()
    return _series(project_id, granularity, start, end, found, estimate(merged))


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The UTC days wholly inside [start, end), as [first, last) (empty: ``first == last``)."""
    first = bucket_start(start, Granularity.DAY)
    if first != start:
        try:
            first += Granularity.DAY.step
        except OverflowError:  # the last representable day: none is whole
            return end, end
    last = bucket_start(end, Granularity.DAY)
    return (first, last) if first < last else (end, end)
