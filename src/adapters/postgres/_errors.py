"""The one place where psycopg's exceptions become eventcore's errors.

A table, most specific row first, read by one context manager that every pooled connection is
used inside. What PostgreSQL said stays on the error's ``__cause__`` for the logs; of it, only a
refused value's reason reaches a message (the client must change that value).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

import psycopg
from psycopg import errors as pg

from eventcore.errors import (
    AlreadyExists,
    AlreadyMember,
    DatabaseUnavailable,
    EmailTaken,
    EventcoreError,
    InvalidRequest,
)


def _unstorable(exc: psycopg.Error) -> EventcoreError:
    # A value PostgreSQL cannot hold (a NUL character in a text, a number beyond numeric's
    # range): retrying cannot help, the input has to change. psycopg refuses a NUL itself,
    # before sending, so that error has no server diagnostic: its own text is the reason.
    reason = exc.diag.message_primary or str(exc)
    return InvalidRequest(f"PostgreSQL cannot store a value: {reason}", code="unstorable_value")


# (exception class, constraint it names or None for any, the error to raise). A unique key is
# named by its constraint (PostgreSQL's default names, from 0001_tables.sql). Connection loss,
# pool timeout, deadlock, serialization failure, shutdown are all OperationalError: transient
# for the caller (a worker retries, the API answers 503). Anything else is a bug here.
_TRANSLATIONS: Final[
    tuple[tuple[type[psycopg.Error], str | None, Callable[[psycopg.Error], EventcoreError]], ...]
] = (
    (pg.UniqueViolation, "users_email_key", lambda _: EmailTaken()),
    (pg.UniqueViolation, "memberships_pkey", lambda _: AlreadyMember()),
    (pg.UniqueViolation, "users_pkey", lambda _: AlreadyExists("user")),
    (pg.UniqueViolation, "workspaces_pkey", lambda _: AlreadyExists("workspace")),
    (pg.UniqueViolation, "projects_pkey", lambda _: AlreadyExists("project")),
    (pg.UniqueViolation, "api_keys_pkey", lambda _: AlreadyExists("API key")),
    (pg.UniqueViolation, "api_keys_key_hash_key", lambda _: AlreadyExists("API key", key="hash")),
    (pg.UniqueViolation, None, lambda _: AlreadyExists()),
    (psycopg.OperationalError, None, lambda _: DatabaseUnavailable()),
    (psycopg.DataError, None, _unstorable),
)


def translate(exc: psycopg.Error) -> EventcoreError | None:
    """The eventcore error for what psycopg raised, or None if it is not one to translate."""
    constraint = exc.diag.constraint_name
    for kind, name, error in _TRANSLATIONS:
        if isinstance(exc, kind) and name in (None, constraint):
            return error(exc)
    return None


@contextmanager
def postgres_errors() -> Iterator[None]:
    """Raise eventcore's error for any psycopg exception the table knows."""
    try:
        yield
    except psycopg.Error as exc:
        translated = translate(exc)
        if translated is None:
            raise
        raise translated from exc
