"""A project's retention of its events: how long they are kept, and what expiry leaves behind.

A project keeps its events ``retention_days`` (1 to 3,650; None, the default: for ever). An event
is past the retention once its timestamp is before the :func:`cutoff` of now: the moment
``retention_days`` before now, rounded down to the minute. The retention run (every API process
each hour, and ``eventcore retention run``) deletes such events, oldest first, a chunk
(:data:`~eventcore.defaults.EXPIRY_CHUNK`) a transaction; what they leave behind stays exact:

- a whole UTC day before the cutoff's day has no event left, so its count rows (minute and
  hour), persons' sketches and dimension tallies are simply removed, never recounted;
- the cutoff's own day, partly expired, is made again from the events that remain, as a rebuild
  makes it, once, when the run reaches it (and only if it counted an expired event: its rows of
  a minute before the cutoff exist exactly then; the cutoff is a whole minute so that this holds).

No expired event's id is kept (millions of tombstones would cost more than they serve). Instead
every append withholds an event that is past its project's retention at the time of the append
(:func:`expired`, on the store's clock): a resend by a client, or a redelivery by the queue of a
batch received long before, of an expired event is not stored again and counts nowhere. The
appends and the run use the same rule, and time only moves on, so an event the run deleted is
past the cutoff of every later append.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from eventcore.aggregation import Granularity, bucket_start
from eventcore.defaults import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS
from eventcore.errors import InvalidRequest


def cutoff(at: datetime, retention_days: int) -> datetime:
    """The oldest moment kept at ``at``: events before it are past the retention."""
    return bucket_start(at, Granularity.MINUTE) - timedelta(days=retention_days)


def expired(timestamp: datetime, now: datetime, retention_days: int | None) -> bool:
    """Whether an event of ``timestamp`` appended ``now`` is past its project's retention (never,
    without one): the append then does not store it."""
    return retention_days is not None and timestamp < cutoff(now, retention_days)


def checked_days(retention_days: object) -> int | None:
    """A retention as a client gives it: None (for ever) or a whole number of days in range;
    anything else a 400 naming the field."""
    if retention_days is None:
        return None
    if (
        isinstance(retention_days, bool)
        or not isinstance(retention_days, int)
        or not MIN_RETENTION_DAYS <= retention_days <= MAX_RETENTION_DAYS
    ):
        raise InvalidRequest(
            f"`retention_days` must be a whole number of days from {MIN_RETENTION_DAYS} to"
            f" {MAX_RETENTION_DAYS:,}, or null to keep events for ever.",
            code="invalid_request",
        )
    return retention_days
