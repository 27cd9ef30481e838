"""Ingest: authenticate, validate, rate-limit, drop known duplicates, hand the batch to the queue."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from eventcore.defaults import SUPPRESSION_CACHE_SECONDS
from eventcore.errors import DatabaseUnavailable, InvalidRequest, RateLimited
from eventcore.events import (
    Event,
    EventLimits,
    IngestBatch,
    RejectedEvent,
    ValidatedBatch,
    check_count,
    split_request,
    validate_events,
)
from eventcore.idempotency import first_occurrences
from eventcore.ports import (
    Admission,
    Admitted,
    Clock,
    CommittedKeys,
    IngestQueue,
    RateLimiter,
    SuppressionStore,
)
from eventcore.suppressions import SUPPRESSED, is_suppressed
from eventcore.tenancy import ProjectRef
from eventcore.usecases.accounts import KeyResolver


class IngestReceipt(msgspec.Struct, frozen=True):
    """``accepted`` events went to the queue; ``duplicates`` were already known and dropped."""

    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]


class EventsRejected(InvalidRequest):
    """Every event of the request was invalid."""

    def __init__(self, rejected: list[RejectedEvent]) -> None:
        first = rejected[0]
        super().__init__(
            f"No event was valid; event {first.index}: {first.message}", code="invalid_events"
        )
        self.rejected = rejected


class SeparateAdmission:
    """An :class:`~eventcore.ports.Admission` asking a rate limiter, then the committed keys."""

    def __init__(self, limiter: RateLimiter, committed: CommittedKeys) -> None:
        self._limiter = limiter
        self._committed = committed

    async def admit(self, tenant: ProjectRef, events: int, event_ids: Sequence[str]) -> Admitted:
        wait = await self._limiter.acquire(tenant.workspace_id, events)
        if wait > 0 or not event_ids:
            return Admitted(wait)
        return Admitted(0.0, frozenset(await self._committed.known(tenant, event_ids)))


class SuppressedPersons:
    """Each project's suppressed persons as read from the store, kept ``ttl`` seconds: the
    ingest check's cache, one per process (of the most recent ``max_projects`` projects).

    A project without suppressions is remembered as the empty set, so that its ingest costs one
    dictionary lookup a request and the store one read a second per process. A change made in
    this process is seen at once (:meth:`forget`), one made in another within ``ttl``.
    """

    def __init__(
        self,
        store: SuppressionStore,
        clock: Clock,
        ttl: float = SUPPRESSION_CACHE_SECONDS,
        max_projects: int = 100_000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._max = max_projects
        self._entries: OrderedDict[tuple[str, str], tuple[float, frozenset[str]]] = OrderedDict()

    async def of(self, tenant: ProjectRef) -> frozenset[str]:
        """The project's suppressed persons, as read at most ``ttl`` seconds ago.

        A store that cannot be reached gives the empty set, not remembered: the ingest check is
        a courtesy to the sender, and the append, which checks again, is the guarantee.
        """
        key = (tenant.workspace_id, tenant.project_id)
        now = self._clock.now().timestamp()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        try:
            persons = await self._store.suppressed_persons(*key)
        except DatabaseUnavailable:
            return frozenset()
        self._entries[key] = (now + self._ttl, persons)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return persons

    def forget(self, workspace_id: str, project_id: str) -> None:
        """Read the project's suppressions again at its next ingest (this process changed them)."""
        self._entries.pop((workspace_id, project_id), None)


def without_suppressed(
    validated: ValidatedBatch, persons: frozenset[str], sent: int
) -> tuple[list[Event], list[RejectedEvent]]:
    """The valid events whose person is not suppressed, and every rejection by index: the
    invalid events' and the suppressed ones' (``sent``: how many events the request held).

    A valid event's index is the next one no rejection holds: validation reports only the
    invalid ones, so the common case (nothing suppressed) keeps nothing more per event.
    """
    rejected_at = {r.index for r in validated.rejected}
    indexes = (index for index in range(sent) if index not in rejected_at)
    kept: list[Event] = []
    refused: list[RejectedEvent] = []
    for index, event in zip(indexes, validated.events, strict=False):
        if is_suppressed(persons, event):
            refused.append(
                RejectedEvent(
                    index=index,
                    code=SUPPRESSED,
                    message="The event's person (`user_id` or `anonymous_id`) is suppressed in"
                    " this project: its events are not accepted until the suppression is lifted.",
                )
            )
        else:
            kept.append(event)
    if not refused:
        return validated.events, validated.rejected
    return kept, sorted([*validated.rejected, *refused], key=lambda r: r.index)


class Ingestor:
    """The write path, usable from HTTP or directly from code that embeds eventcore."""

    def __init__(
        self,
        keys: KeyResolver,
        queue: IngestQueue,
        admission: Admission,
        clock: Clock,
        limits: EventLimits | None = None,
        suppressed: SuppressedPersons | None = None,
    ) -> None:
        self._keys = keys
        self._queue = queue
        self._admission = admission
        self._clock = clock
        self.limits = limits or EventLimits()
        self._suppressed = suppressed

    def now(self) -> datetime:
        """The time this ingestor stamps on what it receives now (its clock's)."""
        return self._clock.now()

    async def ingest(self, api_key: str | None, body: bytes) -> IngestReceipt:
        """A request body (one event or ``{"events": [...]}``) sent with an API key."""
        record = await self._keys.resolve(api_key)
        return await self.submit(record.tenant, split_request(body, self.limits))

    async def submit(
        self,
        tenant: ProjectRef,
        events: Sequence[bytes | Mapping[str, Any]],
        *,
        limits: EventLimits | None = None,
    ) -> IngestReceipt:
        """Events for a tenant the caller has already authenticated (JSON texts or mappings).

        ``limits`` replaces the ingestor's own for this call (a protocol that wraps each message
        in an event needs room for the wrapping).
        """
        limits = limits or self.limits
        check_count(len(events), limits)
        if not events:
            raise InvalidRequest("Send at least one event.", code="invalid_body")
        now = self.now()
        validated = validate_events(events, now=now, limits=limits)
        valid, rejected = validated.events, validated.rejected
        if self._suppressed is not None and valid:
            persons = await self._suppressed.of(tenant)
            if persons:
                valid, rejected = without_suppressed(validated, persons, len(events))
        fresh, repeated = first_occurrences(valid)
        # The rate limit counts every event sent, valid or not, and refuses the whole call before
        # anything else is said about it (an over-rate call of invalid events is a 429, not a
        # 400); the same round trip asks which ids are known committed.
        admitted = await self._admission.admit(tenant, len(events), [event.id for event in fresh])
        if admitted.wait > 0:
            raise RateLimited(
                "This workspace is sending events faster than its rate limit.",
                retry_after=math.ceil(admitted.wait),
            )
        # Only a request without a valid event is refused: suppressed events are valid ones the
        # project does not take, which sending again would not change.
        if not validated.events:
            raise EventsRejected(validated.rejected)
        known = admitted.known
        if known:
            fresh = [event for event in fresh if event.id not in known]
        if fresh:
            await self._queue.publish(
                IngestBatch(tenant.workspace_id, tenant.project_id, now, fresh)
            )
        return IngestReceipt(len(fresh), repeated + len(known), rejected)
