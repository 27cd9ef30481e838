"""Failpoints, for crash tests only: make ``eventcore worker`` die at a named step of its commit path.

``EVENTCORE_FAILPOINTS="after_insert:3,before_ack:1"`` arms points. The worker's composition root
(:class:`eventcore.entrypoints.bootstrap.WorkerContainer`) then wraps the port at each armed point
so that the Nth pass through it ends the process at once, as SIGKILL or a power cut would: no
cleanup, no acks, no COMMIT. Nothing is wrapped at a point that is not armed, and the core never
knows: it has no test machinery of its own.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from eventcore.events import IngestBatch
from eventcore.ports import CommittedKeys
from eventcore.tenancy import ProjectRef

# In the store's append transaction, after its inserts and before its COMMIT.
AFTER_INSERT = "after_insert"
# In processing, after the commit and before the committed keys are written to the fast path.
AFTER_COMMIT = "after_commit"
# In the queue consumer, after the handler returned (keys remembered) and before the acks.
BEFORE_ACK = "before_ack"

NAMES = frozenset({AFTER_INSERT, AFTER_COMMIT, BEFORE_ACK})

# The status of a process killed by SIGKILL as a shell reports it (128 + 9).
EXIT_STATUS = 137

Hook = Callable[[], None]
R = TypeVar("R")
Handler = Callable[[list[IngestBatch]], Awaitable[R]]


def parse(spec: str) -> dict[str, int]:
    """``"after_insert:3,before_ack:1"`` to ``{name: the hit that fails}``; ValueError if malformed."""
    chosen: dict[str, int] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, sep, count = part.strip().partition(":")
        _check_known(name)
        try:
            nth = int(count) if sep else 1
        except ValueError:
            raise ValueError(f"failpoint {name!r} needs a hit number, e.g. {name}:3") from None
        if nth < 1:
            raise ValueError(f"failpoint {name!r}: the hit number must be at least 1")
        chosen[name] = nth
    return chosen


def _check_known(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(sorted(NAMES))}")


def exit_at(name: str) -> None:
    """End the process now, as SIGKILL would, saying which point it reached."""
    # Written straight to the descriptor: os._exit flushes no buffer.
    os.write(sys.stderr.fileno(), f"eventcore worker: failpoint {name} reached\n".encode())
    os._exit(EXIT_STATUS)


def on_nth_hit(nth: int, action: Hook) -> Hook:
    """A hook that runs ``action`` on the ``nth`` time it is called, and only then."""
    hits = 0

    def hook() -> None:
        nonlocal hits
        hits += 1
        if hits == nth:
            action()

    return hook


class Failpoints:
    """The points armed in one process, each with its own count of passes."""

    def __init__(self, armed: Mapping[str, int], action: Callable[[str], None] = exit_at) -> None:
        for name in armed:
            _check_known(name)
        self.armed: Mapping[str, int] = dict(armed)
        self._hooks = {
            name: on_nth_hit(nth, functools.partial(action, name)) for name, nth in armed.items()
        }

    @classmethod
    def from_spec(cls, spec: str) -> Failpoints:
        return cls(parse(spec))

    def hook(self, name: str) -> Hook | None:
        """What to call at each pass through ``name``, or None when it is not armed."""
        _check_known(name)
        return self._hooks.get(name)

    def committed_keys(self, keys: CommittedKeys) -> CommittedKeys:
        """``keys``, passing AFTER_COMMIT first whenever committed keys are remembered (the
        processor remembers right after its commit: the same step)."""
        hit = self.hook(AFTER_COMMIT)
        return keys if hit is None else _RememberingAfter(keys, hit)

    def handler(self, handler: Handler[R]) -> Handler[R]:
        """``handler``, passing BEFORE_ACK once it has returned (the consumer acks a group, or a
        batch handled alone, only after its handler returned)."""
        hit = self.hook(BEFORE_ACK)
        if hit is None:
            return handler
        passed: Hook = hit

        async def handle(batches: list[IngestBatch]) -> R:
            result = await handler(batches)
            passed()
            return result

        return handle


class _RememberingAfter:
    """Committed keys that pass a failpoint before each ``remember``."""

    def __init__(self, inner: CommittedKeys, hit: Hook) -> None:
        self._inner = inner
        self._hit = hit

    async def known(self, tenant: ProjectRef, event_ids: Sequence[str]) -> set[str]:
        return await self._inner.known(tenant, event_ids)

    async def remember(self, batches: Sequence[IngestBatch]) -> None:
        self._hit()
        await self._inner.remember(batches)
