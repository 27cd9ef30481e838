"""Declared dimensions: property paths whose values are counted per day at write time, and the
filters (``where``) and breakdowns they allow.

A project declares up to :data:`~eventcore.defaults.MAX_DIMENSIONS` dotted paths into the stored
properties (``plan``, ``context.page.path``: for an event made of a Segment message the
properties are the whole message). An event's value of a path (:func:`values_of`) is text: a
string as it is, a number as its JSON text, ``true``/``false``; a path that is absent or leads to
null, an object or an array gives no value (None). Every store applies this one function, so
both profiles see the same values.

Per (project, UTC day, event type) and per (project, day) for every type together, each
dimension keeps at most :data:`~eventcore.defaults.MAX_DIMENSION_VALUES` distinct values, each
with its count and a persons' sketch (of 2^:data:`~eventcore.defaults.VALUE_SKETCH_LG_K`
registers: :func:`add_value_persons`); the events of a further value (or of a value longer than
:data:`~eventcore.defaults.MAX_DIMENSION_VALUE_LENGTH`) are counted in that day's ``other``, never
dropped. Filters read the stored events themselves, whose declared values are kept beside them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from eventcore.aggregation import CountPoint, Granularity, bucket_start
from eventcore.defaults import (
    MAX_DIMENSION_PATH_LENGTH,
    MAX_DIMENSION_VALUE_LENGTH,
    MAX_DIMENSION_VALUES,
    MAX_DIMENSIONS,
    MAX_WHERE,
    VALUE_SKETCH_LG_K,
)
from eventcore.errors import InvalidRequest
from eventcore.events import IngestBatch
from eventcore.persons import ALL_TYPES, UserSeries, UsersPoint, add_persons, estimate
from eventcore.tenancy import ProjectRef

_SEGMENT = r"[A-Za-z0-9_$-]+"
_PATH = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
_text = msgspec.json.Decoder(str)

# An event's values of a project's paths, in the paths' order.
Values = tuple[str | None, ...]


def check_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """A project's declared paths, checked: 0 to MAX_DIMENSIONS distinct dotted paths."""
    if len(paths) > MAX_DIMENSIONS:
        raise InvalidRequest(
            f"`properties` holds {len(paths)} paths; a project declares at most {MAX_DIMENSIONS}.",
            code="invalid_dimensions",
        )
    for path in paths:
        if len(path) > MAX_DIMENSION_PATH_LENGTH or not _PATH.fullmatch(path):
            raise InvalidRequest(
                f"`properties` holds {path[:40]!r}: a path is names of letters, digits, `_`, `$`"
                f" or `-` joined by dots, at most {MAX_DIMENSION_PATH_LENGTH} characters.",
                code="invalid_dimensions",
            )
    if len(set(paths)) != len(paths):
        raise InvalidRequest("`properties` names a path twice.", code="invalid_dimensions")
    return tuple(paths)


def value_at(properties: Any, path: str) -> str | None:
    """The value of ``path`` in decoded ``properties`` as text, or None (see the module)."""
    current = properties
    for name in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(name)
    if isinstance(current, str):
        return current
    if isinstance(current, bool | int | float):
        return _encoder.encode(current).decode()
    return None


def values_of(properties: bytes, paths: Sequence[str]) -> dict[str, str | None]:
    """Each declared path's value in the JSON object ``properties``."""
    decoded = _decoder.decode(properties) if paths else None
    return {path: value_at(decoded, path) for path in paths}


class ValueReader:
    """Reads one tuple of paths' values out of properties, as :func:`values_of` gives them.

    Decoding the whole object to find two values made most of an append's cost of dimensions:
    the reader decodes into a msgspec Struct made for the paths instead, which skips every other
    member without building it and keeps each value's JSON text (``Raw``) for :func:`_text_of`.
    Where that shape does not hold (a path's object is an array or a string, or one path is the
    prefix of another) it decodes the whole object, as before: the values are the same.
    Making one makes a Struct type (tens of microseconds): a store keeps one per tuple of paths.
    """

    def __init__(self, paths: tuple[str, ...]) -> None:
        self.paths = paths
        self._shaped = _shaped_decoder(paths)

    def __call__(self, properties: bytes) -> Values:
        if self._shaped is not None:
            decoder, steps = self._shaped
            try:
                shaped = decoder.decode(properties)
            except msgspec.ValidationError:
                pass
            else:
                found: list[str | None] = []
                for fields in steps:
                    current = shaped
                    for field in fields:
                        current = getattr(current, field)
                        if current is None:
                            break
                    found.append(_text_of(current))
                return tuple(found)
        decoded = _decoder.decode(properties)
        return tuple(value_at(decoded, path) for path in self.paths)


def _shaped_decoder(
    paths: tuple[str, ...],
) -> tuple[msgspec.json.Decoder[Any], list[tuple[str, ...]]] | None:
    """A decoder of just the paths' members, and each path's attribute names in what it makes;
    None if a path is a prefix of another (a member both a value and an object)."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        *parents, leaf = path.split(".")
        for name in parents:
            child = node.setdefault(name, {})
            if child is None:
                return None
            node = child
        if leaf in node:
            return None
        node[leaf] = None
    made = [0]

    def struct_of(node: dict[str, Any]) -> tuple[type, dict[str, tuple[str, Any]]]:
        fields: list[tuple[str, Any, None]] = []
        rename: dict[str, str] = {}
        access: dict[str, tuple[str, Any]] = {}
        for n, (name, child) in enumerate(node.items()):
            field = f"m{n}"
            rename[field] = name
            if child is None:
                # Raw: the member's JSON text, whatever it holds (null included).
                fields.append((field, msgspec.Raw, None))
                access[name] = (field, None)
            else:
                inner, below = struct_of(child)
                fields.append((field, inner | None, None))
                access[name] = (field, below)
        made[0] += 1
        return msgspec.defstruct(f"_Members{made[0]}", fields, rename=rename), access

    root, access = struct_of(tree)
    steps: list[tuple[str, ...]] = []
    for path in paths:
        fields: list[str] = []
        level: Any = access
        for name in path.split("."):
            field, level = level[name]
            fields.append(field)
        steps.append(tuple(fields))
    return msgspec.json.Decoder(root), steps


def _text_of(raw: Any) -> str | None:
    """:func:`value_at`'s text of a member's JSON text (None: the member is absent)."""
    if raw is None:
        return None
    first = memoryview(raw)[0]
    if first == 0x22:  # a string
        text: str = _text.decode(raw)
        return text
    if first == 0x74:
        return "true"
    if first == 0x66:
        return "false"
    if first in (0x6E, 0x7B, 0x5B):  # null, an object, an array
        return None
    # A number: as value_at spells it (its decoded value encoded again).
    return _encoder.encode(_decoder.decode(raw)).decode()


def encode_values(values: Mapping[str, str | None]) -> str:
    """How an event's declared values are stored beside it (a JSON object)."""
    return _encoder.encode(values).decode()


def add_value_persons(stored: bytes | None, persons: Iterable[str]) -> bytes:
    """A value's tally sketch (None: a new one) with ``persons`` added."""
    return add_persons(stored, persons, VALUE_SKETCH_LG_K)


def decode_values(stored: str | bytes | None) -> dict[str, str | None]:
    if not stored:
        return {}
    decoded: dict[str, str | None] = _decoder.decode(stored)
    return decoded


class Kind(enum.IntEnum):
    """What a tally counts: events with ``value``, events with no value, or the rest (``other``)."""

    VALUE = 0
    NONE = 1
    OTHER = 2


class DimensionKey(NamedTuple):
    """One stored tally. ``value`` is "" unless ``kind`` is VALUE."""

    workspace_id: str
    project_id: str
    day: datetime
    event_type: str
    dimension: str
    kind: Kind
    value: str

    @property
    def group(self) -> DimensionGroup:
        return DimensionGroup(*self[:5])


class DimensionGroup(NamedTuple):
    """The tallies one bound applies to: a dimension's values in one day of one type (or all)."""

    workspace_id: str
    project_id: str
    day: datetime
    event_type: str
    dimension: str


class Tally(msgspec.Struct):
    count: int = 0
    persons: set[str] = msgspec.field(default_factory=set)


def dimension_increments(
    batches: Iterable[IngestBatch],
    declared: Mapping[tuple[str, str], Sequence[str]],
    values: Iterable[Sequence[Values] | None] | None = None,
) -> dict[DimensionKey, Tally]:
    """What the tallies gain when exactly these events are newly stored (callers pass only
    inserted events), before the bound on values (:func:`bounded`). ``declared`` holds each
    (workspace, project)'s paths; a project without any adds nothing. ``values``, one item per
    batch, holds its events' values of those paths if the caller has read them already (a store
    that stores them beside each event), else None."""
    tallies: dict[DimensionKey, Tally] = {}
    given = iter(values) if values is not None else None
    for batch in batches:
        known = next(given) if given is not None else None
        paths = declared.get((batch.workspace_id, batch.project_id), ())
        if not paths:
            continue
        if known is None:
            reader = ValueReader(tuple(paths))
            known = [reader(bytes(event.properties)) for event in batch.events]
        # Events are grouped by (day, type, values) first, so that the work per event is one
        # lookup; each group then adds to every path's tally of its type and of all types.
        groups: dict[tuple[datetime, str, tuple[str | None, ...]], Tally] = {}
        days: dict[int, datetime] = {}
        for event, found in zip(batch.events, known, strict=True):
            moment = event.timestamp
            if moment.utcoffset():
                moment = moment.astimezone(UTC)
            ordinal = moment.toordinal()
            day = days.get(ordinal)
            if day is None:
                day = days[ordinal] = bucket_start(moment, Granularity.DAY)
            group = (day, event.type, found)
            tally = groups.get(group)
            if tally is None:
                tally = groups[group] = Tally()
            tally.count += 1
            if event.person is not None:
                tally.persons.add(event.person)
        for (day, event_type, found_values), tally in groups.items():
            add_group(
                tallies,
                ProjectRef(batch.workspace_id, batch.project_id),
                paths,
                ValueGroup(day, event_type, found_values, tally.count, tally.persons),
            )
    return tallies


class ValueGroup(NamedTuple):
    """Newly stored events of one project sharing a UTC day, a type and their declared values:
    how many, and their distinct persons."""

    day: datetime
    event_type: str
    values: Values
    events: int
    persons: Iterable[str]


def add_group(
    tallies: dict[DimensionKey, Tally],
    project: ProjectRef,
    paths: Sequence[str],
    group: ValueGroup,
) -> None:
    """Add one group of events to ``tallies``: to each path's tally of its value, for its type
    and for every type together (what :func:`dimension_increments` does for each group it
    makes; a store whose database grouped the inserted events calls it for each group)."""
    persons = set(group.persons)
    for path, value in zip(paths, group.values, strict=True):
        kind, text = _kind_of(value)
        for each_type in (group.event_type, ALL_TYPES):
            key = DimensionKey(
                project.workspace_id, project.project_id, group.day, each_type, path, kind, text
            )
            current = tallies.get(key)
            if current is None:
                tallies[key] = Tally(group.events, set(persons))
            else:
                current.count += group.events
                current.persons |= persons


def _kind_of(value: str | None) -> tuple[Kind, str]:
    if value is None:
        return Kind.NONE, ""
    if len(value) > MAX_DIMENSION_VALUE_LENGTH:
        return Kind.OTHER, ""
    return Kind.VALUE, value


def bounded(
    increments: Mapping[DimensionKey, Tally],
    known: Mapping[DimensionGroup, set[str]],
    max_values: int = MAX_DIMENSION_VALUES,
) -> dict[DimensionKey, Tally]:
    """``increments`` with each group's values beyond ``max_values`` counted as ``other``.

    ``known`` holds the values each touched group already keeps; a new value is kept while the
    group has room (the most frequent new values first, then in text order), else its events go
    to the group's ``other``.
    """
    result: dict[DimensionKey, Tally] = {}
    new: dict[DimensionGroup, list[tuple[DimensionKey, Tally]]] = {}
    for key, tally in increments.items():
        if key.kind is Kind.VALUE and key.value not in known.get(key.group, ()):
            new.setdefault(key.group, []).append((key, tally))
        else:
            _add(result, key, tally)
    for group, candidates in new.items():
        room = max_values - len(known.get(group, ()))
        candidates.sort(key=lambda item: (-item[1].count, item[0].value))
        for index, (key, tally) in enumerate(candidates):
            if index < room:
                _add(result, key, tally)
            else:
                _add(result, key._replace(kind=Kind.OTHER, value=""), tally)
    return result


def _add(tallies: dict[DimensionKey, Tally], key: DimensionKey, tally: Tally) -> None:
    current = tallies.get(key)
    if current is None:
        tallies[key] = Tally(tally.count, set(tally.persons))
    else:
        current.count += tally.count
        current.persons |= tally.persons


class Where(NamedTuple):
    """One filter: events whose value of ``dimension`` is ``value``."""

    dimension: str
    value: str


def parse_where(filters: Sequence[str], declared: Sequence[str]) -> tuple[Where, ...]:
    """``where`` parameters (``dimension:value``) checked against the project's dimensions."""
    if len(filters) > MAX_WHERE:
        raise InvalidRequest(
            f"At most {MAX_WHERE} `where` filters are taken.", code="invalid_query"
        )
    parsed: list[Where] = []
    for text in filters:
        dimension, colon, value = text.partition(":")
        if not colon:
            raise InvalidRequest(
                f"`where` must be dimension:value; {text[:40]!r} has no colon.",
                code="invalid_query",
            )
        if dimension not in declared:
            raise InvalidRequest(
                f"`where` names {dimension[:60]!r}, which is not a dimension of the project"
                " (PUT /v1/projects/{project_id}/dimensions declares them).",
                code="invalid_query",
            )
        parsed.append(Where(dimension, value))
    return tuple(sorted(set(parsed)))


def matches(values: Mapping[str, str | None], where: Iterable[Where]) -> bool:
    return all(values.get(w.dimension) == w.value for w in where)


class DimensionTally(msgspec.Struct, frozen=True, array_like=True):
    """One stored tally as read back: a day's count of a value (or of none, or other) and the
    persons' sketch of its events (None when none had a person)."""

    day: datetime
    kind: Kind
    value: str
    count: int
    sketch: bytes | None


class FilteredEvent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A stored event as a filtered query reads it: ``values`` is its declared values' JSON."""

    timestamp: datetime
    type: str
    person: str | None
    values: str


class BreakdownValue(msgspec.Struct, frozen=True):
    value: str | None
    count: int
    users: int


class OtherCount(msgspec.Struct, frozen=True):
    count: int


class Breakdown(msgspec.Struct, frozen=True):
    """Events per value of ``property``, largest first; ``other`` counts the events of the
    values not listed (past ``limit``, or past the values kept per day)."""

    project_id: str
    property: str
    start: datetime
    end: datetime
    values: list[BreakdownValue]
    other: OtherCount
    relative_error: float


class ValueTotal(msgspec.Struct, frozen=True, array_like=True):
    """A value's (or no value's, or ``other``'s) events summed over a window's daily tallies,
    as a breakdown reads them (:meth:`~eventcore.ports.EventStore.dimension_totals`).
    ``sketches`` are its tallies' persons' sketches in day order (those with one) for a value the
    breakdown lists, and None for one it does not: those are never read."""

    kind: Kind
    value: str
    count: int
    sketches: list[bytes] | None = None


def _rank(item: tuple[tuple[Kind, str], int]) -> tuple[int, Kind, str]:
    # Largest first; a tie by kind (a value before none), then by value in code point order:
    # what the stores' ORDER BY count DESC, kind, value gives (byte order of UTF-8 text).
    (kind, value), count = item
    return -count, kind, value


def totals_of_tallies(tallies: Iterable[DimensionTally], listed: int) -> list[ValueTotal]:
    """What ``dimension_totals`` answers for the window of ``tallies`` (given in day order):
    each kind and value's count, with the sketches of the first ``listed`` values by (count
    descending, kind, value), ``other`` never listed (:func:`breakdown_of_totals`)."""
    counts: dict[tuple[Kind, str], int] = {}
    sketches: dict[tuple[Kind, str], list[bytes]] = {}
    for tally in tallies:
        key = (tally.kind, tally.value)
        counts[key] = counts.get(key, 0) + tally.count
        if tally.sketch is not None:
            sketches.setdefault(key, []).append(tally.sketch)
    ranked = sorted(
        ((key, count) for key, count in counts.items() if key[0] is not Kind.OTHER), key=_rank
    )
    chosen = {key for key, _ in ranked[:listed]}
    return [
        ValueTotal(
            kind, value, count, sketches.get((kind, value), []) if (kind, value) in chosen else None
        )
        for (kind, value), count in counts.items()
    ]


# A row of a store's statement of a window's totals, in any order: a total (kind, value, count,
# whether it is listed, None, None) or one sketch of a listed value (kind, value, None, None,
# sketch, its day as the store keeps days: they order).
TotalRow = tuple[int, str, int | None, bool | int | None, bytes | None, Any]


def totals_of_rows(rows: Iterable[TotalRow]) -> list[ValueTotal]:
    """The totals a store's statement gave as rows (:data:`TotalRow`), each listed value's
    sketches in day order (the database need not sort the rows that carry them)."""
    counts: dict[tuple[int, str], int] = {}
    dated: dict[tuple[int, str], list[tuple[Any, bytes]]] = {}
    for kind, value, count, listed, sketch, day in rows:
        if count is not None:
            counts[kind, value] = count
            if listed:
                dated.setdefault((kind, value), [])
        elif sketch is not None:
            dated.setdefault((kind, value), []).append((day, bytes(sketch)))
    sketches: dict[tuple[int, str], list[bytes]] = {}
    for key, days in dated.items():
        days.sort(key=_day_of)
        sketches[key] = [sketch for _, sketch in days]
    return [
        ValueTotal(Kind(kind), value, count, sketches.get((kind, value)))
        for (kind, value), count in counts.items()
    ]


def _day_of(dated: tuple[Any, bytes]) -> Any:
    return dated[0]


def breakdown_of_totals(
    project_id: str,
    prop: str,
    start: datetime,
    end: datetime,
    totals: Iterable[ValueTotal],
    limit: int,
) -> Breakdown:
    """The breakdown from a window's totals per value, read with ``listed = limit``: the first
    ``limit`` values by (count descending, kind, value) are listed, each with the union of its
    daily sketches (one union per value, :func:`~eventcore.persons.estimate`); ``other`` counts
    the rest. The same answer as :func:`breakdown_of_tallies` gives from every tally."""
    counts: dict[tuple[Kind, str], int] = {}
    sketches: dict[tuple[Kind, str], list[bytes] | None] = {}
    other = 0
    for total in totals:
        if total.kind is Kind.OTHER:
            other += total.count
            continue
        key = (total.kind, total.value)
        counts[key] = total.count
        sketches[key] = total.sketches
    ranked = sorted(counts.items(), key=_rank)
    listed: list[BreakdownValue] = []
    error = 0.0
    for (kind, value), count in ranked[:limit]:
        read = sketches[kind, value]
        if read is None:
            # The store ranked the values otherwise than _rank: an answer from it would lack
            # this value's persons. A defect of the store, never of the request.
            raise RuntimeError(
                f"The store read no sketches for the breakdown's listed value {value[:60]!r}."
            )
        users = estimate(read)
        error = max(error, users.relative_error)
        listed.append(BreakdownValue(value if kind is Kind.VALUE else None, count, users.users))
    other += sum(count for _, count in ranked[limit:])
    return Breakdown(project_id, prop, start, end, listed, OtherCount(other), error)


def breakdown_of_tallies(
    project_id: str,
    prop: str,
    start: datetime,
    end: datetime,
    tallies: Iterable[DimensionTally],
    limit: int,
) -> Breakdown:
    """The breakdown from every stored daily tally of a window (persons merged per value): its
    definition, which :func:`breakdown_of_totals` answers from far fewer rows (an API reads
    totals; the tests hold the two equal)."""
    counts: dict[tuple[Kind, str], int] = {}
    sketches: dict[tuple[Kind, str], list[bytes]] = {}
    for tally in tallies:
        key = (tally.kind, tally.value)
        counts[key] = counts.get(key, 0) + tally.count
        if tally.sketch is not None:
            sketches.setdefault(key, []).append(tally.sketch)
    other = counts.pop((Kind.OTHER, ""), 0)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    listed: list[BreakdownValue] = []
    error = 0.0
    for (kind, value), count in ranked[:limit]:
        users = estimate(sketches.get((kind, value), []))
        error = max(error, users.relative_error)
        listed.append(BreakdownValue(value if kind is Kind.VALUE else None, count, users.users))
    other += sum(count for _, count in ranked[limit:])
    return Breakdown(project_id, prop, start, end, listed, OtherCount(other), error)


def breakdown_of_events(
    project_id: str,
    prop: str,
    start: datetime,
    end: datetime,
    events: Iterable[FilteredEvent],
    limit: int,
) -> Breakdown:
    """The breakdown counted exactly from stored events (a filtered query): every value is
    listed until ``limit``, whatever its length."""
    counts: dict[str | None, int] = {}
    persons: dict[str | None, set[str]] = {}
    for event in events:
        values = decode_values(event.values)
        if prop not in values:
            # Stored before ``prop`` was declared (and not rebuilt since): in no tally either.
            continue
        value = values[prop]
        counts[value] = counts.get(value, 0) + 1
        if event.person is not None:
            persons.setdefault(value, set()).add(event.person)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, item[0] or ""))
    listed = [
        BreakdownValue(value, count, len(persons.get(value, ()))) for value, count in ranked[:limit]
    ]
    other = sum(count for _, count in ranked[limit:])
    return Breakdown(project_id, prop, start, end, listed, OtherCount(other), 0.0)


def count_points(events: Iterable[FilteredEvent], granularity: Granularity) -> list[CountPoint]:
    """Counts per bucket and event type of filtered events, as the count tables would give."""
    counts: dict[tuple[datetime, str], int] = {}
    for event in events:
        key = (bucket_start(event.timestamp, granularity), event.type)
        counts[key] = counts.get(key, 0) + 1
    return [CountPoint(bucket, kind, count) for (bucket, kind), count in sorted(counts.items())]


def exact_user_series(
    project_id: str,
    granularity: Granularity,
    start: datetime,
    end: datetime,
    events: Iterable[FilteredEvent],
) -> UserSeries:
    """Distinct persons per bucket and over the window, counted exactly from filtered events."""
    buckets: dict[datetime, set[str]] = {}
    everyone: set[str] = set()
    for event in events:
        if event.person is not None:
            buckets.setdefault(bucket_start(event.timestamp, granularity), set()).add(event.person)
            everyone.add(event.person)
    return UserSeries(
        project_id=project_id,
        granularity=granularity,
        start=start,
        end=end,
        total=len(everyone),
        series=[UsersPoint(bucket, len(buckets[bucket])) for bucket in sorted(buckets)],
        relative_error=0.0,
    )
