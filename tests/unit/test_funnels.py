"""Funnels against a brute-force reference: every start, the earliest next step each time."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from eventcore.dimensions import Where
from eventcore.funnels import FunnelStepResult, PersonEvent, StepRule, funnel_counts, reached

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TYPES = ("a", "b", "c")


def rules(*types: str) -> list[StepRule]:
    return [StepRule(kind) for kind in types]


def brute_force(
    events: Sequence[PersonEvent],
    steps: Sequence[str],
    window: timedelta,
    start: datetime,
    end: datetime,
) -> int:
    """The most steps any first-step event in [start, end) leads to, taking at each step the
    earliest later event of the next type within the window (which is optimal for a fixed
    start), each event used once."""
    best = 0
    for i, first in enumerate(events):
        if first.type != steps[0] or not start <= first.timestamp < end:
            continue
        done, position = 1, i
        while done < len(steps):
            later = [
                j
                for j in range(position + 1, len(events))
                if events[j].type == steps[done] and events[j].timestamp <= first.timestamp + window
            ]
            if not later:
                break
            position = later[0]
            done += 1
        best = max(best, done)
    return best


person_events = st.lists(
    st.tuples(st.sampled_from(["p", "q", "r", "s"]), st.integers(0, 40), st.sampled_from(TYPES)),
    max_size=40,
).map(
    lambda rows: sorted(
        (
            PersonEvent(person, T0 + timedelta(minutes=minute), seq, kind)
            for seq, (person, minute, kind) in enumerate(rows)
        ),
        key=lambda e: (e.person, e.timestamp, e.seq),
    )
)
funnel_steps = st.lists(st.sampled_from(TYPES), min_size=2, max_size=5)
windows = st.integers(0, 30).map(lambda minutes: timedelta(minutes=minutes))
bounds = st.tuples(st.integers(0, 40), st.integers(0, 40)).map(
    lambda pair: (T0 + timedelta(minutes=min(pair)), T0 + timedelta(minutes=max(pair) + 1))
)


@given(person_events, funnel_steps, windows, bounds)
def test_each_persons_progress_is_the_brute_force_one(
    events: list[PersonEvent],
    steps: list[str],
    window: timedelta,
    window_bounds: tuple[datetime, datetime],
) -> None:
    start, end = window_bounds
    for person in {e.person for e in events}:
        own = [e for e in events if e.person == person]
        assert reached(own, rules(*steps), window, start, end) == brute_force(
            own, steps, window, start, end
        )


@given(person_events, funnel_steps, windows, bounds)
def test_the_funnel_counts_each_person_at_every_step_they_reached(
    events: list[PersonEvent],
    steps: list[str],
    window: timedelta,
    window_bounds: tuple[datetime, datetime],
) -> None:
    start, end = window_bounds
    progress = {
        person: brute_force([e for e in events if e.person == person], steps, window, start, end)
        for person in {e.person for e in events}
    }

    result = funnel_counts(events, rules(*steps), window, start, end).steps

    assert [s.users for s in result] == [
        sum(1 for done in progress.values() if done > i) for i in range(len(steps))
    ]
    assert [s.event_type for s in result] == steps
    assert all(later.users <= earlier.users for earlier, later in itertools.pairwise(result))
    first = result[0].users
    assert result[0].conversion == (1.0 if first else 0.0)


def test_one_event_counts_for_one_step_only() -> None:
    """A funnel a → a needs two events of type a."""
    one = [PersonEvent("p", T0, 1, "a")]
    two = [*one, PersonEvent("p", T0, 2, "a")]
    end = T0 + timedelta(hours=1)

    assert reached(one, rules("a", "a"), timedelta(hours=1), T0, end) == 1
    assert reached(two, rules("a", "a"), timedelta(hours=1), T0, end) == 2


def test_a_later_first_step_can_complete_what_an_earlier_one_cannot() -> None:
    """a at 0, a at 50, b at 70 (window 30 minutes): only the second a leads to b."""
    events = [
        PersonEvent("p", T0, 1, "a"),
        PersonEvent("p", T0 + timedelta(minutes=50), 2, "a"),
        PersonEvent("p", T0 + timedelta(minutes=70), 3, "b"),
    ]

    assert reached(events, rules("a", "b"), timedelta(minutes=30), T0, T0 + timedelta(hours=2)) == 2


def test_conversions_are_shares_of_the_first_step() -> None:
    events = [
        PersonEvent(person, T0 + timedelta(minutes=i), i, kind)
        for i, (person, kind) in enumerate(
            [("p", "a"), ("p", "b"), ("q", "a"), ("r", "a"), ("r", "b"), ("r", "c")]
        )
    ]
    result = funnel_counts(
        events, rules("a", "b", "c"), timedelta(hours=1), T0, T0 + timedelta(days=1)
    )

    assert result.steps == [
        FunnelStepResult("a", 3, 1.0),
        FunnelStepResult("b", 2, 0.6667),
        FunnelStepResult("c", 1, 0.3333),
    ]


def test_nobody_at_the_first_step_is_a_conversion_of_zero() -> None:
    result = funnel_counts([], rules("a", "b"), timedelta(hours=1), T0, T0 + timedelta(days=1))

    assert result.steps == [FunnelStepResult("a", 0, 0.0), FunnelStepResult("b", 0, 0.0)]


def test_a_step_with_where_counts_only_events_with_those_values() -> None:
    """view(plan=pro) → buy: the person whose view was on another plan does not start."""
    events = [
        PersonEvent("p", T0, 1, "view", '{"plan":"pro"}'),
        PersonEvent("p", T0 + timedelta(minutes=1), 2, "buy", '{"plan":"pro"}'),
        PersonEvent("q", T0, 3, "view", '{"plan":"free"}'),
        PersonEvent("q", T0 + timedelta(minutes=1), 4, "buy", '{"plan":"free"}'),
    ]
    steps = [StepRule("view", (Where("plan", "pro"),)), StepRule("buy")]

    result = funnel_counts(events, steps, timedelta(hours=1), T0, T0 + timedelta(days=1))

    assert [s.users for s in result.steps] == [1, 1]
