"""Builders for contract tests, and a brute-force model of what any event store must answer."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from msgspec import Raw

from eventcore.aggregation import CountKey, CountPoint, EventTypeCount, StoredGrain, bucket_start
from eventcore.events import Event, EventCursor, IngestBatch, StoredEvent
from eventcore.idempotency import IdempotencyKey
from eventcore.ports import AppendResult, EventStore, Recount
from eventcore.tenancy import ApiKey, Membership, Project, Role, User, Workspace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Wide enough for every event the suites make: years on either side.
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def at(minutes: float = 0, *, seconds: float = 0, microseconds: int = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds, microseconds=microseconds)


def event(
    event_id: str,
    event_type: str = "page_view",
    timestamp: datetime = T0,
    properties: bytes = b"{}",
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
) -> Event:
    return Event(
        id=event_id,
        type=event_type,
        timestamp=timestamp,
        properties=Raw(properties),
        user_id=user_id,
        anonymous_id=anonymous_id,
    )


def batch(
    workspace_id: str, project_id: str, *events: Event, received_at: datetime = T0
) -> IngestBatch:
    return IngestBatch(
        workspace_id=workspace_id,
        project_id=project_id,
        received_at=received_at,
        events=list(events),
    )


def user(email: str | None = None, created_at: datetime = T0) -> User:
    return User(
        id=new_id("user"),
        email=email or f"{uuid.uuid4().hex[:8]}@example.com",
        password_hash="salt$digest",
        created_at=created_at,
    )


def workspace(created_at: datetime = T0) -> Workspace:
    return Workspace(id=new_id("ws"), name="Acme", created_at=created_at)


def membership(
    workspace_id: str, user_id: str, role: Role = Role.VIEWER, created_at: datetime = T0
) -> Membership:
    return Membership(workspace_id, user_id, role, created_at)


def project(workspace_id: str, created_at: datetime = T0, name: str = "Web") -> Project:
    return Project(id=new_id("prj"), workspace_id=workspace_id, name=name, created_at=created_at)


def api_key(project: Project, created_at: datetime = T0) -> ApiKey:
    secret = uuid.uuid4().hex
    return ApiKey(
        id=new_id("key"),
        workspace_id=project.workspace_id,
        project_id=project.id,
        name="server",
        prefix=f"ek_{secret[:8]}",
        key_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        created_at=created_at,
    )


async def page_through(
    store: EventStore,
    workspace_id: str,
    project_id: str,
    *,
    limit: int,
    event_type: str | None = None,
) -> list[StoredEvent]:
    """Every event of the project, newest first, read page by page with the cursor."""
    seen: list[StoredEvent] = []
    cursor: EventCursor | None = None
    while True:
        page = await store.list_events(
            workspace_id, project_id, limit=limit, event_type=event_type, before=cursor
        )
        assert len(page) <= limit
        if cursor is not None:
            # Strictly older than the cursor, or paging would never end.
            assert all((e.timestamp, e.seq) < (cursor.timestamp, cursor.seq) for e in page)
        seen.extend(page)
        if len(page) < limit:
            return seen
        cursor = EventCursor.after(page[-1])


def is_utc(moment: datetime) -> bool:
    return moment.utcoffset() == timedelta(0)


@dataclass
class ModelEvent:
    workspace_id: str
    project_id: str
    event: Event
    received_at: datetime
    order: int


@dataclass
class Model:
    """What a store must hold after a sequence of appends, computed the slow, obvious way."""

    stored: dict[IdempotencyKey, ModelEvent] = field(default_factory=dict)

    def append(self, batches: Sequence[IngestBatch]) -> AppendResult:
        inserted = duplicates = 0
        for b in batches:
            for e in b.events:
                key = IdempotencyKey(b.workspace_id, b.project_id, e.id)
                if key in self.stored:
                    duplicates += 1
                else:
                    inserted += 1
                    self.stored[key] = ModelEvent(
                        b.workspace_id, b.project_id, e, b.received_at, len(self.stored)
                    )
        return AppendResult(inserted, duplicates)

    def events(
        self, workspace_id: str, project_id: str, event_type: str | None = None
    ) -> list[ModelEvent]:
        """Newest first; among equal timestamps the later stored first."""
        found = [
            m
            for m in self.stored.values()
            if m.workspace_id == workspace_id
            and m.project_id == project_id
            and event_type in (None, m.event.type)
        ]
        return sorted(found, key=lambda m: (m.event.timestamp, m.order), reverse=True)

    def series(
        self,
        workspace_id: str,
        project_id: str,
        grain: StoredGrain,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[CountPoint]:
        counts: Counter[tuple[datetime, str]] = Counter()
        for m in self.events(workspace_id, project_id, event_type):
            bucket = bucket_start(m.event.timestamp, grain.granularity)
            if start <= bucket < end:
                counts[(bucket, m.event.type)] += 1
        return [CountPoint(b, t, n) for (b, t), n in sorted(counts.items())]

    def totals(
        self, workspace_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[EventTypeCount]:
        counts: Counter[str] = Counter()
        for point in self.series(workspace_id, project_id, StoredGrain.HOUR, start, end):
            counts[point.event_type] += point.count
        return [
            EventTypeCount(t, n) for t, n in sorted(counts.items(), key=lambda i: (-i[1], i[0]))
        ]

    def tenants(self) -> set[tuple[str, str]]:
        return {(m.workspace_id, m.project_id) for m in self.stored.values()}

    def recount(self, workspace_id: str | None) -> Recount:
        """What a rebuild of intact count tables reports: the events of the workspace (or all)."""
        counted = [m for m in self.stored.values() if workspace_id in (None, m.workspace_id)]
        return Recount(len(counted), frozenset(m.workspace_id for m in counted))

    def inserted(self) -> list[IngestBatch]:
        """The events actually inserted, in order, each as a batch of one with its tenant."""
        return [
            IngestBatch(m.workspace_id, m.project_id, m.received_at, [m.event])
            for m in sorted(self.stored.values(), key=lambda m: m.order)
        ]


def json_value(properties: Raw | bytes) -> Any:
    """The JSON value of event properties, compared instead of their text.

    A store may normalise the text (PostgreSQL's jsonb drops spacing, orders keys and keeps the
    last of duplicate keys), so stores agree on the value, not the bytes. Booleans are tagged
    because Python's ``True == 1`` would otherwise let a store turn ``1`` into ``true`` unseen.
    """
    return _tag_booleans(msgspec.json.decode(bytes(properties)))


def _tag_booleans(value: Any) -> Any:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dict):
        return {key: _tag_booleans(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tag_booleans(item) for item in value]
    return value


Summary = tuple[str, str, datetime, datetime, Any]


def summary(events: Iterable[StoredEvent]) -> list[Summary]:
    """What a stored event says, without its store-assigned seq; properties as a JSON value."""
    return [(e.id, e.type, e.timestamp, e.received_at, json_value(e.properties)) for e in events]


def model_summary(events: Iterable[ModelEvent]) -> list[Summary]:
    return [
        (m.event.id, m.event.type, m.event.timestamp, m.received_at, json_value(m.event.properties))
        for m in events
    ]


async def assert_matches_model(
    store: EventStore,
    model: Model,
    tenants: Iterable[tuple[str, str]],
    event_types: Iterable[str],
    *,
    page_size: int = 3,
) -> None:
    """Every query of every tenant answers exactly what the brute-force model says."""
    start, end = EVERYTHING
    for workspace_id, project_id in tenants:
        listed = await page_through(store, workspace_id, project_id, limit=page_size)
        assert summary(listed) == model_summary(model.events(workspace_id, project_id))
        assert len({e.seq for e in listed}) == len(listed)
        for grain in StoredGrain:
            assert await store.count_series(
                workspace_id, project_id, grain, start, end
            ) == model.series(workspace_id, project_id, grain, start, end)
        assert await store.event_type_totals(workspace_id, project_id, start, end) == model.totals(
            workspace_id, project_id, start, end
        )
        for event_type in event_types:
            listed = await page_through(
                store, workspace_id, project_id, limit=page_size, event_type=event_type
            )
            assert summary(listed) == model_summary(
                model.events(workspace_id, project_id, event_type)
            )
            assert await store.count_series(
                workspace_id, project_id, StoredGrain.MINUTE, start, end, event_type
            ) == model.series(workspace_id, project_id, StoredGrain.MINUTE, start, end, event_type)


async def count_rows(store: EventStore, tenants: Iterable[tuple[str, str]]) -> Counter[CountKey]:
    """The store's count tables as rows (non-zero), read through its port: every stored grain
    over a window covering every event."""
    rows: Counter[CountKey] = Counter()
    start, end = EVERYTHING
    for workspace_id, project_id in tenants:
        for grain in StoredGrain:
            for point in await store.count_series(workspace_id, project_id, grain, start, end):
                key = CountKey(workspace_id, project_id, grain, point.bucket, point.event_type)
                rows[key] = point.count
    return rows
