"""Ingest: authenticate, validate, rate-limit, drop known duplicates, hand the batch to the queue."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from eventcore.errors import InvalidRequest, RateLimited
from eventcore.events import (
    EventLimits,
    IngestBatch,
    RejectedEvent,
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
)
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


class Ingestor:
    """The write path, usable from HTTP or directly from code that embeds eventcore."""

    def __init__(
        self,
        keys: KeyResolver,
        queue: IngestQueue,
        admission: Admission,
        clock: Clock,
        limits: EventLimits | None = None,
    ) -> None:
        self._keys = keys
        self._queue = queue
        self._admission = admission
        self._clock = clock
        self.limits = limits or EventLimits()

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
        fresh, repeated = first_occurrences(validated.events)
        # The rate limit counts every event sent, valid or not, and refuses the whole call before
        # anything else is said about it (an over-rate call of invalid events is a 429, not a
        # 400); the same round trip asks which ids are known committed.
        admitted = await self._admission.admit(tenant, len(events), [event.id for event in fresh])
        if admitted.wait > 0:
            raise RateLimited(
                "This workspace is sending events faster than its rate limit.",
                retry_after=math.ceil(admitted.wait),
            )
        if not validated.events:
            raise EventsRejected(validated.rejected)
        known = admitted.known
        if known:
            fresh = [event for event in fresh if event.id not in known]
        if fresh:
            await self._queue.publish(
                IngestBatch(tenant.workspace_id, tenant.project_id, now, fresh)
            )
        return IngestReceipt(len(fresh), repeated + len(known), validated.rejected)
