"""Cursors of the event list: a position, encrypted and authenticated for one listing.

A cursor is 44 URL-safe base64 characters: a version byte, a 128-bit tag and the 16-byte
position (the event's time in microseconds, the store's sequence number) encrypted. The scheme is
SIV with HMAC-SHA256 as its pseudo-random function: the tag is the MAC of the listing (workspace,
project, event-type filter) and the position, and the keystream is the PRF of the tag. So a
cursor reveals nothing (not the store-wide sequence, hence not the platform's volume), and one that
was not made by this key for this very listing (edited, truncated, forged, of another project,
workspace or filter) is refused before any store sees it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import NamedTuple

from eventcore.errors import InvalidRequest
from eventcore.events import EPOCH, EventCursor

_VERSION = b"\x01"
_TAG_BYTES = 16
# A position: its time in microseconds since 1970 (signed), then its sequence number, 8 bytes each.
_POSITION_BYTES = 16
# 1 + 16 + 16 bytes: 44 base64 characters exactly, with no padding and no spare bits, so that
# each text has one reading and any edited character is an edited byte.
_LENGTH = 44
# What a cursor's whole text matches (the OpenAPI document states it).
CURSOR_PATTERN = rf"[A-Za-z0-9_-]{{{_LENGTH}}}"
_ALPHABET = re.compile(CURSOR_PATTERN)
# The times a datetime holds: from the first microsecond of year 1 to the last of year 9999.
_MIN_MICROS = -62_135_596_800_000_000
_MAX_MICROS = 253_402_300_799_999_999
MAX_SEQ = 2**63 - 1


class CursorScope(NamedTuple):
    """The listing a cursor belongs to: it pages that listing and no other."""

    workspace_id: str
    project_id: str
    event_type: str | None

    def encode(self) -> bytes:
        fields = [self.workspace_id, self.project_id]
        # No filter and an empty filter are different listings.
        fields += [] if self.event_type is None else [self.event_type]
        parts = [f.encode("utf-8", "surrogatepass") for f in fields]
        return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def invalid_cursor() -> InvalidRequest:
    return InvalidRequest("`cursor` is not a cursor this API returned.", code="invalid_cursor")


class CursorCodec:
    """Seals positions into cursors and opens them, with one secret key.

    Every process serving one deployment must hold the same key (the composition root derives it
    from the token secret); :meth:`random` makes a key of this process only, whose cursors then do
    not survive a restart.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("A cursor key has at least 32 bytes.")
        self._mac_key = hmac.digest(key, b"mac", hashlib.sha256)
        self._stream_key = hmac.digest(key, b"stream", hashlib.sha256)

    @classmethod
    def from_secret(cls, secret: str) -> CursorCodec:
        """The codec of a server secret: its key is HMAC(secret, "eventcore cursor"), so that it
        is never the secret itself, nor the key of anything else made from it."""
        return cls(hmac.digest(secret.encode(), b"eventcore cursor", hashlib.sha256))

    @classmethod
    def random(cls) -> CursorCodec:
        return cls(secrets.token_bytes(32))

    def encode(self, scope: CursorScope, position: EventCursor) -> str:
        micros = (position.timestamp - EPOCH) // timedelta(microseconds=1)
        packed = micros.to_bytes(8, "big", signed=True) + position.seq.to_bytes(8, "big")
        return self.seal(scope, packed)

    def decode(self, scope: CursorScope, text: str) -> EventCursor:
        """The position of a cursor this codec made for ``scope``, or raise ``invalid_cursor``."""
        packed = self.open(scope, text)
        micros = int.from_bytes(packed[:8], "big", signed=True)
        seq = int.from_bytes(packed[8:], "big")
        if not (_MIN_MICROS <= micros <= _MAX_MICROS and 0 <= seq <= MAX_SEQ):
            raise invalid_cursor()
        return EventCursor(EPOCH + timedelta(microseconds=micros), seq)

    def seal(self, scope: CursorScope, position: bytes) -> str:
        """The cursor of a packed position (16 bytes)."""
        tag = self._tag(scope, position)
        sealed = _VERSION + tag + _xor(position, self._stream(tag))
        return base64.urlsafe_b64encode(sealed).decode("ascii")

    def open(self, scope: CursorScope, text: str) -> bytes:
        """The packed position of a cursor sealed for ``scope``, or raise ``invalid_cursor``."""
        if not _ALPHABET.fullmatch(text):
            raise invalid_cursor()
        sealed = base64.urlsafe_b64decode(text)
        version, tag, hidden = sealed[:1], sealed[1 : 1 + _TAG_BYTES], sealed[1 + _TAG_BYTES :]
        position = _xor(hidden, self._stream(tag))
        if version != _VERSION or not hmac.compare_digest(tag, self._tag(scope, position)):
            raise invalid_cursor()
        return position

    def _tag(self, scope: CursorScope, position: bytes) -> bytes:
        message = _VERSION + scope.encode() + position
        return hmac.digest(self._mac_key, message, hashlib.sha256)[:_TAG_BYTES]

    def _stream(self, tag: bytes) -> bytes:
        return hmac.digest(self._stream_key, tag, hashlib.sha256)[:_POSITION_BYTES]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))
