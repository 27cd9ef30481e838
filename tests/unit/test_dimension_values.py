"""An event's values of declared paths: the stores' ValueReader (a decoder of just the paths'
members) gives what values_of (the whole object decoded) gives, for any object and paths."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from eventcore.dimensions import ValueReader, values_of

NAMES = st.sampled_from(["a", "b", "plan", "context", "page", "path", "m0", "$x", "-"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=4)),
    max_leaves=12,
)
PATHS = st.lists(
    st.lists(NAMES, min_size=1, max_size=3).map(".".join), min_size=1, max_size=4, unique=True
)


@given(properties=st.dictionaries(NAMES, JSON, max_size=5), paths=PATHS)
def test_the_reader_reads_what_values_of_reads(
    properties: dict[str, Any], paths: list[str]
) -> None:
    encoded = msgspec.json.encode(properties)
    expected = values_of(encoded, paths)
    assert ValueReader(tuple(paths))(encoded) == tuple(expected[path] for path in paths)


def test_the_reader_spells_values_as_values_of_does() -> None:
    reader = ValueReader(("plan", "context.page.path", "n"))
    found = reader(b'{"plan":true,"context":{"page":{"path":"/a\\u00e9"}},"n":1e2,"x":[1]}')
    assert found == ("true", "/a\u00e9", "100.0")
    # An object where the path goes on, null, an array, absent: no value.
    assert reader(b'{"plan":null,"context":{"page":null},"n":[1]}') == (None, None, None)
    assert reader(b'{"context":"text","plan":{"a":1}}') == (None, None, None)
    # One path the prefix of another: the whole object is read, with the same answers.
    nested = ValueReader(("a", "a.b"))
    assert nested(b'{"a":{"b":-0}}') == (None, "0")
    assert nested(b'{"a":"x"}') == ("x", None)
