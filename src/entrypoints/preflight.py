"""The start-up check: a server a process needs that cannot be reached is one clear line, at once."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from dependency_injector import containers, providers

from eventcore.entrypoints.bootstrap import Readiness, close_resources, open_resources, resolve
from eventcore.errors import EventcoreError

# How long each server has to answer its first ping.
PING_TIMEOUT_SECONDS = 5.0


class CannotStart(Exception):
    """A server the process needs cannot be reached; the message says which and why."""


def one_line(text: str) -> str:
    """A driver's error text on one line: some (psycopg's) span several, with a hint after a tab."""
    return " ".join(text.split())


def cannot_start(exc: Exception, name: str | None = None) -> CannotStart:
    """The one line for a server that cannot be reached (``name``, as /health/ready names it,
    when it is known) and why."""
    reason = exc.message if isinstance(exc, EventcoreError) else f"{type(exc).__name__}: {exc}"
    hint = " (has `eventcore migrate` been run?)" if "role" in str(exc) else ""
    return CannotStart(one_line(f"{name}: {reason}" if name else reason) + hint)


@contextmanager
def reaching(name: str | None = None) -> Iterator[None]:
    """Work that connects to a server first (``name``, when it is the only one): whatever it
    raises is :class:`CannotStart`, the line every command prints for a server that is down."""
    try:
        yield
    except CannotStart:
        raise
    except Exception as exc:
        raise cannot_start(exc, name) from exc


async def open_checked(
    container: containers.Container, readiness: providers.Provider[Readiness]
) -> None:
    """Open the gateways of ``container`` and ping each dependency ``readiness`` names.

    One that is needed and down raises :class:`CannotStart`, with everything closed again; one
    that is not needed (Redis) is a warning on stderr, and the process goes on without it.
    """
    with reaching():
        await open_resources(container)
    try:
        probes = await resolve(readiness)
        for name, probe in probes.items():
            try:
                await asyncio.wait_for(probe.ping(), PING_TIMEOUT_SECONDS)
            except Exception as exc:
                if probe.critical:
                    raise cannot_start(exc, name) from exc
                # Without Redis eventcore degrades (no cache, no fast path) but serves.
                problem = one_line(f"{name}: {exc}")
                print(f"eventcore: warning: {problem}; continuing without it", file=sys.stderr)
        # Every server answers: the database's schema must be the one this code needs (a
        # store that keeps its own up to date, SQLite, has no such check).
        store = await resolve(container.gateways.store)  # type: ignore[attr-defined]
        check_schema = getattr(store, "check_schema", None)
        if check_schema is not None:
            try:
                await asyncio.wait_for(check_schema(), PING_TIMEOUT_SECONDS)
            except Exception as exc:
                raise cannot_start(exc, "database") from exc
    except BaseException:
        await close_resources(container)
        raise


async def check(container: containers.Container, readiness: providers.Provider[Readiness]) -> None:
    """Open the gateways, ping them and close them again: for a process that will open its own
    later, elsewhere (``eventcore serve`` hands the serving to uvicorn's processes)."""
    await open_checked(container, readiness)
    await close_resources(container)
