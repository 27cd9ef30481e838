"""Small helpers for unit tests: wire events, request bodies and a brute-force bucket recount."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from eventcore.events import StoredEvent


def event(event_id: str | None = "e1", event_type: str = "click", **fields: Any) -> dict[str, Any]:
    """A wire event as code embedding eventcore would submit it."""
    wire: dict[str, Any] = {"type": event_type, **fields}
    if event_id is not None:
        wire["id"] = event_id
    return wire


def body(*events: Mapping[str, Any]) -> bytes:
    return msgspec.json.encode({"events": list(events)})


def floor_to(moment: datetime, step: timedelta) -> datetime:
    """Brute-force bucket start: whole steps since the epoch (independent of the core's own)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


def recount(events: list[StoredEvent], step: timedelta) -> Counter[tuple[datetime, str]]:
    return Counter((floor_to(e.timestamp, step), e.type) for e in events)
