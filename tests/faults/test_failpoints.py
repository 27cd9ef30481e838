"""Failpoints, the crash tests' machinery: armed only by the test-only setting, and only in the
worker's composition root, where they wrap the ports at exactly the steps the crash tests name.

No servers needed: these run with the unit tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from dependency_injector import providers

from eventcore.adapters.memory import MemoryCommittedKeys
from eventcore.entrypoints import failpoints
from eventcore.entrypoints.bootstrap import (
    WorkerContainer,
    close_resources,
    open_resources,
    resolve,
)
from eventcore.entrypoints.failpoints import Failpoints
from eventcore.entrypoints.settings import ConfigurationError, load_settings
from eventcore.events import Event, IngestBatch
from eventcore.tenancy import ProjectRef

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def batch(*event_ids: str) -> IngestBatch:
    events = [Event(event_id, "click", NOW, msgspec.Raw(b"{}")) for event_id in event_ids]
    return IngestBatch(workspace_id="ws1", project_id="p1", received_at=NOW, events=events)


class Recorder:
    """A failpoint action that records the points reached instead of ending the process."""

    def __init__(self) -> None:
        self.reached: list[str] = []

    def __call__(self, name: str) -> None:
        self.reached.append(name)


@pytest.mark.parametrize("name", sorted(failpoints.NAMES))
def test_a_point_that_is_not_armed_has_no_hook(name: str) -> None:
    """A point not armed has nothing to run, not even the hooks of the points that are."""
    reached = Recorder()
    points = Failpoints(dict.fromkeys(failpoints.NAMES - {name}, 1), reached)

    assert points.hook(name) is None
    other = min(failpoints.NAMES - {name})
    hook = points.hook(other)
    assert hook is not None
    hook()
    assert reached.reached == [other], "the hooks armed elsewhere do run"


def test_each_root_has_its_own_failpoints() -> None:
    """Arming points in one process's root arms nothing anywhere else: there is no registry."""
    reached = Recorder()
    armed = Failpoints(dict.fromkeys(failpoints.NAMES, 1), reached)
    unarmed = Failpoints({}, reached)

    assert all(unarmed.hook(name) is None for name in failpoints.NAMES)
    assert all(armed.hook(name) is not None for name in failpoints.NAMES)
    assert reached.reached == []


def test_a_hook_runs_on_the_nth_hit_only() -> None:
    """A point armed for the 3rd hit fails on the 3rd pass and on no other."""
    passes: list[str] = []
    fired_at: list[int] = []
    points = Failpoints(
        {failpoints.AFTER_COMMIT: 3, failpoints.AFTER_INSERT: 9},
        lambda name: fired_at.append(len(passes)) if name == failpoints.AFTER_COMMIT else None,
    )
    after_commit = points.hook(failpoints.AFTER_COMMIT)
    after_insert = points.hook(failpoints.AFTER_INSERT)
    assert after_commit is not None
    assert after_insert is not None
    for _ in range(5):
        passes.append("pass")
        after_commit()
        after_insert()
    assert fired_at == [3]


def test_unknown_points_are_refused() -> None:
    """Arming or asking for a point that does not exist is an error, not a silent no-op."""
    reached = Recorder()
    with pytest.raises(ValueError, match="unknown failpoint"):
        Failpoints({"after_lunch": 1}, reached)
    with pytest.raises(ValueError, match="unknown failpoint"):
        Failpoints({}, reached).hook("after_lunch")
    assert reached.reached == []


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
    assert Failpoints.from_spec(spec).armed == parsed


@pytest.mark.parametrize("spec", ["after_lunch:1", "after_insert:x", "after_insert:0"])
def test_a_bad_failpoint_setting_stops_start_up(spec: str) -> None:
    """EVENTCORE_FAILPOINTS with an unknown point or a bad hit number is a configuration error."""
    with pytest.raises(ConfigurationError, match="EVENTCORE_FAILPOINTS"):
        load_settings({"EVENTCORE_FAILPOINTS": spec})


class RecordingKeys(MemoryCommittedKeys):
    """Committed keys that note each `remember` in a shared journal."""

    def __init__(self, journal: list[str]) -> None:
        super().__init__()
        self._journal = journal

    async def remember(self, batches: Sequence[IngestBatch]) -> None:
        self._journal.append("remembered")
        await super().remember(batches)


async def test_after_commit_is_passed_before_the_keys_are_remembered() -> None:
    """The wrapped committed keys pass AFTER_COMMIT before they remember a batch (the processor
    remembers right after its commit), and answer `known` as the keys they wrap."""
    journal: list[str] = []
    keys = RecordingKeys(journal)
    wrapped = Failpoints({failpoints.AFTER_COMMIT: 1}, journal.append).committed_keys(keys)

    await wrapped.remember([batch("a", "b")])

    assert journal == [failpoints.AFTER_COMMIT, "remembered"]
    assert await wrapped.known(ProjectRef("ws1", "p1"), ["a", "b", "c"]) == {"a", "b"}
    assert Failpoints({}).committed_keys(keys) is keys, "unarmed, nothing is wrapped"


async def test_before_ack_is_passed_once_the_handler_returned() -> None:
    """The wrapped handler passes BEFORE_ACK after the handler returned, never when it raised
    (a failed group is not acked but retried)."""
    reached = Recorder()
    handled: list[list[IngestBatch]] = []

    async def handler(batches: list[IngestBatch]) -> int:
        assert len(reached.reached) == len(handled), "the point was passed before the handler"
        handled.append(batches)
        if len(handled) == 2:
            raise RuntimeError("a bad batch")
        return len(batches)

    wrapped = Failpoints({failpoints.BEFORE_ACK: 1}, reached).handler(handler)

    assert await wrapped([batch("a")]) == 1
    assert reached.reached == [failpoints.BEFORE_ACK]
    with pytest.raises(RuntimeError):
        await wrapped([batch("b")])
    assert reached.reached == [failpoints.BEFORE_ACK]
    assert Failpoints({}).handler(handler) is handler, "unarmed, nothing is wrapped"


@pytest.fixture
async def worker_root(tmp_path: Path) -> AsyncIterator[tuple[WorkerContainer, Recorder]]:
    """The worker's composition root with every point armed for its first pass, recording
    instead of exiting (on the embedded store: no server needed)."""
    settings = load_settings(
        {
            "EVENTCORE_DATA_DIR": str(tmp_path),
            "EVENTCORE_FAILPOINTS": "after_insert:1,after_commit:1,before_ack:1",
        }
    )
    container = WorkerContainer(settings=settings)
    reached = Recorder()
    container.failpoints.override(
        providers.Object(Failpoints(failpoints.parse(settings.failpoints), reached))
    )
    await open_resources(container)
    try:
        yield container, reached
    finally:
        await close_resources(container)


async def test_the_worker_root_wraps_each_armed_step_of_the_commit_path(
    worker_root: tuple[WorkerContainer, Recorder],
) -> None:
    """Armed, the worker's store gets the AFTER_INSERT hook as its before-commit call, and one
    group handled passes AFTER_COMMIT and then BEFORE_ACK, in that order."""
    container, reached = worker_root
    before_commit = container.gateways.before_commit()
    assert before_commit is container.failpoints().hook(failpoints.AFTER_INSERT)

    handler = await resolve(container.handler)
    await handler([batch("a", "b")])

    assert reached.reached == [failpoints.AFTER_COMMIT, failpoints.BEFORE_ACK]


async def test_an_unarmed_worker_root_wraps_nothing(tmp_path: Path) -> None:
    """Without EVENTCORE_FAILPOINTS the worker's ports are the adapters themselves."""
    container = WorkerContainer(settings=load_settings({"EVENTCORE_DATA_DIR": str(tmp_path)}))
    await open_resources(container)
    try:
        assert container.gateways.before_commit() is None
        committed = await resolve(container.committed)
        assert committed is await resolve(container.gateways.committed)
    finally:
        await close_resources(container)
