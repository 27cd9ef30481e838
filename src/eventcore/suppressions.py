"""Suppressions: persons whose later events a project refuses, until the suppression is lifted.

A deletion request with ``suppress`` (:class:`~eventcore.deletions.Deletion`) stores, in its
own transaction, one suppression per person it names (``user_ids``). A person here is what it
is for deletions: an event's ``user_id`` or its ``anonymous_id``. From then on:

- the ingestor refuses the events of those persons one by one, with the code ``suppressed``
  (:data:`SUPPRESSED`), reading the project's suppressed persons from a per-process cache
  (:class:`~eventcore.usecases.ingest.SuppressedPersons`) that a change made in this process
  updates at once and one made in another reaches within
  :data:`~eventcore.defaults.SUPPRESSION_CACHE_SECONDS`;
- the store's append never stores them (:func:`is_suppressed`): an event that slipped past the
  ingest check (another process's cache not yet refreshed, or accepted before the suppression
  and still queued) is withheld and its id kept as deleted, as a deletion withholds the events
  it takes, so that a redelivery after a lift does not bring it back.

Lifting a suppression ends it: events received after that are accepted again (another process
may still refuse them for up to the cache's lifetime). The store keeps when each suppression
was in force, so that an event received while it was, and still queued when it was lifted, is
withheld all the same: no event received while its person was suppressed is ever stored.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import msgspec

from eventcore.events import Event

# The code of an event refused at ingest because its person is suppressed.
SUPPRESSED = "suppressed"


class Suppression(msgspec.Struct, frozen=True):
    """One person's suppression in one project: asked for by ``deletion_id``'s request."""

    workspace_id: str
    project_id: str
    user_id: str
    suppressed_at: datetime
    deletion_id: str
    suppressed_by: str | None = None


def is_suppressed(persons: Collection[str], event: Event) -> bool:
    """Whether the event's ``user_id`` or ``anonymous_id`` is one of the suppressed ``persons``
    (the reference the stores follow)."""
    return (event.user_id is not None and event.user_id in persons) or (
        event.anonymous_id is not None and event.anonymous_id in persons
    )


class SuppressionPage(msgspec.Struct, frozen=True):
    """One page of a project's suppressions, by person; ``next_after`` is the last person of
    the page when more follow (the next page's ``after``), else None."""

    suppressions: list[Suppression]
    next_after: str | None
