"""Funnels: how many persons did a sequence of steps in order, each within a window of the first.

Counted exactly from the raw events: a store hands over the events of the steps' types that have
a person, ordered by (person, timestamp, seq), and :func:`funnel_counts` walks them once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import groupby
from typing import Annotated, NamedTuple

import msgspec
from msgspec import Meta

from eventcore.defaults import (
    MAX_FUNNEL_STEPS,
    MAX_FUNNEL_WINDOW_SECONDS,
    MAX_TYPE_LENGTH,
    MAX_WHERE,
    MIN_FUNNEL_STEPS,
)
from eventcore.dimensions import Where, decode_values, matches


class FunnelStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A step: an event of ``event_type`` whose declared dimensions match every ``where``
    (``dimension:value``, as the analytics routes' ``where`` parameter)."""

    event_type: Annotated[str, Meta(min_length=1, max_length=MAX_TYPE_LENGTH)]
    where: Annotated[list[str], Meta(max_length=MAX_WHERE)] = msgspec.field(default_factory=list)


class StepRule(NamedTuple):
    """A step as the funnel walk applies it."""

    event_type: str
    where: tuple[Where, ...] = ()


class FunnelQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What ``POST /v1/analytics/funnel`` asks: persons whose first step falls in [start, end)."""

    project_id: Annotated[str, Meta(min_length=1, max_length=200)]
    steps: Annotated[
        list[FunnelStep], Meta(min_length=MIN_FUNNEL_STEPS, max_length=MAX_FUNNEL_STEPS)
    ]
    window_seconds: Annotated[int, Meta(ge=1, le=MAX_FUNNEL_WINDOW_SECONDS)]
    start: Annotated[datetime, Meta(tz=True)]
    end: Annotated[datetime, Meta(tz=True)]


class PersonEvent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One event as a funnel reads it."""

    person: str
    timestamp: datetime
    seq: int
    type: str
    # Its declared dimensions' values, as stored beside it (JSON; "" when none).
    values: str = ""


class FunnelStepResult(msgspec.Struct, frozen=True):
    event_type: str
    users: int
    # Of the persons who did the first step, the share who got this far (1.0 at the first).
    conversion: float


class FunnelResult(msgspec.Struct, frozen=True):
    steps: list[FunnelStepResult]


def reached(
    events: Sequence[PersonEvent],
    steps: Sequence[StepRule],
    window: timedelta,
    start: datetime,
    end: datetime,
) -> int:
    """How many steps, in order, one person's ``events`` (ordered by time, then seq) complete: a
    first step at a time t in [start, end), each next one at or after the previous one and no
    later than t + window, no event counting for two steps.

    One pass: ``latest[i]`` is the latest first-step time of a chain that has done steps 0..i so
    far (the latest leaves the most time for the next step). Steps go from the last to the first
    for each event, so that one event moves a chain on by one step at most.
    """
    return _reached(events, steps, _steps_by_type(steps), window, start, end)


def _steps_by_type(steps: Sequence[StepRule]) -> dict[str, list[int]]:
    """Each event type's step numbers, last first (the order ``reached`` tries them in)."""
    by_type: dict[str, list[int]] = {}
    for i in range(len(steps) - 1, -1, -1):
        by_type.setdefault(steps[i].event_type, []).append(i)
    return by_type


def _reached(
    events: Sequence[PersonEvent],
    steps: Sequence[StepRule],
    by_type: Mapping[str, Sequence[int]],
    window: timedelta,
    start: datetime,
    end: datetime,
) -> int:
    latest: list[datetime | None] = [None] * len(steps)
    filtered = any(step.where for step in steps)
    for event in events:
        values = decode_values(event.values) if filtered else {}
        for i in by_type.get(event.type, ()):
            if filtered and not matches(values, steps[i].where):
                continue
            if i == 0:
                if start <= event.timestamp < end:
                    latest[0] = event.timestamp
            else:
                first = latest[i - 1]
                if first is not None and event.timestamp <= first + window:
                    current = latest[i]
                    latest[i] = first if current is None else max(current, first)
    done = 0
    while done < len(steps) and latest[done] is not None:
        done += 1
    return done


def funnel_counts(
    events: Iterable[PersonEvent],
    steps: Sequence[StepRule],
    window: timedelta,
    start: datetime,
    end: datetime,
) -> FunnelResult:
    """The persons reaching each step, from every person's events ordered by (person, time, seq)."""
    at_least = [0] * (len(steps) + 1)
    by_type = _steps_by_type(steps)
    for _person, own in groupby(events, key=lambda event: event.person):
        at_least[_reached(list(own), steps, by_type, window, start, end)] += 1
    users: list[int] = []
    running = 0
    for done in range(len(steps), 0, -1):
        running += at_least[done]
        users.append(running)
    users.reverse()
    first = users[0]
    return FunnelResult(
        [
            FunnelStepResult(step.event_type, count, round(count / first, 4) if first else 0.0)
            for step, count in zip(steps, users, strict=True)
        ]
    )
