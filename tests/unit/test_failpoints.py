"""Failpoints: inert unless a hook is installed; the test-only setting that arms them is checked."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from eventcore import failpoints
from eventcore.entrypoints.settings import ConfigurationError, load_settings


@pytest.fixture(autouse=True)
def no_hooks() -> Iterator[None]:
    failpoints.clear()
    yield
    failpoints.clear()


@pytest.mark.parametrize("name", sorted(failpoints.NAMES))
def test_a_point_without_a_hook_does_nothing(name: str) -> None:
    """Passing a failpoint with no hook installed runs no hook, not even those at other points."""
    ran: list[str] = []
    for other in failpoints.NAMES - {name}:
        failpoints.install(other, functools.partial(ran.append, other))

    for _ in range(3):
        failpoints.hit(name)

    assert ran == []
    failpoints.hit(min(failpoints.NAMES - {name}))
    assert ran == [min(failpoints.NAMES - {name})], "the hooks installed elsewhere do run"


def test_cleared_hooks_no_longer_run() -> None:
    """After clear, passing a point that had a hook runs nothing."""
    ran: list[str] = []
    for name in failpoints.NAMES:
        failpoints.install(name, functools.partial(ran.append, name))
    failpoints.clear()

    for name in failpoints.NAMES:
        failpoints.hit(name)

    assert ran == []


def test_a_hook_runs_on_the_nth_hit_only() -> None:
    """A hook armed for the 3rd hit runs on the 3rd pass and on no other."""
    passes: list[str] = []
    fired_at: list[int] = []
    failpoints.install(
        failpoints.AFTER_COMMIT, failpoints.on_nth_hit(3, lambda: fired_at.append(len(passes)))
    )
    for _ in range(5):
        passes.append("pass")
        failpoints.hit(failpoints.AFTER_COMMIT)
        failpoints.hit(failpoints.AFTER_INSERT)
    assert fired_at == [3]


def test_unknown_points_are_refused() -> None:
    """Installing a hook at a point that does not exist is an error, not a silent no-op."""
    ran: list[str] = []
    with pytest.raises(ValueError, match="unknown failpoint"):
        failpoints.install("after_lunch", lambda: ran.append("after_lunch"))

    for name in ["after_lunch", *failpoints.NAMES]:
        failpoints.hit(name)
    assert ran == [], "the refused hook was installed all the same"


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("", {}),
        ("after_insert:3", {"after_insert": 3}),
        ("after_commit", {"after_commit": 1}),
        (" before_ack:2 , after_insert:1 ", {"before_ack": 2, "after_insert": 1}),
    ],
)
def test_specs_parse(spec: str, parsed: dict[str, int]) -> None:
    """A failpoint spec names points and the hit on which each fails (the first by default)."""
    assert failpoints.parse(spec) == parsed


@pytest.mark.parametrize("spec", ["after_lunch:1", "after_insert:x", "after_insert:0"])
def test_a_bad_failpoint_setting_stops_start_up(spec: str) -> None:
    """EVENTCORE_FAILPOINTS with an unknown point or a bad hit number is a configuration error."""
    with pytest.raises(ConfigurationError, match="EVENTCORE_FAILPOINTS"):
        load_settings({"EVENTCORE_FAILPOINTS": spec})
