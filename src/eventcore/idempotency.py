"""Idempotency: an event id is a key scoped to its (workspace, project), stored and counted once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from eventcore.events import Event, IngestBatch


class IdempotencyKey(NamedTuple):
    """The scope of an event id. Two tenants using the same id never meet."""

    workspace_id: str
    project_id: str
    event_id: str


def keys_of(batches: Iterable[IngestBatch]) -> list[IdempotencyKey]:
    return [
        IdempotencyKey(batch.workspace_id, batch.project_id, event.id)
        for batch in batches
        for event in batch.events
    ]


def first_occurrences(events: Sequence[Event]) -> tuple[list[Event], int]:
    """Keep the first event of each id in a batch, as the store would; count the others."""
    seen: set[str] = set()
    kept: list[Event] = []
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            kept.append(event)
    return kept, len(events) - len(kept)
