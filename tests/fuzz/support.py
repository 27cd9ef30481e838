"""Helpers for the bad-input suites: raw JSON writing, what the store holds, example budgets."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog.testing

from tests.http.support import Api, Tenant, assert_error

# `nox -s fuzz` sets this to run the quick hypothesis suites with more examples.
SCALE = max(1, int(os.environ.get("FUZZ_EXAMPLES_SCALE", "1")))


def examples(quick: int) -> int:
    """The example budget: ``quick`` in the everyday suite, more in the fuzz session."""
    return quick * SCALE


@dataclass(frozen=True)
class Token:
    """JSON text written exactly as given: NaN, 1e999, a lone surrogate escape, a raw NUL byte."""

    text: bytes


@dataclass(frozen=True)
class Pairs:
    """An object written key by key, so that a key may appear more than once."""

    items: Sequence[tuple[str | Token, Any]]


def write(value: Any) -> bytes:
    """JSON text of ``value``, where :class:`Token` and :class:`Pairs` may appear at any depth."""
    if isinstance(value, Token):
        return value.text
    if isinstance(value, Pairs):
        return b"{" + b",".join(write(k) + b":" + write(v) for k, v in value.items) + b"}"
    if isinstance(value, dict):
        return write(Pairs(list(value.items())))
    if isinstance(value, list | tuple):
        return b"[" + b",".join(write(item) for item in value) + b"]"
    return msgspec.json.encode(value)


def nested(depth: int, leaf: Any, *, arrays: bool = False) -> Any:
    """``leaf`` inside ``depth`` objects (or arrays); built as text, so any depth is cheap."""
    if arrays:
        return Token(b"[" * depth + write(leaf) + b"]" * depth)
    return Token(b'{"a":' * depth + write(leaf) + b"}" * depth)


class Store:
    """What the embedded profile's SQLite file holds for one project, read beside the app."""

    def __init__(self, api: Api, tenant: Tenant) -> None:
        self._path = api.settings.sqlite_path
        self._tenant = tenant

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(f"file:{self._path}?mode=ro", uri=True)) as connection:
            where = (self._tenant.owner.workspace_id, self._tenant.project_id, *params)
            return connection.execute(sql, where).fetchall()

    def count(self) -> int:
        """Every stored event of the project."""
        rows = self._rows("SELECT count(*) FROM events WHERE workspace_id = ? AND project_id = ?")
        return int(rows[0][0])

    def event(self, event_id: str) -> tuple[str, str] | None:
        """(type, properties text) of the stored event with this id, if there is one."""
        rows = self._rows(
            "SELECT event_type, properties FROM events"
            " WHERE workspace_id = ? AND project_id = ? AND event_id = ?",
            event_id,
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def ids(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` are stored."""
        return {event_id for event_id in event_ids if self.event(event_id) is not None}


@contextmanager
def no_error_logged() -> Iterator[None]:
    """The block logs nothing at error level or above (a refusal is no server error)."""
    with structlog.testing.capture_logs() as logs:
        yield
    errors = [entry for entry in logs if entry["log_level"] in ("error", "critical")]
    assert not errors, errors


def refused(response: Any, status: int, codes: set[str] | None = None) -> dict[str, Any]:
    """The answer is ``status`` in the JSON error shape, with one of ``codes`` when given."""
    error = assert_error(response, status)
    if codes is not None:
        assert error["code"] in codes, error
    return error


def fresh_ids(prefix: str) -> Iterator[str]:
    """Ids no earlier example used, so that one example's events never collide with another's."""
    number = 0
    while True:
        number += 1
        yield f"{prefix}-{number}"
