"""Small builders for the Redis adapter tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec

from eventcore.events import Event, IngestBatch
from eventcore.tenancy import ApiKey

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)

# Tests of behaviour use a patient gateway: on a busy 2-core machine a command can outlast the
# production timeout, and the adapter would then rightly fail open instead of doing its job.
PATIENT_SECONDS = 2.0


def api_key(name: str = "k1", workspace_id: str = "ws1", *, revoked: bool = False) -> ApiKey:
    return ApiKey(
        id=f"key-{name}",
        workspace_id=workspace_id,
        project_id="p1",
        name=name,
        prefix="ec_live_",
        key_hash=hashlib.sha256(name.encode()).hexdigest(),
        created_at=NOW,
        revoked_at=NOW if revoked else None,
    )


def batch(workspace_id: str, project_id: str, *event_ids: str) -> IngestBatch:
    events = [Event(i, "click", NOW, msgspec.Raw(b"{}")) for i in event_ids]
    return IngestBatch(workspace_id, project_id, NOW, events)
