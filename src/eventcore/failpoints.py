"""Named points in the commit path where a test can make a process fail on purpose.

Production code calls :func:`hit` at each point; it does nothing unless a hook was installed
for that name (only the worker does so, and only when ``EVENTCORE_FAILPOINTS`` asks, which is
for testing). The module does no I/O: a hook decides what failing means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

# In the store's append, after every insert of the transaction and before its COMMIT.
AFTER_INSERT = "after_insert"
# In processing, after the commit and before the committed keys are written to the fast path.
AFTER_COMMIT = "after_commit"
# In the queue consumer, after the handler returned (keys remembered) and before the acks.
BEFORE_ACK = "before_ack"

NAMES = frozenset({AFTER_INSERT, AFTER_COMMIT, BEFORE_ACK})

Hook = Callable[[], None]

_hooks: dict[str, Hook] = {}


def hit(name: str) -> None:
    """The code passes point ``name``: run its hook, if one is installed."""
    hook = _hooks.get(name)
    if hook is not None:
        hook()


def install(name: str, hook: Hook) -> None:
    """Run ``hook`` every time point ``name`` is passed (replacing any earlier hook there)."""
    if name not in NAMES:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(sorted(NAMES))}")
    _hooks[name] = hook


def clear() -> None:
    """Remove every hook."""
    _hooks.clear()


def parse(spec: str) -> Mapping[str, int]:
    """``"after_insert:3,before_ack:1"`` to ``{name: the hit that fails}``; ValueError if malformed."""
    chosen: dict[str, int] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, sep, count = part.strip().partition(":")
        if name not in NAMES:
            raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(sorted(NAMES))}")
        try:
            nth = int(count) if sep else 1
        except ValueError:
            raise ValueError(f"failpoint {name!r} needs a hit number, e.g. {name}:3") from None
        if nth < 1:
            raise ValueError(f"failpoint {name!r}: the hit number must be at least 1")
        chosen[name] = nth
    return chosen


def on_nth_hit(nth: int, action: Hook) -> Hook:
    """A hook that runs ``action`` on the ``nth`` time its point is passed, and only then."""
    hits = 0

    def hook() -> None:
        nonlocal hits
        hits += 1
        if hits == nth:
            action()

    return hook
