"""Unique users: the persons of stored events, kept as mergeable sketches per hour.

Every store keeps one HyperLogLog sketch (Apache DataSketches' ``hll_sketch``, HLL_8, ``lg_k`` =
:data:`~eventcore.defaults.SKETCH_LG_K`) per (project, hour bucket, event type) and one per
(project, hour bucket) for every type together (:data:`ALL_TYPES`), and adds to them exactly the
persons of the events it inserted, in the transaction that inserted them: a duplicate, a resend
or a redelivery changes no sketch. A window's answer merges the sketches of its hours. The bytes
are the library's own compact serialisation, the same whichever store made them, so every
profile gives the same answers for the same events.

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
    """One stored sketch: the persons of a project's events of one type (or of all) in an hour."""

    workspace_id: str
    project_id: str
    bucket: datetime
    event_type: str


def person_increments(batches: Iterable[IngestBatch]) -> dict[SketchKey, set[str]]:
    """The persons each sketch gains when exactly these events are newly stored.

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
    return increments


def add_persons(stored: bytes | None, persons: Iterable[str], lg_k: int = SKETCH_LG_K) -> bytes:
    """The sketch ``stored`` (None: an empty one of 2^``lg_k`` registers) with ``persons``
    added, serialised."""
    sketch = (
        datasketches.hll_sketch(lg_k, _TARGET)
        if stored is None
        else datasketches.hll_sketch.deserialize(stored)
    )
    for person in sorted(persons):
        sketch.update(person)
    return bytes(sketch.serialize_compact())


def sketch_of(persons: Iterable[str], lg_k: int = SKETCH_LG_K) -> bytes:
    """A new sketch holding ``persons`` (a rebuild makes each sketch so, from raw events)."""
    return add_persons(None, persons, lg_k)


class Estimate(msgspec.Struct, frozen=True):
    """How many distinct persons, and the relative standard error of that number (0: exact)."""

    users: int
    relative_error: float


def estimate(sketches: Iterable[bytes]) -> Estimate:
    """The distinct persons of the union of ``sketches``."""
    sketches = list(sketches)
    if len(sketches) == 1:
        # One sketch: its own estimate, without building a union (16 KiB of registers).
        return _estimate_of(sketches[0])
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


def _estimate_of(stored: bytes) -> Estimate:
    sketch = datasketches.hll_sketch.deserialize(stored)
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
    points: list[UsersPoint] = []
    error = 0.0
    for bucket in sorted(by_bucket):
        found = estimate(by_bucket[bucket])
        error = max(error, found.relative_error)
        if found.users:
            points.append(UsersPoint(bucket, found.users))
    total = estimate(every)
    return UserSeries(
        project_id=project_id,
        granularity=granularity,
        start=start,
        end=end,
        total=total.users,
        series=points,
        relative_error=max(error, total.relative_error),
    )
