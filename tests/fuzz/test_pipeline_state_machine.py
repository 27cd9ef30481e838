"""Stateful property tests of the whole pipeline across two workspaces, against a simple model.

Hypothesis drives random sequences of ingests (ids drawn from a small pool, so that repeats are
common, some events without an id), resends, key creation and revocation, queries, and (in the core
variant, whose queue holds batches until the test delivers them) deliveries out of order,
redeliveries of batches already committed, a fast path that forgets, deletions by id, by time
range and by person (of events stored, and of events still queued when the deletion was asked
for), suppressions of persons and their lifting, and expiry (a project's retention set or
cleared, the clock moved on, the retention run). After every query and at the end: the stored
events are exactly the model's, the counts are exact at minute, hour and day, another workspace
sees none of it, a revoked key is refused, and no event received while its person was suppressed
is ever stored.

Two variants: the HTTP API on the embedded profile (what a client sees: it suppresses new
persons, sends their events and lifts them, over the routes), and the core wired with the
in-memory adapters and a :class:`MemoryQueue` (what a queue consumer sees: it also suppresses
persons who have stored and queued events, and ingests through a second process whose
suppression cache never ends).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter
from collections.abc import Coroutine, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventcore import AuthenticationFailed, Granularity, NotFound
from eventcore.adapters.memory import MemoryCommittedKeys, MemoryQueue
from eventcore.adapters.memory.ratelimit import UnlimitedRateLimiter
from eventcore.aggregation import bucket_start
from eventcore.deletions import Deletion
from eventcore.events import IngestBatch
from eventcore.retention import cutoff
from eventcore.tenancy import Principal
from eventcore.usecases.ingest import Ingestor, SeparateAdmission, SuppressedPersons
from tests.fuzz.conftest import start_api
from tests.fuzz.support import examples, write
from tests.http.support import Account, Api
from tests.unit.conftest import NOW as CORE_NOW
from tests.unit.conftest import App, build_app

T = TypeVar("T")

IDS = [f"e{i}" for i in range(6)]
PERSONS = ["ada", "bob", "cy"]
TYPES = ["click", "view", "buy"]
GRAINS = list(Granularity)
# Minutes after the base: bucket edges often, anywhere in three days otherwise.
MINUTES = st.sampled_from([0, 1, 59, 60, 61, 1439, 1440, 2879]) | st.integers(0, 3 * 1440 - 1)


@dataclass(frozen=True)
class Sent:
    """An event as the client sent it (``id`` None: the server gives it one)."""

    id: str | None
    type: str
    minute: int
    # Its user_id (the core variant's events; the HTTP variant sends none).
    person: str | None = None


EVENT = st.builds(
    Sent,
    id=st.sampled_from(IDS) | st.none(),
    type=st.sampled_from(TYPES),
    minute=MINUTES,
)
BATCH = st.lists(EVENT, min_size=1, max_size=6)
PERSON_EVENT = st.builds(
    Sent,
    id=st.sampled_from(IDS) | st.none(),
    type=st.sampled_from(TYPES),
    minute=MINUTES,
    person=st.none() | st.sampled_from(PERSONS),
)
PERSON_BATCH = st.lists(PERSON_EVENT, min_size=1, max_size=6)
# A deletion as the model keeps it: (requested at, ids or None, start, end, persons or None).
Asked = tuple[
    datetime, frozenset[str] | None, datetime | None, datetime | None, frozenset[str] | None
]


@dataclass
class ProjectModel:
    """What a project must hold: stored events by id (server ids for the ones sent without)."""

    workspace: str
    events: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    anonymous: list[tuple[str, datetime]] = field(default_factory=list)
    # Deleted ids (never stored again), and each deletion asked for: a queued event received
    # by then that it takes is withheld at commit.
    deleted: set[str] = field(default_factory=set)
    deletions: list[Asked] = field(default_factory=list)
    # The stored events' persons (core variant), the persons suppressed now, and every
    # suppression as (person, from, until: None while in force).
    persons: dict[str, str | None] = field(default_factory=dict)
    suppressed: set[str] = field(default_factory=set)
    suppressions: list[tuple[str, datetime, datetime | None]] = field(default_factory=list)
    # The project's retention in days (None: for ever), and the ids the retention run expired
    # (no tombstone: the fast path may still know them, the store does not).
    retention: int | None = None
    expired: set[str] = field(default_factory=set)

    def takes(
        self,
        event_id: str,
        moment: datetime,
        received: datetime | None = None,
        deletions: list[Asked] | None = None,
        person: str | None = None,
    ) -> bool:
        """Whether a deletion (of ``deletions``, by default every one asked for) takes this
        event: one requested at or after ``received``, when given (an event still queued when
        it was requested)."""
        for requested, ids, start, end, persons in (
            self.deletions if deletions is None else deletions
        ):
            if received is not None and requested < received:
                continue
            if ids is not None and event_id not in ids:
                continue
            if persons is not None and person not in persons:
                continue
            if (start is not None and moment < start) or (end is not None and moment >= end):
                continue
            return True
        return False

    def was_suppressed(self, person: str | None, received: datetime) -> bool:
        """Whether ``person`` was suppressed when an event was ``received``."""
        return any(
            who == person and since <= received and (until is None or received < until)
            for who, since, until in self.suppressions
        )

    def counts(self, grain: Granularity) -> Counter[tuple[datetime, str]]:
        every = [*self.events.values(), *self.anonymous]
        return Counter((bucket_start(moment, grain), event_type) for event_type, moment in every)

    def stored(self) -> Counter[tuple[str | None, str, datetime]]:
        """Each stored event as (id, type, time), with None for ids the server chose."""
        known = [(event_id, t, m) for event_id, (t, m) in self.events.items()]
        return Counter([*known, *((None, t, m) for t, m in self.anonymous)])


@dataclass
class Key:
    id: str
    secret: str
    project_id: str
    workspace: str
    revoked: bool = False


def expected_receipt(model: ProjectModel, batch: list[Sent]) -> tuple[int, int]:
    """(accepted, duplicates) when every committed id is known: first sendings of new ids only."""
    seen: set[str] = set()
    accepted = 0
    for event in batch:
        if event.id is None or (event.id not in model.events and event.id not in seen):
            accepted += 1
        if event.id is not None:
            seen.add(event.id)
    return accepted, len(batch) - accepted


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class HttpPipeline(RuleBasedStateMachine):
    """Through the HTTP API on the embedded profile: what clients of two workspaces see."""

    def __init__(self) -> None:
        super().__init__()
        self.data_dir = Path(tempfile.mkdtemp(prefix="eventcore-stateful-"))
        self.api: Api = start_api(self.data_dir, {"EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "0"})
        # Whole days back, so that three days of minutes never reach past now + 24 h.
        today = bucket_start(datetime.now(UTC), Granularity.DAY)
        self.base = today - timedelta(days=2)
        self.owners: dict[str, Account] = {}
        self.projects: dict[str, ProjectModel] = {}
        self.keys: list[Key] = []
        self.history: list[tuple[str, list[Sent]]] = []
        # Persons made by the suppress rule, each suppressed when made (in one project, before
        # any event of theirs is stored there: the model keeps no persons, so no deletion of
        # stored events), which the ingest_as rule sends events of.
        self.people: list[str] = []
        for workspace, projects in (("A", ["A1", "A2"]), ("B", ["B1"])):
            owner = self.api.signup(workspace=workspace)
            self.owners[workspace] = owner
            for name in projects:
                project_id = self.api.create_project(owner, name)
                self.projects[project_id] = ProjectModel(workspace)
                self._new_key(project_id)

    def teardown(self) -> None:
        try:
            for project_id in self.projects:
                for grain in GRAINS:
                    self._check(project_id, grain)
        finally:
            self.api.stop()
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _new_key(self, project_id: str) -> Key:
        workspace = self.projects[project_id].workspace
        issued = self.api.create_key(self.owners[workspace], project_id)
        key = Key(issued["id"], issued["key"], project_id, workspace)
        self.keys.append(key)
        return key

    def _body(self, batch: list[Sent]) -> bytes:
        events = []
        for event in batch:
            wire: dict[str, Any] = {
                "type": event.type,
                "timestamp": (self.base + timedelta(minutes=event.minute)).isoformat(),
            }
            if event.id is not None:
                wire["id"] = event.id
            if event.person is not None:
                wire["user_id"] = event.person
            events.append(wire)
        return write({"events": events})

    def _send(self, key: Key, batch: list[Sent]) -> None:
        response = self.api.client.post(
            "/v1/ingest", content=self._body(batch), headers={"X-API-Key": key.secret}
        )
        if key.revoked:
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "revoked_api_key"
            return
        model = self.projects[key.project_id]
        assert response.status_code == 202, response.text
        answer = response.json()
        assert [(r["index"], r["code"]) for r in answer.pop("rejected")] == [
            (i, "suppressed") for i, e in enumerate(batch) if e.person in model.suppressed
        ]
        kept = [e for e in batch if e.person not in model.suppressed]
        accepted, duplicates = expected_receipt(model, kept)
        assert answer == {"accepted": accepted, "duplicates": duplicates}
        for event in kept:
            moment = self.base + timedelta(minutes=event.minute)
            if event.id is None:
                model.anonymous.append((event.type, moment))
            else:
                model.events.setdefault(event.id, (event.type, moment))
        self.history.append((key.project_id, batch))

    @rule(data=st.data(), batch=BATCH)
    def ingest(self, data: st.DataObject, batch: list[Sent]) -> None:
        """Send a batch with any key, live or revoked."""
        self._send(data.draw(st.sampled_from(self.keys), label="key"), batch)

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def resend(self, data: st.DataObject) -> None:
        """Send an earlier batch again, as a client retrying would, with a live key."""
        project_id, batch = data.draw(st.sampled_from(self.history), label="earlier batch")
        live = [key for key in self.keys if key.project_id == project_id and not key.revoked]
        key = data.draw(st.sampled_from(live), label="key") if live else self._new_key(project_id)
        self._send(key, batch)

    @rule(data=st.data())
    def create_key(self, data: st.DataObject) -> None:
        self._new_key(data.draw(st.sampled_from(list(self.projects)), label="project"))

    @precondition(lambda self: any(not key.revoked for key in self.keys))
    @rule(data=st.data())
    def revoke_key(self, data: st.DataObject) -> None:
        """Revoke a live key: at once refused, and another workspace's owner could not have."""
        key = data.draw(st.sampled_from([k for k in self.keys if not k.revoked]), label="key")
        other = self.owners["B" if key.workspace == "A" else "A"]
        foreign = self.api.client.delete(f"/v1/api-keys/{key.id}", headers=other.headers)
        assert foreign.status_code == 404, foreign.text
        response = self.api.client.delete(
            f"/v1/api-keys/{key.id}", headers=self.owners[key.workspace].headers
        )
        assert response.status_code == 204, response.text
        key.revoked = True
        self._send(key, [Sent("after-revoke", "click", 0)])

    @rule(data=st.data())
    def suppress(self, data: st.DataObject) -> None:
        """Suppress a new person in a project; another workspace's owner cannot."""
        project_id = data.draw(st.sampled_from(list(self.projects)), label="project")
        model = self.projects[project_id]
        person = f"s{len(self.people)}"
        body = {"project_id": project_id, "user_ids": [person], "suppress": True}
        stranger = self.owners["B" if model.workspace == "A" else "A"]
        foreign = self.api.client.post("/v1/deletions", json=body, headers=stranger.headers)
        assert foreign.status_code == 404, foreign.text
        owner = self.owners[model.workspace]
        response = self.api.client.post("/v1/deletions", json=body, headers=owner.headers)
        assert response.status_code == 202, response.text
        self.people.append(person)
        model.suppressed.add(person)

    @precondition(lambda self: self.people)
    @rule(data=st.data())
    def ingest_as(self, data: st.DataObject) -> None:
        """Send a batch of the made persons' events with any key: those of a person
        suppressed in the key's project are rejected one by one, the others go through."""
        batch = data.draw(
            st.lists(
                st.builds(
                    Sent,
                    id=st.sampled_from(IDS) | st.none(),
                    type=st.sampled_from(TYPES),
                    minute=MINUTES,
                    person=st.sampled_from(self.people),
                ),
                min_size=1,
                max_size=6,
            ),
            label="batch",
        )
        self._send(data.draw(st.sampled_from(self.keys), label="key"), batch)

    @precondition(lambda self: any(m.suppressed for m in self.projects.values()))
    @rule(data=st.data())
    def lift(self, data: st.DataObject) -> None:
        """Lift a suppression (at once on this process): another workspace cannot, and a
        second lift is 404."""
        project_id = data.draw(
            st.sampled_from([p for p, m in self.projects.items() if m.suppressed]), label="project"
        )
        model = self.projects[project_id]
        person = data.draw(st.sampled_from(sorted(model.suppressed)), label="person")
        path = f"/v1/suppressions/{person}?project_id={project_id}"
        stranger = self.owners["B" if model.workspace == "A" else "A"]
        assert self.api.client.delete(path, headers=stranger.headers).status_code == 404
        owner = self.owners[model.workspace]
        assert self.api.client.delete(path, headers=owner.headers).status_code == 204
        assert self.api.client.delete(path, headers=owner.headers).status_code == 404
        model.suppressed.discard(person)

    @rule(data=st.data(), grain=st.sampled_from(GRAINS))
    def query(self, data: st.DataObject, grain: Granularity) -> None:
        """Read a project's events and counts; the other workspace gets 404 for it."""
        self._check(data.draw(st.sampled_from(list(self.projects)), label="project"), grain)

    def _check(self, project_id: str, grain: Granularity) -> None:
        model = self.projects[project_id]
        owner = self.owners[model.workspace]
        listed = self.api.all_events(owner, project_id)
        stored = Counter(
            (e["id"] if e["id"] in model.events else None, e["type"], parse_time(e["timestamp"]))
            for e in listed
        )
        assert stored == model.stored()
        # Suppressed never stored; the project lists exactly the model's suppressed persons.
        assert not [e for e in listed if e["user_id"] in model.suppressed]
        suppressions = self.api.client.get(
            "/v1/suppressions", params={"project_id": project_id}, headers=owner.headers
        )
        assert [s["user_id"] for s in suppressions.json()["suppressions"]] == sorted(
            model.suppressed, key=str.encode
        )
        window = {
            "start": (self.base - timedelta(days=1)).isoformat(),
            "end": (self.base + timedelta(days=4)).isoformat(),
            "granularity": grain.value,
        }
        response = self.api.counts(owner, project_id, **window)
        assert response.status_code == 200, response.text
        series = response.json()
        counted = Counter(
            {(parse_time(p["bucket"]), p["event_type"]): p["count"] for p in series["series"]}
        )
        assert counted == model.counts(grain)
        assert series["total"] == sum(counted.values())
        stranger = self.owners["B" if model.workspace == "A" else "A"]
        assert self.api.events(stranger, project_id).status_code == 404
        assert self.api.counts(stranger, project_id, **window).status_code == 404


TestHttpPipeline = HttpPipeline.TestCase
TestHttpPipeline.settings = settings(
    max_examples=examples(25),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class CoreTenant:
    workspace: str
    principal: Principal


class CorePipeline(RuleBasedStateMachine):
    """The core on in-memory adapters, the queue drained by the test: what a consumer sees."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.queue = MemoryQueue()
        # A fast path that remembers only the last few keys, as a Redis that lost some would.
        self.app: App = build_app(queue=self.queue, committed=MemoryCommittedKeys(max_entries=4))
        self.base = bucket_start(CORE_NOW, Granularity.DAY) - timedelta(days=2)
        self.tenants: dict[str, CoreTenant] = {}
        self.projects: dict[str, ProjectModel] = {}
        self.keys: list[Key] = []
        self.delivered: list[IngestBatch] = []
        # Another API process on the same store and queue, whose suppression cache never ends.
        self.elsewhere = Ingestor(
            self.app.platform.keys,
            self.queue,
            SeparateAdmission(UnlimitedRateLimiter(), self.app.committed),
            self.app.clock,
            suppressed=SuppressedPersons(self.app.memory, self.app.clock, ttl=float("inf")),
        )
        self.stale_view: dict[str, frozenset[str]] = {}
        for workspace, projects in (("A", ["A1", "A2"]), ("B", ["B1"])):
            tenant = self.run(self.app.signup(workspace=workspace))
            self.tenants[workspace] = CoreTenant(workspace, tenant.principal)
            self.projects[tenant.project_id] = ProjectModel(workspace)
            self.keys.append(Key(tenant.key.id, tenant.api_key, tenant.project_id, workspace))
            for name in projects[1:]:
                project, key, secret = self.run(self.app.add_project(tenant.principal, name))
                self.projects[project.id] = ProjectModel(workspace)
                self.keys.append(Key(key.id, secret, project.id, workspace))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            # Whatever is still queued is delivered in the end, as a consumer would.
            self._commit(self.queue.take())
            for project_id in self.projects:
                for grain in GRAINS:
                    self._check(project_id, grain)
        finally:
            self.loop.close()

    def _commit(self, batches: list[IngestBatch]) -> int:
        """Commit ``batches`` as a consumer does, and the model with them: how many events were
        new (the store must say as many)."""
        result = self.run(self.app.processor.process(batches))
        self.delivered.extend(batches)
        inserted = 0
        for batch in batches:
            model = self.projects[batch.project_id]
            for event in batch.events:
                if event.id in model.deleted or event.id in model.events:
                    continue
                if model.retention is not None and event.timestamp < cutoff(
                    self.app.clock.now(), model.retention
                ):
                    # Past the retention when it is committed: withheld, and no id kept (the
                    # fast path, told the batch was committed, may still know it).
                    model.expired.add(event.id)
                    continue
                if (
                    model.takes(event.id, event.timestamp, batch.received_at, None, event.user_id)
                    or event.user_id in model.suppressed
                    or model.was_suppressed(event.user_id, batch.received_at)
                ):
                    model.deleted.add(event.id)
                    continue
                model.events[event.id] = (event.type, event.timestamp)
                model.persons[event.id] = event.user_id
                inserted += 1
        assert result.inserted == inserted
        return inserted

    @rule(data=st.data(), batch=PERSON_BATCH)
    def ingest(self, data: st.DataObject, batch: list[Sent]) -> None:
        """Send a batch with any key: a revoked one is refused, others queue one batch of the
        events whose person is not suppressed (the others are rejected, each at its index)."""
        key = data.draw(st.sampled_from(self.keys), label="key")
        self._ingest(self.app.ingestor, key, batch, self.projects[key.project_id].suppressed)

    @rule(data=st.data(), batch=PERSON_BATCH)
    def ingest_elsewhere(self, data: st.DataObject, batch: list[Sent]) -> None:
        """Send a batch to another API process whose cache of the project's suppressions never
        ends (read at its first request): it refuses the persons suppressed then and lets the
        ones suppressed since slip past, which the append must withhold."""
        key = data.draw(st.sampled_from(self.keys), label="key")
        # A revoked key is refused before the cache is read.
        seen = (
            frozenset()
            if key.revoked
            else self.stale_view.setdefault(
                key.project_id, frozenset(self.projects[key.project_id].suppressed)
            )
        )
        self._ingest(self.elsewhere, key, batch, seen)

    def _ingest(self, ingestor: Ingestor, key: Key, batch: list[Sent], refused: Set[str]) -> None:
        """Send ``batch`` with ``key`` to ``ingestor``, which refuses the persons ``refused``."""
        body = write(
            {
                "events": [
                    {
                        "type": e.type,
                        "timestamp": (self.base + timedelta(minutes=e.minute)).isoformat(),
                        **({"id": e.id} if e.id is not None else {}),
                        **({"user_id": e.person} if e.person is not None else {}),
                    }
                    for e in batch
                ]
            }
        )
        queued = len(self.queue.batches)
        if key.revoked:
            with pytest.raises(AuthenticationFailed) as unauthorized:
                self.run(ingestor.ingest(key.secret, body))
            assert unauthorized.value.code == "revoked_api_key"
            assert len(self.queue.batches) == queued
            return
        receipt = self.run(ingestor.ingest(key.secret, body))
        self.app.clock.advance(1)
        model = self.projects[key.project_id]
        assert [(r.index, r.code) for r in receipt.rejected] == [
            (i, "suppressed") for i, e in enumerate(batch) if e.person in refused
        ]
        batch = [e for e in batch if e.person not in refused]
        assert receipt.accepted + receipt.duplicates == len(batch)
        # The fast path may have forgotten an id (then it is queued again, and the store drops
        # it), but it never calls one duplicate that is neither committed nor repeated.
        first_sendings = [
            e for i, e in enumerate(batch) if e.id is None or e.id not in {x.id for x in batch[:i]}
        ]
        new = [
            e
            for e in first_sendings
            if e.id is None
            or (
                e.id not in model.events and e.id not in model.deleted and e.id not in model.expired
            )
        ]
        assert len(new) <= receipt.accepted <= len(first_sendings)
        if receipt.accepted == 0:
            assert len(self.queue.batches) == queued
            return
        assert len(self.queue.batches) == queued + 1
        queued_batch = self.queue.batches[-1]
        assert (queued_batch.workspace_id, queued_batch.project_id) == (
            self.tenants[key.workspace].principal.workspace_id,
            key.project_id,
        )
        sent = Counter(
            (e.type, self.base + timedelta(minutes=e.minute), e.person) for e in first_sendings
        )
        published = Counter((e.type, e.timestamp, e.user_id) for e in queued_batch.events)
        assert published <= sent
        assert len(queued_batch.events) == receipt.accepted
        for event in new:
            if event.id is not None:
                assert event.id in {e.id for e in queued_batch.events}

    @precondition(lambda self: self.queue.batches)
    @rule(data=st.data())
    def deliver_one(self, data: st.DataObject) -> None:
        """A consumer takes any queued batch (out of order) and commits it."""
        index = data.draw(st.integers(0, len(self.queue.batches) - 1), label="queued batch")
        self._commit([self.queue.batches.pop(index)])

    @precondition(lambda self: self.queue.batches)
    @rule()
    def deliver_all(self) -> None:
        """A consumer takes every queued batch and commits them in one transaction."""
        self._commit(self.queue.take())

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """A committed batch comes again (its ack was lost): nothing changes, unless a
        retention expired some of its events and was then cleared (they are stored again: no id
        of an expired event is kept, and it is within the project's retention now)."""
        batch = data.draw(st.sampled_from(self.delivered), label="committed batch")
        before = dict(self.app.memory.events)
        model = self.projects[batch.project_id]
        known = set(model.events)
        if self._commit([batch]) == 0:
            assert self.app.memory.events == before
        else:
            assert set(model.events) - known <= model.expired

    @rule(data=st.data())
    def create_key(self, data: st.DataObject) -> None:
        project_id = data.draw(st.sampled_from(list(self.projects)), label="project")
        workspace = self.projects[project_id].workspace
        issued = self.run(
            self.app.accounts.create_api_key(self.tenants[workspace].principal, project_id, "k")
        )
        self.keys.append(Key(issued.record.id, issued.secret, project_id, workspace))

    @precondition(lambda self: any(not key.revoked for key in self.keys))
    @rule(data=st.data())
    def revoke_key(self, data: st.DataObject) -> None:
        """Revoke a live key; another workspace's owner cannot."""
        key = data.draw(st.sampled_from([k for k in self.keys if not k.revoked]), label="key")
        stranger = self.tenants["B" if key.workspace == "A" else "A"].principal
        with pytest.raises(NotFound):
            self.run(self.app.accounts.revoke_api_key(stranger, key.id))
        self.run(self.app.accounts.revoke_api_key(self.tenants[key.workspace].principal, key.id))
        key.revoked = True

    @rule(
        data=st.data(),
        ids=st.none() | st.frozensets(st.sampled_from(IDS), min_size=1),
        span=st.none() | st.tuples(MINUTES, st.integers(1, 3 * 1440)),
    )
    def delete(
        self,
        data: st.DataObject,
        ids: frozenset[str] | None,
        span: tuple[int, int] | None,
    ) -> None:
        """Delete a project's events by id, by time range or both, and run the deletion: they
        are gone, counted no more, and never stored again; another workspace cannot ask."""
        if ids is None and span is None:
            span = (0, 3 * 1440)
        project_id = data.draw(st.sampled_from(list(self.projects)), label="project")
        model = self.projects[project_id]
        tenant = self.tenants[model.workspace]
        start = self.base + timedelta(minutes=span[0]) if span else None
        end = start + timedelta(minutes=span[1]) if start is not None and span else None
        stranger = self.tenants["B" if model.workspace == "A" else "A"].principal
        with pytest.raises(NotFound):
            self.run(self.app.platform.deletions.request(stranger, project_id, event_ids=["e0"]))
        deletion = self.run(
            self.app.platform.deletions.request(
                tenant.principal,
                project_id,
                event_ids=sorted(ids) if ids else None,
                start=start,
                end=end,
            )
        )
        self._carry_out(project_id, deletion, (deletion.requested_at, ids, start, end, None))

    def _carry_out(self, project_id: str, deletion: Deletion, asked: Asked) -> None:
        """Run a deletion just asked for: what it takes is gone, and kept as deleted."""
        model = self.projects[project_id]
        model.deletions.append(asked)
        # Later events are received after it (the clock moves on).
        self.app.clock.advance(1)
        taken = {
            i
            for i, (_, moment) in model.events.items()
            if model.takes(i, moment, None, [asked], model.persons.get(i))
        }
        done = self.run(self.app.platform.deletions.run(deletion.workspace_id, deletion.id))
        assert done is not None
        assert (done.status.value, done.events_deleted) == ("done", len(taken))
        for event_id in taken:
            del model.events[event_id]
        model.deleted |= taken
        _, ids, start, end, persons = asked
        if ids and start is None and end is None and not persons:
            # Ids alone: each is kept as deleted from the request on, whether its event was
            # stored, is still queued, or comes again later.
            model.deleted |= ids

    @rule(
        data=st.data(),
        persons=st.frozensets(st.sampled_from(PERSONS), min_size=1),
        span=st.none() | st.tuples(MINUTES, st.integers(1, 3 * 1440)),
    )
    def suppress(
        self, data: st.DataObject, persons: frozenset[str], span: tuple[int, int] | None
    ) -> None:
        """Delete persons' events (all, or of a time range) and suppress them: their events
        are refused from now on, and those still queued are never stored; another workspace
        cannot ask."""
        project_id = data.draw(st.sampled_from(list(self.projects)), label="project")
        model = self.projects[project_id]
        principal = self.tenants[model.workspace].principal
        start = self.base + timedelta(minutes=span[0]) if span else None
        end = start + timedelta(minutes=span[1]) if start is not None and span else None
        stranger = self.tenants["B" if model.workspace == "A" else "A"].principal
        with pytest.raises(NotFound):
            self.run(
                self.app.platform.deletions.request(
                    stranger, project_id, user_ids=sorted(persons), suppress=True
                )
            )
        deletion = self.run(
            self.app.platform.deletions.request(
                principal, project_id, user_ids=sorted(persons), start=start, end=end, suppress=True
            )
        )
        for person in persons - model.suppressed:
            model.suppressions.append((person, deletion.requested_at, None))
        model.suppressed |= persons
        self._carry_out(project_id, deletion, (deletion.requested_at, None, start, end, persons))

    @precondition(lambda self: any(m.suppressed for m in self.projects.values()))
    @rule(data=st.data())
    def lift(self, data: st.DataObject) -> None:
        """Lift a suppression: that person's events are accepted again; another workspace
        cannot, and lifting a person not suppressed is NotFound."""
        project_id = data.draw(
            st.sampled_from([p for p, m in self.projects.items() if m.suppressed]), label="project"
        )
        model = self.projects[project_id]
        person = data.draw(st.sampled_from(sorted(model.suppressed)), label="person")
        principal = self.tenants[model.workspace].principal
        stranger = self.tenants["B" if model.workspace == "A" else "A"].principal
        lifting = self.app.platform.deletions.lift
        with pytest.raises(NotFound):
            self.run(lifting(stranger, project_id, person))
        self.run(lifting(principal, project_id, person))
        with pytest.raises(NotFound):
            self.run(lifting(principal, project_id, person))
        now = self.app.clock.now()
        model.suppressed.discard(person)
        model.suppressions = [
            (who, since, now if who == person and until is None else until)
            for who, since, until in model.suppressions
        ]
        self.app.clock.advance(1)

    @rule(
        data=st.data(),
        days=st.none() | st.integers(1, 3),
        hours=st.sampled_from([0, 1, 24]) | st.integers(0, 72),
    )
    def expire(self, data: st.DataObject, days: int | None, hours: int) -> None:
        """Set (or clear) a project's retention, move the clock on, and run the retention: every
        project's events past its retention are gone and counted no more, the rest untouched;
        another workspace cannot set it."""
        project_id = data.draw(st.sampled_from(list(self.projects)), label="project")
        model = self.projects[project_id]
        stranger = self.tenants["B" if model.workspace == "A" else "A"].principal
        with pytest.raises(NotFound):
            self.run(self.app.accounts.set_retention(stranger, project_id, 1))
        principal = self.tenants[model.workspace].principal
        self.run(self.app.accounts.set_retention(principal, project_id, days))
        model.retention = days
        self.app.clock.advance(hours * 3600 + data.draw(st.integers(0, 59), label="seconds"))

        retained = self.run(self.app.platform.maintenance.run_retention())

        expected = 0
        projects = 0
        for each in self.projects.values():
            if each.retention is None:
                continue
            edge = cutoff(self.app.clock.now(), each.retention)
            gone = {i for i, (_, moment) in each.events.items() if moment < edge}
            expected += len(gone)
            projects += 1 if gone else 0
            for event_id in gone:
                del each.events[event_id]
                each.persons.pop(event_id, None)
            each.expired |= gone
        assert (retained.events, retained.projects) == (expected, projects)

    @rule(data=st.data(), grain=st.sampled_from(GRAINS))
    def query(self, data: st.DataObject, grain: Granularity) -> None:
        self._check(data.draw(st.sampled_from(list(self.projects)), label="project"), grain)

    @invariant()
    def nothing_is_stored_twice_or_across_tenants(self) -> None:
        """Every stored row is one of the model's events, in the project it was sent to."""
        for (workspace_id, project_id, event_id), (
            event,
            ws,
            project,
        ) in self.app.memory.events.items():
            assert (workspace_id, project_id, event_id) == (ws, project, event.id)
            model = self.projects[project]
            assert self.tenants[model.workspace].principal.workspace_id == ws
            assert model.events[event.id] == (event.type, event.timestamp)
        assert len(self.app.memory.events) == sum(len(m.events) for m in self.projects.values())
        # What was deleted is never stored again.
        for project_id, model in self.projects.items():
            for event_id in model.deleted:
                assert not any(
                    key.project_id == project_id and key.event_id == event_id
                    for key in self.app.memory.events
                )

    @invariant()
    def suppressed_never_stored(self) -> None:
        """No stored event was received while its person was suppressed in its project, and
        the store suppresses exactly the model's persons."""
        for event, _, project_id in self.app.memory.events.values():
            model = self.projects[project_id]
            assert not model.was_suppressed(event.user_id, event.received_at), event
        for project_id, model in self.projects.items():
            workspace_id = self.tenants[model.workspace].principal.workspace_id
            held = self.run(self.app.memory.suppressed_persons(workspace_id, project_id))
            assert held == model.suppressed

    def _check(self, project_id: str, grain: Granularity) -> None:
        model = self.projects[project_id]
        principal = self.tenants[model.workspace].principal
        analytics = self.app.analytics
        events: list[tuple[str, str, datetime]] = []
        cursor: str | None = None
        while True:
            page = self.run(analytics.list_events(principal, project_id, limit=7, cursor=cursor))
            events.extend((e.id, e.type, e.timestamp) for e in page.events)
            cursor = page.next_cursor
            if not cursor:
                break
        assert sorted(events) == sorted((i, t, m) for i, (t, m) in model.events.items())
        start, end = self.base - timedelta(days=1), self.base + timedelta(days=4)
        series = self.run(
            analytics.counts(principal, project_id, start=start, end=end, granularity=grain)
        )
        counted = Counter({(p.bucket, p.event_type): p.count for p in series.series})
        assert counted == model.counts(grain)
        assert series.total == len(model.events)
        stranger = self.tenants["B" if model.workspace == "A" else "A"].principal
        with pytest.raises(NotFound):
            self.run(
                analytics.counts(stranger, project_id, start=start, end=end, granularity=grain)
            )
        with pytest.raises(NotFound):
            self.run(analytics.list_events(stranger, project_id))


TestCorePipeline = CorePipeline.TestCase
TestCorePipeline.settings = settings(
    max_examples=examples(50),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
