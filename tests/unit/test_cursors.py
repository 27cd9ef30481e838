"""The event list's cursors: sealed positions that open only with their key, for their listing."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventcore.cursors import MAX_SEQ, CursorCodec, CursorScope
from eventcore.errors import InvalidRequest
from eventcore.events import EventCursor

CODEC = CursorCodec.from_secret("a server secret that is long enough for tests")
SCOPE = CursorScope("ws-1", "project-1", None)
POSITION = EventCursor(datetime(2026, 1, 10, 12, 30, 0, 123456, tzinfo=UTC), 41)
# The layout of a sealed position: microseconds since 1970 (signed), then the sequence number.
PACKED = struct.Struct(">qQ")

SCOPES = st.builds(
    CursorScope,
    st.text(max_size=40),
    st.text(max_size=40),
    st.none() | st.text(max_size=40),
)
POSITIONS = st.builds(EventCursor, st.datetimes(timezones=st.just(UTC)), st.integers(0, MAX_SEQ))


def refused(scope: CursorScope, text: str, codec: CursorCodec = CODEC) -> bool:
    with pytest.raises(InvalidRequest) as caught:
        codec.decode(scope, text)
    assert caught.value.code == "invalid_cursor"
    assert caught.value.message == "`cursor` is not a cursor this API returned."
    return True


@given(scope=SCOPES, position=POSITIONS)
def test_a_cursor_opens_to_the_position_it_sealed(
    scope: CursorScope, position: EventCursor
) -> None:
    """Any position of any listing comes back exactly, as 44 URL-safe characters."""
    text = CODEC.encode(scope, position)
    assert len(text) == 44
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert CODEC.decode(scope, text) == position


def test_every_single_bit_flip_is_refused() -> None:
    """Flipping any one bit of a cursor's bytes makes it a bad cursor."""
    sealed = base64.urlsafe_b64decode(CODEC.encode(SCOPE, POSITION))
    for bit in range(len(sealed) * 8):
        flipped = bytearray(sealed)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert refused(SCOPE, base64.urlsafe_b64encode(bytes(flipped)).decode())


@given(scope=SCOPES, position=POSITIONS, data=st.data())
def test_a_single_bit_flip_is_refused_for_any_position(
    scope: CursorScope, position: EventCursor, data: st.DataObject
) -> None:
    """Whatever the listing and position, one flipped bit anywhere is refused."""
    sealed = bytearray(base64.urlsafe_b64decode(CODEC.encode(scope, position)))
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    assert refused(scope, base64.urlsafe_b64encode(bytes(sealed)).decode())


@given(scope=SCOPES, other=SCOPES, position=POSITIONS)
def test_a_cursor_opens_for_its_own_listing_only(
    scope: CursorScope, other: CursorScope, position: EventCursor
) -> None:
    """Another workspace, project or type filter (no filter is not the empty one) refuses it."""
    if other != scope:
        assert refused(other, CODEC.encode(scope, position))


def test_no_filter_and_an_empty_filter_are_different_listings() -> None:
    """The empty type filter lists nothing, and is not the listing of every type."""
    text = CODEC.encode(SCOPE, POSITION)
    assert refused(SCOPE._replace(event_type=""), text)
    assert refused(CursorScope("ws-1project-1", "", None), text)


def test_a_cursor_opens_with_its_own_key_only() -> None:
    """A cursor of another secret, or of a random key, is refused."""
    text = CODEC.encode(SCOPE, POSITION)
    assert refused(SCOPE, text, CursorCodec.from_secret("another server secret, long enough"))
    assert refused(SCOPE, text, CursorCodec.random())
    assert (
        CursorCodec.from_secret("a server secret that is long enough for tests").decode(SCOPE, text)
        == POSITION
    )


def test_a_cursor_hides_its_position() -> None:
    """Neither the sequence nor the time shows in the cursor's bytes, and the next sequence
    number gives an unrelated cursor."""
    first = base64.urlsafe_b64decode(CODEC.encode(SCOPE, POSITION))
    second = base64.urlsafe_b64decode(
        CODEC.encode(SCOPE, EventCursor(POSITION.timestamp, POSITION.seq + 1))
    )
    assert PACKED.pack(1768048200123456, 41) not in first
    assert (41).to_bytes(8, "big") not in first
    # Apart from the version byte, the two agree on about as many bits as chance would have.
    same = sum(8 - bin(a ^ b).count("1") for a, b in zip(first[1:], second[1:], strict=True))
    assert 64 <= same <= 192


@pytest.mark.parametrize(
    ("micros", "seq"),
    [
        (0, 2**63),
        (0, 2**64 - 1),  # -1 as a 64-bit pattern
        (-(2**63), 1),
        (2**63 - 1, 1),
        (-62135596800000001, 1),  # a microsecond before year 1
        (253402300800000000, 1),  # year 10000
    ],
)
def test_a_sealed_position_out_of_range_is_refused(micros: int, seq: int) -> None:
    """Even sealed with the right key, a sequence past 2^63-1 or a time no datetime holds is
    refused before any store sees it."""
    assert refused(SCOPE, CODEC.seal(SCOPE, PACKED.pack(micros, seq)))


def test_the_range_ends_themselves_are_positions() -> None:
    """Year 1, year 9999 and sequence 0 and 2^63-1 are in range."""
    for position in (
        EventCursor(datetime.min.replace(tzinfo=UTC), 0),
        EventCursor(datetime.max.replace(tzinfo=UTC), MAX_SEQ),
    ):
        assert CODEC.decode(SCOPE, CODEC.encode(SCOPE, position)) == position


@pytest.mark.parametrize(
    "text",
    [
        "",
        "A",
        "A" * 43,
        "A" * 44,
        "A" * 45,
        "A" * 10_000,
        "!" * 44,
        "A" * 43 + "=",
        "A" * 43 + "\x00",
        "A" * 42 + "==",
        "A" * 43 + "é",
        "A" * 43 + "\ud800",
        "W10",
        "WyIyMDI2LTAxLTEwVDEwOjAwOjAwWiIsMV0",
    ],
    ids=repr,
)
def test_garbage_is_refused(text: str) -> None:
    """Text that is not 44 base64 characters, or does not open, is a bad cursor."""
    assert refused(SCOPE, text)


def test_truncated_and_extended_cursors_are_refused() -> None:
    """A cursor with a character less or more, at either end, is refused."""
    text = CODEC.encode(SCOPE, POSITION)
    for edited in (text[1:], text[:-1], text + "A", "A" + text, text + text):
        assert refused(SCOPE, edited)


@given(st.text(max_size=100) | st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()))
def test_any_text_opens_or_is_refused(text: str) -> None:
    """Arbitrary text never raises anything but a bad cursor."""
    assert refused(SCOPE, text)


def test_a_key_is_at_least_32_bytes() -> None:
    """A short key is a wiring mistake, caught when the codec is made."""
    with pytest.raises(ValueError, match="32 bytes"):
        CursorCodec(b"short")
