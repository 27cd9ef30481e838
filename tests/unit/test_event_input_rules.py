"""The quick checks of the ingest path agree with a full reading of the JSON, whatever it holds.

`unreadable_number` and `repeated_key` look at raw text with substring searches first and parse
only when those hit; these properties compare them with what Python's own reader finds.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from eventcore.events import MAX_INTEGER, MIN_INTEGER, repeated_key, unreadable_number

# Text that looks like numbers, escapes and quotes, so that strings try to fool the scan.
TRICKY_TEXT = st.text(alphabet='0123456789eE+-."\\u abc', max_size=30)
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([MAX_INTEGER, MAX_INTEGER + 1, MIN_INTEGER, MIN_INTEGER - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=20,
)
# Numbers that overflow a float only as written: exponents and long mantissas.
OVERFLOWING = st.tuples(st.integers(1, 30), st.integers(-400, 400)).map(
    lambda c: f"{10 ** c[0]}e{c[1]}"
)


def ints_in_range(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return True
    if isinstance(value, int):
        return MIN_INTEGER <= value <= MAX_INTEGER
    items = value.values() if isinstance(value, dict) else value
    return all(ints_in_range(item) for item in items)


@settings(max_examples=300)
@given(value=st.dictionaries(TRICKY_TEXT, VALUES, max_size=5))
def test_an_unreadable_integer_is_found_wherever_it_is(value: dict[str, Any]) -> None:
    """Any JSON object: refused exactly when it holds an integer outside the 64-bit range."""
    text = json.dumps(value).encode()
    problem = unreadable_number(text, "`properties`")
    assert (problem is None) == ints_in_range(value), (text, problem)
    if problem is not None:
        assert problem[0] == "invalid_number"


@settings(max_examples=200)
@given(number=OVERFLOWING, padding=TRICKY_TEXT)
def test_an_overflowing_float_is_found(number: str, padding: str) -> None:
    """A number written with an exponent is refused exactly when it reads as infinity."""
    text = b'{"s":%s,"n":[%s]}' % (json.dumps(padding).encode(), number.encode())
    problem = unreadable_number(text, "`properties`")
    assert (problem is None) == (float(number) != float("inf")), (text, problem)


FIELDS = ["id", "type", "timestamp", "properties"]
KEYS = tuple(json.dumps(name).encode() for name in FIELDS)


def escaped(name: str) -> str:
    return '"' + "".join(f"\\u{ord(c):04x}" for c in name) + '"'


@settings(max_examples=300)
@given(
    members=st.lists(
        st.tuples(
            st.sampled_from([*FIELDS, "extra"]),
            st.booleans(),
            st.dictionaries(st.sampled_from([*FIELDS, "k"]), st.integers(0, 3), max_size=3),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_a_repeated_field_is_found_exactly(members: list[tuple[str, bool, dict[str, int]]]) -> None:
    """An object's top-level field given twice (spelled plainly or with escapes) is found, and
    field names nested in its values never count."""
    text = (
        "{"
        + ",".join(
            f"{escaped(name) if spelled else json.dumps(name)}:{json.dumps(value)}"
            for name, spelled, value in members
        )
        + "}"
    ).encode()
    inner = list(msgspec.json.decode(text, type=dict[str, msgspec.Raw]).values())
    names = [name for name, _spelled, _value in members]
    expected = next((name for name in FIELDS if names.count(name) > 1), None)
    found = repeated_key(text, KEYS, inner, "The event")
    assert found == (
        None
        if expected is None
        else ("duplicate_key", f"The event gives `{expected}` more than once.")
    ), text
