"""A breakdown read as totals per value (the listed values' sketches only) gives exactly the
answer of every daily tally: the same ranking, counts, persons' estimates and relative error,
for any tallies and limit; and a store's rows of totals, in any order, make the same totals."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventcore.dimensions import (
    DimensionTally,
    Kind,
    TotalRow,
    ValueTotal,
    add_value_persons,
    breakdown_of_tallies,
    breakdown_of_totals,
    totals_of_rows,
    totals_of_tallies,
)

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
START, END = DAY0, DAY0 + timedelta(days=5)
# Values that tie and order differently by code point than by UTF-16 (U+FF5E, U+1F600).
VALUES = ("a", "b", "Z", "a ", "é", "日本", "\uff5e", "\U0001f600")

keys = st.one_of(
    st.tuples(st.just(Kind.VALUE), st.sampled_from(VALUES)),
    st.just((Kind.NONE, "")),
    st.just((Kind.OTHER, "")),
)
# A tally's persons: none (no sketch), a few (the sketch keeps their coupons) or hundreds (past
# 384 coupons a 2^12 sketch is HLL registers, and the merged answer an estimate).
persons = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 50), st.integers(1, 30)),
    st.tuples(st.integers(0, 2000), st.integers(300, 900)),
)
tallies_of_window = st.dictionaries(
    st.tuples(st.integers(0, 4), keys),
    st.tuples(st.integers(1, 40), persons),
    max_size=40,
)


def _tallies(
    drawn: dict[tuple[int, tuple[Kind, str]], tuple[int, tuple[int, int] | None]],
) -> list[DimensionTally]:
    """The tallies in the stores' order (day, kind, value), each sketch of its persons."""
    made = []
    for (day, (kind, value)), (count, who) in sorted(drawn.items()):
        sketch = (
            None
            if who is None
            else add_value_persons(None, (f"p{n}" for n in range(who[0], who[0] + who[1])))
        )
        made.append(DimensionTally(DAY0 + timedelta(days=day), kind, value, count, sketch))
    return made


def _rows(tallies: list[DimensionTally], listed: int) -> list[TotalRow]:
    """What a store's statement gives for the window: a row per total, a row per sketch of a
    listed value with its day."""
    totals = totals_of_tallies(tallies, listed)
    chosen = {(t.kind, t.value) for t in totals if t.sketches is not None}
    rows: list[TotalRow] = [
        (int(t.kind), t.value, t.count, (t.kind, t.value) in chosen, None, None) for t in totals
    ]
    rows += [
        (int(t.kind), t.value, None, None, t.sketch, t.day)
        for t in tallies
        if (t.kind, t.value) in chosen and t.sketch is not None
    ]
    return rows


def _by_key(totals: list[ValueTotal]) -> dict[tuple[Kind, str], ValueTotal]:
    return {(t.kind, t.value): t for t in totals}


@settings(max_examples=150, deadline=None)
@given(drawn=tallies_of_window, limit=st.integers(1, 12), seed=st.integers(0, 2**32))
def test_totals_give_the_answer_of_every_tally(
    drawn: dict[tuple[int, tuple[Kind, str]], tuple[int, tuple[int, int] | None]],
    limit: int,
    seed: int,
) -> None:
    tallies = _tallies(drawn)

    totals = totals_of_tallies(tallies, limit)

    assert breakdown_of_totals("p", "plan", START, END, totals, limit) == breakdown_of_tallies(
        "p", "plan", START, END, tallies, limit
    )
    # A store's rows, in whatever order its database gives them, make the same totals (each
    # listed value's sketches put back in day order).
    rows = _rows(tallies, limit)
    random.Random(seed).shuffle(rows)
    assert _by_key(totals_of_rows(rows)) == _by_key(totals)


def test_the_answer_lists_the_largest_values_with_their_persons_and_counts_the_rest() -> None:
    ada_bob = add_value_persons(None, ["ada", "bob"])
    cy = add_value_persons(None, ["cy"])
    tallies = [
        DimensionTally(DAY0, Kind.VALUE, "pro", 3, ada_bob),
        DimensionTally(DAY0, Kind.VALUE, "free", 1, cy),
        DimensionTally(DAY0, Kind.OTHER, "", 7, cy),
        DimensionTally(DAY0 + timedelta(days=1), Kind.VALUE, "pro", 2, cy),
        DimensionTally(DAY0 + timedelta(days=1), Kind.NONE, "", 4, None),
    ]

    totals = totals_of_tallies(tallies, 2)
    answer = breakdown_of_totals("p", "plan", START, END, totals, 2)

    assert _by_key(totals) == {
        (Kind.VALUE, "pro"): ValueTotal(Kind.VALUE, "pro", 5, [ada_bob, cy]),
        (Kind.NONE, ""): ValueTotal(Kind.NONE, "", 4, []),
        (Kind.VALUE, "free"): ValueTotal(Kind.VALUE, "free", 1, None),
        (Kind.OTHER, ""): ValueTotal(Kind.OTHER, "", 7, None),
    }
    assert [(v.value, v.count, v.users) for v in answer.values] == [("pro", 5, 3), (None, 4, 0)]
    assert answer.other.count == 8
    assert answer.relative_error == 0


def test_a_listed_value_read_without_its_sketches_is_refused_not_answered_without_persons() -> None:
    # A store that ranked the values otherwise than the core left "b"'s sketches unread.
    totals = [
        ValueTotal(Kind.VALUE, "a", 2, None),
        ValueTotal(Kind.VALUE, "b", 2, [add_value_persons(None, ["ada"])]),
    ]

    with pytest.raises(RuntimeError, match="no sketches"):
        breakdown_of_totals("p", "plan", START, END, totals, 1)
