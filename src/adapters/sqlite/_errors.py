"""The one place where SQLite's exceptions become eventcore's errors.

A table, most specific row first, read by one context manager that every call into SQLite goes
through. What SQLite said stays on the error's ``__cause__`` for the logs; it never reaches the
message a client may see.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from eventcore.errors import (
    AlreadyExists,
    AlreadyMember,
    DatabaseUnavailable,
    EmailTaken,
    EventcoreError,
)

# (SQLite's error name starts with, its message starts with, the error to raise).
_Translation = tuple[str, str, Callable[[], EventcoreError]]


def _unique(columns: str, error: Callable[[], EventcoreError]) -> _Translation:
    """A unique key, named by its columns as SQLite names them, refused a row."""
    return ("SQLITE_CONSTRAINT", f"UNIQUE constraint failed: {columns}", error)


def _failing(name: str) -> _Translation:
    """Busy, locked, disk full or failing: it passes; try again later."""
    return (name, "", DatabaseUnavailable)


# Most specific first. Anything the table does not know is a bug here and stays as it is.
_TRANSLATIONS: Final[tuple[_Translation, ...]] = (
    _unique("users.email", EmailTaken),
    _unique("memberships.workspace_id, memberships.user_id", AlreadyMember),
    _unique("users.id", functools.partial(AlreadyExists, "user")),
    _unique("workspaces.id", functools.partial(AlreadyExists, "workspace")),
    _unique("projects.workspace_id, projects.id", functools.partial(AlreadyExists, "project")),
    _unique("api_keys.workspace_id, api_keys.id", functools.partial(AlreadyExists, "API key")),
    _unique("api_keys.key_hash", functools.partial(AlreadyExists, "API key", key="hash")),
    _unique("", AlreadyExists),
    _failing("SQLITE_BUSY"),
    _failing("SQLITE_LOCKED"),
    _failing("SQLITE_FULL"),
    _failing("SQLITE_IOERR"),
)


def translate(exc: sqlite3.Error) -> EventcoreError | None:
    """The eventcore error for what SQLite raised, or None if it is not one to translate."""
    name = getattr(exc, "sqlite_errorname", "")
    message = str(exc)
    for error_name, message_start, error in _TRANSLATIONS:
        if name.startswith(error_name) and message.startswith(message_start):
            return error()
    return None


@contextmanager
def sqlite_errors() -> Iterator[None]:
    """Raise eventcore's error for any SQLite exception the table knows."""
    try:
        yield
    except sqlite3.Error as exc:
        translated = translate(exc)
        if translated is None:
            raise
        raise translated from exc
