"""How values are kept in SQLite columns: times as integer microseconds since the Unix epoch
(UTC), roles by their value, tuples of text (a project's dimensions) as a JSON array."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

_strings = msgspec.json.Decoder(tuple[str, ...])

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def moment(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def optional_moment(value: int | None) -> datetime | None:
    return None if value is None else moment(value)


def json_strings(items: tuple[str, ...]) -> str:
    """A tuple of text as stored: a JSON array."""
    return msgspec.json.encode(items).decode()


def strings(stored: str | bytes) -> tuple[str, ...]:
    """A tuple of text stored as a JSON array."""
    return _strings.decode(stored)


def values(record: msgspec.Struct) -> tuple[Any, ...]:
    """A record's fields in order, as SQLite stores them."""
    return tuple(_stored(field) for field in msgspec.structs.astuple(record))


def _stored(value: Any) -> Any:
    if isinstance(value, datetime):
        return micros(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return json_strings(value)
    return value
