"""A store held in dictionaries, with the same rules as the databases (and the core's counting)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from eventcore.adapters.clock import SystemClock
from eventcore.aggregation import (
    CountKey,
    CountPoint,
    EventTypeCount,
    Granularity,
    StoredGrain,
    bucket_start,
    count_increments,
)
from eventcore.audit import AuditAction, AuditEntry
from eventcore.deletions import Deletion, DeletionStatus, EventSelector, withheld
from eventcore.dimensions import (
    DimensionGroup,
    DimensionKey,
    DimensionTally,
    FilteredEvent,
    Kind,
    Tally,
    ValueTotal,
    Where,
    add_value_persons,
    bounded,
    decode_values,
    dimension_increments,
    encode_values,
    matches,
    totals_of_tallies,
    values_of,
)
from eventcore.errors import AlreadyExists, AlreadyMember, EmailTaken
from eventcore.events import Event, EventCursor, IngestBatch, StoredEvent
from eventcore.funnels import PersonEvent
from eventcore.idempotency import IdempotencyKey
from eventcore.persons import (
    ALL_TYPES,
    SketchKey,
    StoredSketch,
    add_persons,
    person_increments,
    sketch_of,
    whole_days,
)
from eventcore.ports import AppendResult, Clock, Recount
from eventcore.retention import expired
from eventcore.suppressions import Suppression, is_suppressed
from eventcore.tenancy import (
    ApiKey,
    Invitation,
    Member,
    Membership,
    Project,
    Role,
    User,
    Workspace,
    may_leave,
)


class MemoryStore:
    def __init__(self, clock: Clock | None = None) -> None:
        # The time of an append, for the retention rule (eventcore.retention).
        self._clock = clock or SystemClock()
        self.users: dict[str, User] = {}
        self.workspaces: dict[str, Workspace] = {}
        self.memberships: dict[tuple[str, str], Membership] = {}
        self.invitations: dict[tuple[str, str], Invitation] = {}
        self.projects: dict[str, Project] = {}
        self.api_keys: dict[str, ApiKey] = {}
        self.events: dict[IdempotencyKey, tuple[StoredEvent, str, str]] = {}
        self.counts: Counter[CountKey] = Counter()
        self.sketches: dict[SketchKey, bytes] = {}
        # Each stored event's declared values (JSON), and the dimension tallies with their
        # persons' sketches.
        self.values: dict[IdempotencyKey, str] = {}
        self.tallies: dict[DimensionKey, tuple[int, bytes | None]] = {}
        self._seq = 0
        # Deleted events' ids (tombstones): an append of one again is a duplicate.
        self.deleted: set[IdempotencyKey] = set()
        self.audit_log: list[AuditEntry] = []
        self.deletions: dict[tuple[str, str], Deletion] = {}
        # Suppressed persons by (workspace, project, person).
        self.suppressions: dict[tuple[str, str, str], Suppression] = {}
        # Lifted ones, as (workspace, project, person, suppressed at, lifted at).
        self.lifted: list[tuple[str, str, str, datetime, datetime]] = []
        self.deleted_workspaces: set[str] = set()
        self._audit_seq = 0
        self._lock = asyncio.Lock()

    async def ping(self) -> None:
        """Readiness: memory always answers."""

    # accounts

    async def create_signup(
        self,
        user: User,
        workspace: Workspace,
        owner: Membership,
        *,
        audit: AuditEntry | None = None,
    ) -> None:
        # Every check before any write: a refused signup leaves nothing behind, as a rolled-back
        # transaction would.
        if await self.get_user_by_email(user.email) is not None:
            raise EmailTaken()
        if user.id in self.users:
            raise AlreadyExists("user")
        if workspace.id in self.workspaces:
            raise AlreadyExists("workspace")
        if (owner.workspace_id, owner.user_id) in self.memberships:
            raise AlreadyMember()
        self.users[user.id] = user
        self.workspaces[workspace.id] = workspace
        self.memberships[(owner.workspace_id, owner.user_id)] = owner
        self._audit(audit)

    async def get_user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    async def get_user_by_email(self, email: str) -> User | None:
        return next((u for u in self.users.values() if u.email == email), None)

    async def get_membership(self, workspace_id: str, user_id: str) -> Membership | None:
        return self.memberships.get((workspace_id, user_id))

    async def list_memberships(self, user_id: str) -> list[Membership]:
        found = [m for m in self.memberships.values() if m.user_id == user_id]
        return sorted(found, key=lambda m: m.created_at)

    async def create_invitation(
        self, invitation: Invitation, *, audit: AuditEntry | None = None
    ) -> None:
        if (invitation.workspace_id, invitation.id) in self.invitations or any(
            i.token_hash == invitation.token_hash for i in self.invitations.values()
        ):
            raise AlreadyExists("invitation")
        self.invitations[(invitation.workspace_id, invitation.id)] = invitation
        self._audit(audit)

    async def find_invitation(self, workspace_id: str, token_hash: str) -> Invitation | None:
        for invitation in self.invitations.values():
            if invitation.workspace_id == workspace_id and invitation.token_hash == token_hash:
                return invitation
        return None

    async def accept_invitation(
        self,
        workspace_id: str,
        invitation_id: str,
        membership: Membership,
        at: datetime,
        *,
        audit: AuditEntry | None = None,
    ) -> bool:
        invitation = self.invitations.get((workspace_id, invitation_id))
        if invitation is None or invitation.accepted_at is not None:
            return False
        await self.add_membership(membership)
        self.invitations[(workspace_id, invitation_id)] = msgspec.structs.replace(
            invitation, accepted_at=at
        )
        self._audit(audit)
        return True

    async def list_members(self, workspace_id: str) -> list[Member]:
        found = [m for m in self.memberships.values() if m.workspace_id == workspace_id]
        return [
            Member(m.user_id, self.users[m.user_id].email, m.role, m.created_at)
            for m in sorted(found, key=lambda m: m.created_at)
        ]

    async def change_role(
        self, workspace_id: str, user_id: str, role: Role, *, audit: AuditEntry | None = None
    ) -> Membership | None:
        current = self.memberships.get((workspace_id, user_id))
        if current is None:
            return None
        if role is not Role.OWNER:
            self._keep_an_owner(workspace_id, user_id)
        changed = msgspec.structs.replace(current, role=role)
        self.memberships[(workspace_id, user_id)] = changed
        self._audit(audit)
        return changed

    async def remove_membership(
        self, workspace_id: str, user_id: str, *, audit: AuditEntry | None = None
    ) -> bool:
        if (workspace_id, user_id) not in self.memberships:
            return False
        self._keep_an_owner(workspace_id, user_id)
        del self.memberships[(workspace_id, user_id)]
        self._audit(audit)
        return True

    def _keep_an_owner(self, workspace_id: str, leaving: str) -> None:
        """LastOwner if ``leaving`` is the workspace's only owner."""
        may_leave(
            {
                m.user_id: m.role
                for m in self.memberships.values()
                if m.workspace_id == workspace_id
            },
            leaving,
        )

    async def add_membership(self, membership: Membership) -> None:
        key = (membership.workspace_id, membership.user_id)
        if key in self.memberships:
            raise AlreadyMember()
        self.memberships[key] = membership

    async def get_workspace(self, workspace_id: str) -> Workspace | None:
        return self.workspaces.get(workspace_id)

    async def delete_workspace(self, workspace_id: str, at: datetime) -> list[ApiKey] | None:
        if self.workspaces.pop(workspace_id, None) is None:
            return None
        keys = [k for k in self.api_keys.values() if k.workspace_id == workspace_id]
        for key in keys:
            del self.api_keys[key.id]
        for table in (self.memberships, self.invitations, self.deletions):
            for held in [k for k in table if k[0] == workspace_id]:
                del table[held]
        self.suppressions = {k: v for k, v in self.suppressions.items() if k[0] != workspace_id}
        for project in [p for p in self.projects.values() if p.workspace_id == workspace_id]:
            del self.projects[project.id]
        self.events = {k: v for k, v in self.events.items() if k.workspace_id != workspace_id}
        self.values = {k: v for k, v in self.values.items() if k.workspace_id != workspace_id}
        self.counts = Counter(
            {k: v for k, v in self.counts.items() if k.workspace_id != workspace_id}
        )
        self.sketches = {k: v for k, v in self.sketches.items() if k.workspace_id != workspace_id}
        self.tallies = {k: v for k, v in self.tallies.items() if k.workspace_id != workspace_id}
        self.deleted = {k for k in self.deleted if k.workspace_id != workspace_id}
        self.lifted = [s for s in self.lifted if s[0] != workspace_id]
        self.audit_log = [e for e in self.audit_log if e.workspace_id != workspace_id]
        self.deleted_workspaces.add(workspace_id)
        return keys

    async def create_project(self, project: Project, *, audit: AuditEntry | None = None) -> None:
        # The databases key projects by (workspace, id); held here by id alone, a reused id is
        # refused in any workspace rather than replacing another workspace's project.
        if project.id in self.projects:
            raise AlreadyExists("project")
        self.projects[project.id] = project
        self._audit(audit)

    async def get_project(self, workspace_id: str, project_id: str) -> Project | None:
        project = self.projects.get(project_id)
        return project if project is not None and project.workspace_id == workspace_id else None

    async def list_projects(self, workspace_id: str) -> list[Project]:
        found = [p for p in self.projects.values() if p.workspace_id == workspace_id]
        return sorted(found, key=lambda p: p.created_at)

    async def create_api_key(self, key: ApiKey, *, audit: AuditEntry | None = None) -> None:
        # As for projects, a reused id is refused in any workspace; a key hash is unique overall.
        if key.id in self.api_keys:
            raise AlreadyExists("API key")
        if await self.find_api_key(key.key_hash) is not None:
            raise AlreadyExists("API key", key="hash")
        self.api_keys[key.id] = key
        self._audit(audit)

    async def list_api_keys(self, workspace_id: str, project_id: str) -> list[ApiKey]:
        found = [
            k
            for k in self.api_keys.values()
            if k.workspace_id == workspace_id and k.project_id == project_id
        ]
        return sorted(found, key=lambda k: k.created_at)

    async def set_retention(
        self,
        workspace_id: str,
        project_id: str,
        retention_days: int | None,
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        return await self._change_project(
            workspace_id, project_id, audit, retention_days=retention_days
        )

    async def set_allowed_origins(
        self,
        workspace_id: str,
        project_id: str,
        origins: tuple[str, ...],
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        return await self._change_project(workspace_id, project_id, audit, allowed_origins=origins)

    async def projects_with_retention(self) -> list[Project]:
        found = [p for p in self.projects.values() if p.retention_days is not None]
        return sorted(found, key=lambda p: (p.workspace_id, p.id))

    async def delete_project(
        self, workspace_id: str, project_id: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> list[ApiKey] | None:
        if await self.get_project(workspace_id, project_id) is None:
            return None
        del self.projects[project_id]
        keys = [k for k in self.api_keys.values() if k.project_id == project_id]
        revoked = [await self.revoke_api_key(workspace_id, k.id, at) for k in keys]
        self._audit(audit)
        return [key for key in revoked if key is not None]

    async def revoke_api_key(
        self, workspace_id: str, key_id: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> ApiKey | None:
        key = self.api_keys.get(key_id)
        if key is None or key.workspace_id != workspace_id:
            return None
        if key.revoked_at is None:
            key = msgspec.structs.replace(key, revoked_at=at)
            self.api_keys[key_id] = key
        self._audit(audit)
        return key

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        return next((k for k in self.api_keys.values() if k.key_hash == key_hash), None)

    # the audit log

    def _audit(self, entry: AuditEntry | None) -> None:
        if entry is not None:
            self._audit_seq += 1
            self.audit_log.append(msgspec.structs.replace(entry, seq=self._audit_seq))

    async def record_audit(self, entry: AuditEntry) -> None:
        self._audit(entry)

    async def expire_audit_log(self, before: datetime) -> int:
        kept = [e for e in self.audit_log if e.at >= before]
        removed = len(self.audit_log) - len(kept)
        self.audit_log = kept
        return removed

    # deletion requests

    async def create_deletion(
        self,
        deletion: Deletion,
        *,
        audit: AuditEntry | None = None,
        suppression_audit: AuditEntry | None = None,
    ) -> None:
        key = (deletion.workspace_id, deletion.id)
        if key in self.deletions:
            raise AlreadyExists("deletion")
        self.deletions[key] = deletion
        self._audit(audit)
        if deletion.selector.ids_only:
            self.deleted |= {
                IdempotencyKey(deletion.workspace_id, deletion.project_id, event_id)
                for event_id in deletion.selector.event_ids
            }
        if deletion.suppress:
            for person in deletion.selector.user_ids:
                self.suppressions.setdefault(
                    (deletion.workspace_id, deletion.project_id, person),
                    Suppression(
                        deletion.workspace_id,
                        deletion.project_id,
                        person,
                        deletion.requested_at,
                        deletion.id,
                        deletion.requested_by,
                    ),
                )
            self._audit(suppression_audit)

    # suppressions

    async def suppressed_persons(self, workspace_id: str, project_id: str) -> frozenset[str]:
        return frozenset(
            person
            for ws, prj, person in self.suppressions
            if (ws, prj) == (workspace_id, project_id)
        )

    async def list_suppressions(
        self, workspace_id: str, project_id: str, *, limit: int, after: str | None = None
    ) -> list[Suppression]:
        found = sorted(
            (
                s
                for s in self.suppressions.values()
                if (s.workspace_id, s.project_id) == (workspace_id, project_id)
                and (after is None or s.user_id > after)
            ),
            key=lambda s: s.user_id,
        )
        return found[: max(limit, 0)]

    async def lift_suppression(
        self,
        workspace_id: str,
        project_id: str,
        user_id: str,
        at: datetime,
        *,
        audit: AuditEntry | None = None,
    ) -> bool:
        ended = self.suppressions.pop((workspace_id, project_id, user_id), None)
        if ended is None:
            return False
        self.lifted.append((workspace_id, project_id, user_id, ended.suppressed_at, at))
        self._audit(audit)
        return True

    def _withheld_persons(self, batch: IngestBatch) -> frozenset[str]:
        """The persons whose events of ``batch`` an append withholds: suppressed now, or while
        the batch was received (a suppression lifted since)."""
        tenant = (batch.workspace_id, batch.project_id)
        return frozenset(
            [person for ws, prj, person in self.suppressions if (ws, prj) == tenant]
            + [
                person
                for ws, prj, person, since, until in self.lifted
                if (ws, prj) == tenant and since <= batch.received_at < until
            ]
        )

    async def get_deletion(self, workspace_id: str, deletion_id: str) -> Deletion | None:
        return self.deletions.get((workspace_id, deletion_id))

    async def list_deletions(self, workspace_id: str, project_id: str) -> list[Deletion]:
        found = [
            (order, d)
            for order, d in enumerate(self.deletions.values())
            if d.workspace_id == workspace_id and d.project_id == project_id
        ]
        found.sort(key=lambda pair: (pair[1].requested_at, pair[0]), reverse=True)
        return [d for _, d in found]

    async def progress_deletion(self, workspace_id: str, deletion_id: str, deleted: int) -> None:
        current = self.deletions.get((workspace_id, deletion_id))
        if current is None:
            return
        self.deletions[(workspace_id, deletion_id)] = msgspec.structs.replace(
            current,
            events_deleted=current.events_deleted + deleted,
            status=current.status if not current.open else DeletionStatus.RUNNING,
        )

    async def finish_deletion(
        self,
        workspace_id: str,
        deletion_id: str,
        status: DeletionStatus,
        at: datetime,
        *,
        error: str | None = None,
        audit: AuditEntry | None = None,
    ) -> bool:
        current = self.deletions.get((workspace_id, deletion_id))
        if current is None or not current.open:
            return False
        self.deletions[(workspace_id, deletion_id)] = msgspec.structs.replace(
            current, status=status, completed_at=at, error=error
        )
        self._audit(audit)
        return True

    async def open_deletions(self) -> list[tuple[str, str]]:
        found = [(order, d) for order, d in enumerate(self.deletions.values()) if d.open]
        found.sort(key=lambda pair: (pair[1].requested_at, pair[0]))
        return [(d.workspace_id, d.id) for _, d in found]

    async def list_audit(
        self,
        workspace_id: str,
        *,
        limit: int,
        action: AuditAction | None = None,
        before: EventCursor | None = None,
    ) -> list[AuditEntry]:
        found = [
            e
            for e in self.audit_log
            if e.workspace_id == workspace_id
            and (action is None or e.action == action)
            and (before is None or (e.at, e.seq) < (before.timestamp, before.seq))
        ]
        found.sort(key=lambda e: (e.at, e.seq), reverse=True)
        return found[: max(limit, 0)]

    # events

    async def append(self, batches: Sequence[IngestBatch], *, listed: bool = False) -> AppendResult:
        async with self._lock:
            inserted: list[IngestBatch] = []
            stored_keys: list[IdempotencyKey] = []
            duplicates = 0
            now = self._clock.now()
            for batch in batches:
                new = []
                if batch.workspace_id in self.deleted_workspaces:
                    duplicates += len(batch.events)
                    continue
                rules = [
                    d
                    for d in self.deletions.values()
                    if (d.workspace_id, d.project_id) == (batch.workspace_id, batch.project_id)
                ]
                suppressed = self._withheld_persons(batch)
                project = self.projects.get(batch.project_id)
                retention = (
                    project.retention_days
                    if project is not None and project.workspace_id == batch.workspace_id
                    else None
                )
                for event in batch.events:
                    key = IdempotencyKey(batch.workspace_id, batch.project_id, event.id)
                    if key in self.events or key in self.deleted:
                        duplicates += 1
                        continue
                    if expired(event.timestamp, now, retention):
                        duplicates += 1
                        continue
                    if (rules and withheld(rules, batch.received_at, event)) or (
                        suppressed and is_suppressed(suppressed, event)
                    ):
                        self.deleted.add(key)
                        duplicates += 1
                        continue
                    self._seq += 1
                    stored = StoredEvent(
                        event.id,
                        event.type,
                        event.timestamp,
                        batch.received_at,
                        event.properties,
                        self._seq,
                        event.user_id,
                        event.anonymous_id,
                    )
                    self.events[key] = (stored, batch.workspace_id, batch.project_id)
                    stored_keys.append(key)
                    self.values[key] = self._values_of(batch, event)
                    new.append(event)
                if new:
                    inserted.append(msgspec.structs.replace(batch, events=new))
            self.counts.update(count_increments(inserted))
            self._add_persons(inserted)
            self._add_tallies(dimension_increments(inserted, self._declared(inserted)))
            return AppendResult(
                sum(len(b.events) for b in inserted),
                duplicates,
                tuple(stored_keys) if listed else (),
            )

    async def count_series(
        self,
        workspace_id: str,
        project_id: str,
        grain: StoredGrain,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[CountPoint]:
        points = [
            CountPoint(key.bucket, key.event_type, count)
            for key, count in self.counts.items()
            if key.workspace_id == workspace_id
            and key.project_id == project_id
            and key.grain == grain
            and start <= key.bucket < end
            and (event_type is None or key.event_type == event_type)
            and count
        ]
        return sorted(points, key=lambda p: (p.bucket, p.event_type))

    async def event_type_totals(
        self, workspace_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[EventTypeCount]:
        totals: Counter[str] = Counter()
        for point in await self.count_series(
            workspace_id, project_id, StoredGrain.HOUR, start, end
        ):
            totals[point.event_type] += point.count
        ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
        return [EventTypeCount(event_type, count) for event_type, count in ranked]

    async def list_events(
        self,
        workspace_id: str,
        project_id: str,
        *,
        limit: int,
        event_type: str | None = None,
        before: EventCursor | None = None,
    ) -> list[StoredEvent]:
        found = [
            stored
            for stored in self._events_of(workspace_id, project_id, event_type)
            if before is None or (stored.timestamp, stored.seq) < (before.timestamp, before.seq)
        ]
        found.sort(key=lambda e: (e.timestamp, e.seq), reverse=True)
        return found[:limit]

    def _events_of(
        self, workspace_id: str, project_id: str, event_type: str | None
    ) -> Iterator[StoredEvent]:
        for stored, ws, project in self.events.values():
            if (
                ws == workspace_id
                and project == project_id
                and (event_type is None or stored.type == event_type)
            ):
                yield stored

    async def export_events(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        *,
        limit: int,
        event_type: str | None = None,
        after: EventCursor | None = None,
    ) -> list[StoredEvent]:
        found = [
            stored
            for stored in self._events_of(workspace_id, project_id, event_type)
            if start <= stored.timestamp < end
            and (after is None or (stored.timestamp, stored.seq) > (after.timestamp, after.seq))
        ]
        found.sort(key=lambda e: (e.timestamp, e.seq))
        return found[: max(limit, 0)]

    def _declared(self, batches: Sequence[IngestBatch]) -> dict[tuple[str, str], tuple[str, ...]]:
        declared: dict[tuple[str, str], tuple[str, ...]] = {}
        for batch in batches:
            project = self.projects.get(batch.project_id)
            if project is not None and project.workspace_id == batch.workspace_id:
                declared[(batch.workspace_id, batch.project_id)] = project.dimensions
        return declared

    def _values_of(self, batch: IngestBatch, event: Event) -> str:
        paths = self._declared([batch]).get((batch.workspace_id, batch.project_id), ())
        return encode_values(values_of(bytes(event.properties), paths)) if paths else ""

    def _add_tallies(self, increments: dict[DimensionKey, Tally]) -> None:
        known: dict[DimensionGroup, set[str]] = {}
        groups = {key.group for key in increments}
        for key in self.tallies:
            if key.kind is Kind.VALUE and key.group in groups:
                known.setdefault(key.group, set()).add(key.value)
        for key, tally in bounded(increments, known).items():
            count, sketch = self.tallies.get(key, (0, None))
            if tally.persons:
                sketch = add_value_persons(sketch, tally.persons)
            self.tallies[key] = (count + tally.count, sketch)

    async def set_dimensions(
        self,
        workspace_id: str,
        project_id: str,
        dimensions: tuple[str, ...],
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        return await self._change_project(workspace_id, project_id, audit, dimensions=dimensions)

    async def _change_project(
        self, workspace_id: str, project_id: str, audit: AuditEntry | None, **changes: Any
    ) -> Project | None:
        project = await self.get_project(workspace_id, project_id)
        if project is None:
            return None
        changed = msgspec.structs.replace(project, **changes)
        self.projects[project_id] = changed
        self._audit(audit)
        return changed

    async def dimension_tallies(
        self,
        workspace_id: str,
        project_id: str,
        dimension: str,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[DimensionTally]:
        wanted = ALL_TYPES if event_type is None else event_type
        return [
            DimensionTally(key.day, key.kind, key.value, count, sketch)
            for key, (count, sketch) in sorted(self.tallies.items())
            if key.workspace_id == workspace_id
            and key.project_id == project_id
            and key.dimension == dimension
            and key.event_type == wanted
            and start <= key.day < end
        ]

    async def dimension_totals(
        self,
        workspace_id: str,
        project_id: str,
        dimension: str,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
        *,
        listed: int,
    ) -> list[ValueTotal]:
        tallies = await self.dimension_tallies(
            workspace_id, project_id, dimension, start, end, event_type
        )
        return totals_of_tallies(tallies, listed)

    async def filtered_events(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        event_type: str | None,
        where: Sequence[Where],
        limit: int | None = None,
    ) -> list[FilteredEvent]:
        return [
            FilteredEvent(stored.timestamp, stored.type, stored.person, self.values[key])
            for key, (stored, ws, project) in self.events.items()
            if ws == workspace_id
            and project == project_id
            and event_type in (None, stored.type)
            and start <= stored.timestamp < end
            and matches(decode_values(self.values[key]), where)
        ][:limit]

    def _add_persons(self, inserted: list[IngestBatch]) -> None:
        for key, persons in person_increments(inserted).items():
            self.sketches[key] = add_persons(self.sketches.get(key), persons)

    async def user_sketches(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[tuple[datetime, bytes]]:
        wanted = ALL_TYPES if event_type is None else event_type
        found = [
            (key.bucket, sketch)
            for key, sketch in self.sketches.items()
            if key.workspace_id == workspace_id
            and key.project_id == project_id
            and key.event_type == wanted
            and key.granularity is Granularity.HOUR
            and start <= key.bucket < end
        ]
        return sorted(found)

    async def user_window(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        granularity: Granularity,
        event_type: str | None = None,
    ) -> list[StoredSketch]:
        wanted = ALL_TYPES if event_type is None else event_type
        mine = {
            key: sketch
            for key, sketch in self.sketches.items()
            if key.workspace_id == workspace_id
            and key.project_id == project_id
            and key.event_type == wanted
            and start <= key.bucket < end
        }
        first, last = whole_days(start, end)
        whole = {
            key.bucket
            for key in mine
            if key.granularity is Granularity.DAY and first <= key.bucket < last
        }
        rows = []
        for key, sketch in sorted(mine.items()):
            if key.granularity is Granularity.DAY:
                if key.bucket in whole:
                    rows.append(StoredSketch(key.bucket, Granularity.DAY, None, sketch))
            elif granularity is Granularity.HOUR or key.day.bucket not in whole:
                rows.append(StoredSketch(key.bucket, Granularity.HOUR, None, sketch))
        return rows

    async def person_events(
        self,
        workspace_id: str,
        project_id: str,
        event_types: Sequence[str],
        start: datetime,
        end: datetime,
        limit: int | None = None,
    ) -> list[PersonEvent]:
        types = set(event_types)
        found = [
            PersonEvent(person, stored.timestamp, stored.seq, stored.type, self.values[key])
            for key, (stored, ws, project) in self.events.items()
            if ws == workspace_id
            and project == project_id
            and stored.type in types
            and start <= stored.timestamp < end
            and (person := stored.person) is not None
        ]
        return sorted(found, key=lambda e: (e.person, e.timestamp, e.seq))[:limit]

    async def delete_events(
        self, workspace_id: str, project_id: str, selector: EventSelector, *, limit: int
    ) -> int:
        async with self._lock:
            taken = [
                key
                for key, (stored, ws, project) in self.events.items()
                if ws == workspace_id and project == project_id and selector.matches(stored)
            ][: max(limit, 0)]
            if not taken:
                return 0
            moments = [self.events[key][0].timestamp for key in taken]
            for key in taken:
                del self.events[key]
                self.values.pop(key, None)
                self.deleted.add(key)
            start = bucket_start(min(moments), Granularity.DAY)
            end = bucket_start(max(moments), Granularity.DAY) + timedelta(days=1)
            self._recount(workspace_id, project_id, start, end)
            return len(taken)

    async def expire_events(
        self, workspace_id: str, project_id: str, before: datetime, *, limit: int
    ) -> int:
        async with self._lock:
            mine = sorted(
                (stored.timestamp, stored.seq, key)
                for key, (stored, ws, project) in self.events.items()
                if ws == workspace_id and project == project_id and stored.timestamp < before
            )
            taken = mine[: max(limit, 0)]
            for _, _, key in taken:
                del self.events[key]
                self.values.pop(key, None)
            cutoff_day = bucket_start(before, Granularity.DAY)
            if len(taken) == max(limit, 0) and taken:
                # Only the days before the last deleted event's are emptied for sure.
                self._drop_days(
                    workspace_id,
                    project_id,
                    min(cutoff_day, bucket_start(taken[-1][0], Granularity.DAY)),
                )
                return len(taken)
            self._drop_days(workspace_id, project_id, cutoff_day)
            if any(
                key.workspace_id == workspace_id
                and key.project_id == project_id
                and key.grain is StoredGrain.MINUTE
                and cutoff_day <= key.bucket < before
                for key in self.counts
            ):
                self._recount(workspace_id, project_id, cutoff_day, cutoff_day + timedelta(days=1))
            return len(taken)

    def _drop_days(self, workspace_id: str, project_id: str, until: datetime) -> None:
        """Remove the project's counts, sketches and tallies of the days before ``until``."""

        def before(key: CountKey | SketchKey | DimensionKey, moment: datetime) -> bool:
            return (
                key.workspace_id == workspace_id and key.project_id == project_id and moment < until
            )

        for count in [k for k in self.counts if before(k, k.bucket)]:
            del self.counts[count]
        for sketch in [k for k in self.sketches if before(k, k.bucket)]:
            del self.sketches[sketch]
        for tally in [k for k in self.tallies if before(k, k.day)]:
            del self.tallies[tally]

    def _recount(self, workspace_id: str, project_id: str, start: datetime, end: datetime) -> None:
        """The project's counts, sketches and tallies of [start, end) (whole days) made again
        from its events there, as a rebuild makes them."""

        def inside(key: CountKey | SketchKey | DimensionKey, moment: datetime) -> bool:
            return (
                key.workspace_id == workspace_id
                and key.project_id == project_id
                and start <= moment < end
            )

        for count in [k for k in self.counts if inside(k, k.bucket)]:
            del self.counts[count]
        for sketch in [k for k in self.sketches if inside(k, k.bucket)]:
            del self.sketches[sketch]
        for tally in [k for k in self.tallies if inside(k, k.day)]:
            del self.tallies[tally]
        stored = [
            batch
            for batch in self._stored_batches(workspace_id)
            if batch.project_id == project_id and start <= batch.events[0].timestamp < end
        ]
        self.counts.update(count_increments(stored))
        self.sketches.update(
            (sketch, sketch_of(persons)) for sketch, persons in person_increments(stored).items()
        )
        for key, (event, ws, project) in self.events.items():
            if ws == workspace_id and project == project_id and start <= event.timestamp < end:
                self.values[key] = self._values_of(
                    IngestBatch(ws, project, event.received_at, []), _event_of(event)
                )
        self._add_tallies(dimension_increments(stored, self._declared(stored)))

    async def rebuild_counts(self, workspace_id: str | None = None) -> Recount:
        async with self._lock:
            replaced = [k for k in self.counts if workspace_id in (None, k.workspace_id)]
            for count in replaced:
                del self.counts[count]
            stored = list(self._stored_batches(workspace_id))
            self.counts.update(count_increments(stored))
            for sketch in [k for k in self.sketches if workspace_id in (None, k.workspace_id)]:
                del self.sketches[sketch]
            self.sketches.update(
                (sketch, sketch_of(persons))
                for sketch, persons in person_increments(stored).items()
            )
            for tally in [k for k in self.tallies if workspace_id in (None, k.workspace_id)]:
                del self.tallies[tally]
            for key, (event, ws, project) in self.events.items():
                if workspace_id in (None, ws):
                    self.values[key] = self._values_of(
                        IngestBatch(ws, project, event.received_at, []), _event_of(event)
                    )
            self._add_tallies(dimension_increments(stored, self._declared(stored)))
            touched = {k.workspace_id for k in replaced} | {b.workspace_id for b in stored}
            return Recount(len(stored), frozenset(touched))

    def _stored_batches(self, workspace_id: str | None) -> Iterator[IngestBatch]:
        """Every stored event of the workspace (or of all), as a batch of one with its tenant."""
        for stored, ws, project in self.events.values():
            if workspace_id in (None, ws):
                yield IngestBatch(ws, project, stored.received_at, [_event_of(stored)])


def _event_of(stored: StoredEvent) -> Event:
    return Event(
        stored.id,
        stored.type,
        stored.timestamp,
        stored.properties,
        stored.user_id,
        stored.anonymous_id,
    )
