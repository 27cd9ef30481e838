"""Unique-user sketches: exact for few persons, within the stated error for many, mergeable,
and moved only by the events actually inserted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from eventcore.aggregation import Granularity
from eventcore.events import Event, IngestBatch
from eventcore.persons import (
    ALL_TYPES,
    Estimate,
    SketchKey,
    StoredSketch,
    add_persons,
    day_sketch_of_hours,
    estimate,
    person_increments,
    sketch_of,
    user_series,
    whole_days,
    window_user_series,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
persons = st.sets(st.text(min_size=1, max_size=12), max_size=300)


@given(persons)
def test_few_persons_are_counted_exactly_and_say_so(people: set[str]) -> None:
    found = estimate([sketch_of(people)])

    assert found.users == len(people)
    assert found.relative_error == 0.0


@given(st.lists(persons, max_size=6))
def test_a_union_of_sketches_counts_each_person_once(groups: list[set[str]]) -> None:
    everyone = set().union(*groups)

    found = estimate([sketch_of(group) for group in groups])

    assert found.users == len(everyone)


def test_many_persons_are_within_three_stated_errors() -> None:
    """Past the exact range the answer is an estimate whose stated standard error covers it."""
    for count in (5_000, 50_000, 200_000):
        people = [f"person-{n}" for n in range(count)]
        found = estimate([sketch_of(people[: count // 2]), sketch_of(people[count // 3 :])])
        assert 0 < found.relative_error < 0.02
        assert abs(found.users - count) <= 3 * found.relative_error * count


def test_adding_persons_already_in_a_sketch_changes_nothing() -> None:
    sketch = sketch_of(["ada", "bob"])

    assert add_persons(sketch, ["bob", "ada"]) == sketch
    assert estimate([add_persons(sketch, ["cy"])]).users == 3


def test_the_same_persons_make_the_same_bytes_in_one_step_and_the_same_answer_in_any() -> None:
    """One sketch of a set is the same bytes whatever the set's order (each store makes them so
    in a rebuild); added in other steps, the coupons' order differs but not the answer."""
    assert sketch_of(["a", "b", "c"]) == sketch_of(["c", "a", "b"])
    stepwise = add_persons(add_persons(None, ["c"]), ["b", "a"])
    assert estimate([stepwise]) == estimate([sketch_of(["a", "b", "c"])])


def test_no_sketch_is_no_one() -> None:
    assert estimate([]).users == 0


def test_each_event_adds_its_person_to_its_hour_and_day_of_its_type_and_of_all() -> None:
    events = [
        Event("1", "view", T0 + timedelta(minutes=5), msgspec.Raw(b"{}"), user_id="ada"),
        Event("2", "buy", T0 + timedelta(minutes=50), msgspec.Raw(b"{}"), anonymous_id="x"),
        Event("3", "view", T0 + timedelta(hours=1), msgspec.Raw(b"{}"), "bob", "x"),
        Event("4", "view", T0, msgspec.Raw(b"{}")),
    ]

    increments = person_increments([IngestBatch("ws", "p", T0, events)])

    hour, next_hour = T0, T0 + timedelta(hours=1)
    assert increments == {
        SketchKey("ws", "p", hour, "view"): {"ada"},
        SketchKey("ws", "p", hour, ALL_TYPES): {"ada", "x"},
        SketchKey("ws", "p", hour, "buy"): {"x"},
        SketchKey("ws", "p", next_hour, "view"): {"bob"},
        SketchKey("ws", "p", next_hour, ALL_TYPES): {"bob"},
        SketchKey("ws", "p", T0, "view", Granularity.DAY): {"ada", "bob"},
        SketchKey("ws", "p", T0, "buy", Granularity.DAY): {"x"},
        SketchKey("ws", "p", T0, ALL_TYPES, Granularity.DAY): {"ada", "bob", "x"},
    }


def test_a_series_counts_buckets_and_the_whole_window_apart() -> None:
    hours = [
        (T0, sketch_of(["ada", "bob"])),
        (T0 + timedelta(hours=1), sketch_of(["bob"])),
        (T0 + timedelta(days=1), sketch_of(["ada", "cy"])),
    ]

    by_day = user_series("p", Granularity.DAY, T0, T0 + timedelta(days=2), hours)

    assert [(p.bucket, p.users) for p in by_day.series] == [
        (T0, 2),
        (T0 + timedelta(days=1), 2),
    ]
    assert by_day.total == 3
    assert by_day.relative_error == 0.0


def test_whole_days_are_those_inside_the_window() -> None:
    assert whole_days(T0, T0 + timedelta(days=2)) == (T0, T0 + timedelta(days=2))
    inside = whole_days(T0 + timedelta(hours=5), T0 + timedelta(days=3, hours=1))
    assert inside == (T0 + timedelta(days=1), T0 + timedelta(days=3))
    none = T0 + timedelta(hours=23)
    assert whole_days(T0 + timedelta(hours=1), none) == (none, none)
    last = datetime(9999, 12, 31, 23, tzinfo=UTC)
    assert whole_days(datetime(9999, 12, 31, 1, tzinfo=UTC), last) == (last, last)


def test_a_new_day_sketch_starts_from_its_hours_union() -> None:
    assert day_sketch_of_hours([]) is None
    assert day_sketch_of_hours([b""]) is None
    start = day_sketch_of_hours([sketch_of(["ada", "bob"]), sketch_of(["bob", "cy"])])
    assert start is not None
    assert estimate([start]) == estimate([sketch_of(["ada", "bob", "cy"])])


def test_a_window_answer_merges_whole_days_and_the_other_hours() -> None:
    """Hourly buckets from each hour's estimate (kept, or from its sketch); the total from the
    whole day's sketch and the hours outside it; a day without a sketch from its hours."""
    day1 = T0 + timedelta(days=1)
    rows = [
        StoredSketch(day1, Granularity.DAY, None, sketch_of(["ada", "bob", "cy"])),
        StoredSketch(T0 + timedelta(hours=20), Granularity.HOUR, None, sketch_of(["dee", "ada"])),
        StoredSketch(day1 + timedelta(hours=1), Granularity.HOUR, Estimate(2, 0.0), None),
        StoredSketch(day1 + timedelta(hours=2), Granularity.HOUR, None, sketch_of(["cy"])),
    ]
    start, end = T0 + timedelta(hours=20), day1 + timedelta(days=1)

    hourly = window_user_series("p", Granularity.HOUR, start, end, rows)

    assert hourly.total == 4
    assert [(p.bucket.hour, p.users) for p in hourly.series] == [(20, 2), (1, 2), (2, 1)]
    daily = window_user_series("p", Granularity.DAY, T0, end, [rows[0], rows[1]])
    assert [(p.bucket, p.users) for p in daily.series] == [(T0, 2), (day1, 3)]
    assert daily.total == 4
    assert daily.relative_error == 0.0
