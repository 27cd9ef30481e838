"""Ports: what the core needs from the outside world, as structural protocols.

Every method that reads or writes one tenant's data takes its workspace explicitly. The
exceptions take none on purpose: users are not tenant data (one account can belong to several
workspaces), so :meth:`AccountStore.get_user` and :meth:`AccountStore.get_user_by_email` look
them up globally; :meth:`AccountStore.find_api_key` (the tenant is what it finds) and
:meth:`AccountStore.list_memberships` (a user's workspaces, asked at login before one is
chosen) cross tenants by nature; and :meth:`EventStore.rebuild_counts` without a workspace
repairs all of them (an operator's command).

Every write of an account's data takes an ``audit`` entry: the store records it in the same
transaction as the write, and only if the write took effect (it returned something other than
None or False, and raised nothing); :mod:`eventcore.audit`.

A store raises only :mod:`eventcore.errors`: :class:`~eventcore.errors.EmailTaken`,
:class:`~eventcore.errors.AlreadyMember` and :class:`~eventcore.errors.AlreadyExists` for what
it refuses to store twice (keeping the first), :class:`~eventcore.errors.DatabaseUnavailable`
when its database cannot be reached or is busy (nothing was written).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from eventcore.aggregation import CountPoint, EventTypeCount, Granularity, StoredGrain
from eventcore.audit import AuditAction, AuditEntry, RequestOrigin
from eventcore.deletions import Deletion, DeletionStatus, EventSelector
from eventcore.dimensions import DimensionTally, FilteredEvent, ValueTotal, Where
from eventcore.events import EventCursor, IngestBatch, StoredEvent
from eventcore.funnels import PersonEvent
from eventcore.idempotency import IdempotencyKey
from eventcore.live import Ticket
from eventcore.persons import StoredSketch
from eventcore.suppressions import Suppression
from eventcore.tenancy import (
    ApiKey,
    Invitation,
    Member,
    Membership,
    Principal,
    Project,
    ProjectRef,
    Role,
    User,
    Workspace,
)


class AppendResult(msgspec.Struct, frozen=True):
    """What one committed append did: new rows, and events that were already stored; with
    ``listed`` asked of the append, ``stored`` names the new rows in commit order."""

    inserted: int
    duplicates: int
    stored: tuple[IdempotencyKey, ...] = ()


class Recount(msgspec.Struct, frozen=True):
    """What a rebuild of the count tables did: events counted, and the workspaces it touched
    (whose cached answers are then out of date)."""

    events: int
    workspace_ids: frozenset[str]


class AccountStore(Protocol):
    async def create_signup(
        self,
        user: User,
        workspace: Workspace,
        owner: Membership,
        *,
        audit: AuditEntry | None = None,
    ) -> None:
        """Store a new user, their workspace and ownership atomically, or nothing.

        EmailTaken if the email is taken; AlreadyExists if the user's or workspace's id is.
        """

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_email(self, email: str) -> User | None: ...

    async def get_membership(self, workspace_id: str, user_id: str) -> Membership | None: ...

    async def list_memberships(self, user_id: str) -> list[Membership]:
        """The user's memberships, oldest first."""

    async def add_membership(self, membership: Membership) -> None:
        """AlreadyMember if the user is already a member of the workspace."""

    async def create_invitation(
        self, invitation: Invitation, *, audit: AuditEntry | None = None
    ) -> None:
        """AlreadyExists if its id or token hash is in use."""

    async def find_invitation(self, workspace_id: str, token_hash: str) -> Invitation | None:
        """The workspace's invitation with this token hash, accepted or not."""

    async def accept_invitation(
        self,
        workspace_id: str,
        invitation_id: str,
        membership: Membership,
        at: datetime,
        *,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Mark the invitation accepted ``at`` and add the membership, in one transaction; False
        (nothing changed) if it was accepted already; AlreadyMember (nothing changed, the
        invitation still open) if the user is a member."""

    async def list_members(self, workspace_id: str) -> list[Member]:
        """The workspace's members with their emails, oldest membership first."""

    async def change_role(
        self, workspace_id: str, user_id: str, role: Role, *, audit: AuditEntry | None = None
    ) -> Membership | None:
        """The membership with its new role, None if there is none; LastOwner (and nothing
        changed) if it would leave the workspace without an owner. Atomic with every other
        change of the workspace's memberships."""

    async def remove_membership(
        self, workspace_id: str, user_id: str, *, audit: AuditEntry | None = None
    ) -> bool:
        """Whether there was a membership to remove; LastOwner (and nothing changed) if it is
        the workspace's last owner's."""

    async def get_workspace(self, workspace_id: str) -> Workspace | None: ...

    async def delete_workspace(self, workspace_id: str, at: datetime) -> list[ApiKey] | None:
        """Remove every row of the workspace (its events, counts, sketches, tallies, projects,
        keys, members, invitations, deletions, suppressions, audit log) in one transaction, and
        keep its id as deleted: an append of its batches after this stores nothing. Its API keys as they were
        (for the caller to forget them), or None if there is no such workspace. Users stay
        (they are not tenant data, and may belong to other workspaces)."""

    async def create_project(self, project: Project, *, audit: AuditEntry | None = None) -> None:
        """AlreadyExists if the id is in use."""

    async def get_project(self, workspace_id: str, project_id: str) -> Project | None: ...

    async def list_projects(self, workspace_id: str) -> list[Project]:
        """Oldest first."""

    async def create_api_key(self, key: ApiKey, *, audit: AuditEntry | None = None) -> None:
        """AlreadyExists if the id or the key hash is in use."""

    async def list_api_keys(self, workspace_id: str, project_id: str) -> list[ApiKey]:
        """Oldest first, revoked ones included."""

    async def set_dimensions(
        self,
        workspace_id: str,
        project_id: str,
        dimensions: tuple[str, ...],
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        """Replace the project's declared dimensions; None if it is not in the workspace.

        Appends committed after this count the new dimensions' values."""

    async def set_retention(
        self,
        workspace_id: str,
        project_id: str,
        retention_days: int | None,
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        """Set how many days the project keeps its events (None: for ever); None if it is not
        in the workspace. Appends committed after this withhold events past it
        (:mod:`eventcore.retention`); the next retention run expires the stored ones."""

    async def set_allowed_origins(
        self,
        workspace_id: str,
        project_id: str,
        origins: tuple[str, ...],
        *,
        audit: AuditEntry | None = None,
    ) -> Project | None:
        """Set the origins whose pages may send with the project's keys (none: any); None if
        it is not in the workspace."""

    async def projects_with_retention(self) -> list[Project]:
        """Every project of every workspace that has a retention (a retention run's sweep: this
        lookup crosses tenants by nature), by workspace and id."""

    async def delete_project(
        self, workspace_id: str, project_id: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> list[ApiKey] | None:
        """Delete the project and revoke its API keys (revoked ``at``, unless they were already),
        in one transaction; the keys as they are now, or None if there is no such project. The
        project's events stay in the store, reachable through no project."""

    async def revoke_api_key(
        self, workspace_id: str, key_id: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> ApiKey | None:
        """Mark the key revoked (once; a second call keeps the first time). None if not in the workspace."""

    async def find_api_key(self, key_hash: str) -> ApiKey | None: ...

    async def record_audit(self, entry: AuditEntry) -> None:
        """Store one audit entry on its own (an action that writes nothing else: a login)."""

    async def expire_audit_log(self, before: datetime) -> int:
        """Remove the audit entries of every workspace recorded before ``before`` (the log's
        retention: an operator's sweep, crossing tenants by nature); how many it removed."""

    async def list_audit(
        self,
        workspace_id: str,
        *,
        limit: int,
        action: AuditAction | None = None,
        before: EventCursor | None = None,
    ) -> list[AuditEntry]:
        """The workspace's audit entries (of ``action``, or all), newest first by (at, seq),
        strictly older than ``before`` when given: the first ``limit``."""


class EventStore(Protocol):
    async def append(self, batches: Sequence[IngestBatch], *, listed: bool = False) -> AppendResult:
        """Store every event not stored yet and add exactly those to the counts, in one transaction.

        With ``listed``, the result names each event it stored (``AppendResult.stored``), in
        the order of their insertion (the live view publishes them); without, it names none.

        An event already stored under the same (workspace, project, id) changes nothing. An
        event a deletion requested since it was received takes, whose person is suppressed in
        its project, or that was received while its person's suppression (lifted since) was in
        force, is not stored: its id is kept as deleted (a duplicate from then on).
        """

    async def count_series(
        self,
        workspace_id: str,
        project_id: str,
        grain: StoredGrain,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[CountPoint]:
        """Non-zero counts of ``grain`` buckets starting in [start, end), by bucket then type."""

    async def event_type_totals(
        self, workspace_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[EventTypeCount]:
        """Counts per event type over hour buckets starting in [start, end), largest first."""

    async def list_events(
        self,
        workspace_id: str,
        project_id: str,
        *,
        limit: int,
        event_type: str | None = None,
        before: EventCursor | None = None,
    ) -> list[StoredEvent]:
        """Newest first by (timestamp, seq), strictly older than ``before`` when given."""

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
        """Oldest first by (timestamp, seq): events with a timestamp in [start, end), of
        ``event_type`` (or any), strictly after ``after`` when given; the first ``limit``."""

    async def user_sketches(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[tuple[datetime, bytes]]:
        """The persons' sketches (:mod:`eventcore.persons`) of hour buckets starting in
        [start, end): of ``event_type``, or of every type together; buckets without persons are
        left out."""

    async def user_window(
        self,
        workspace_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        granularity: Granularity,
        event_type: str | None = None,
    ) -> list[StoredSketch]:
        """What a unique-users answer over [start, end) (hour boundaries; day boundaries for
        ``granularity`` DAY) reads (:func:`eventcore.persons.window_user_series`), of
        ``event_type`` or of every type together: the sketch of every whole UTC day inside the
        window that has one, with its bytes; with ``granularity`` HOUR every hour sketch of the
        window, with its estimate or its bytes; and every other hour sketch of the window (of a
        day not given whole) with its bytes. Buckets without persons are left out."""

    async def person_events(
        self,
        workspace_id: str,
        project_id: str,
        event_types: Sequence[str],
        start: datetime,
        end: datetime,
        limit: int | None = None,
    ) -> list[PersonEvent]:
        """Stored events of ``event_types`` that have a person, with a timestamp in [start, end),
        ordered by (person, timestamp, seq): the first ``limit`` of them (None: every one)."""

    async def dimension_tallies(
        self,
        workspace_id: str,
        project_id: str,
        dimension: str,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[DimensionTally]:
        """The daily tallies of ``dimension`` for days starting in [start, end): of
        ``event_type``, or of every type together (:mod:`eventcore.dimensions`)."""

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
        """What a breakdown reads of those same tallies: one total per kind and value (its
        counts summed), in any order. The first ``listed`` of them by count descending, then
        kind, then value (code point order), ``other`` left out, carry their tallies' sketches
        in day order (an empty list if none had a person); every other total carries None, and
        no sketch of it is read (:func:`eventcore.dimensions.totals_of_tallies` is the
        definition)."""

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
        """Stored events with a timestamp in [start, end), of ``event_type`` (or any), whose
        stored dimension values match every filter of ``where``, in any order: at most
        ``limit`` of them (which ones, when there are more, is unspecified; None: every one)."""

    async def delete_events(
        self, workspace_id: str, project_id: str, selector: EventSelector, *, limit: int
    ) -> int:
        """Delete at most ``limit`` of the project's stored events that ``selector`` takes, in
        one transaction with the rest: keep each one's id as deleted (an append of it again is
        a duplicate) and make the project's counts, persons' sketches and dimension tallies of
        the UTC days from the first to the last deleted event's again from the events that
        remain, as a rebuild makes them (:mod:`eventcore.deletions`). How many it deleted:
        fewer than ``limit`` means the selector takes no stored event any more."""

    async def expire_events(
        self, workspace_id: str, project_id: str, before: datetime, *, limit: int
    ) -> int:
        """Delete at most ``limit`` of the project's stored events with a timestamp before
        ``before`` (a whole minute: :func:`eventcore.retention.cutoff`), oldest first, keeping no
        id, in one transaction with the counts, persons' sketches and dimension tallies of the
        whole UTC days before ``before``'s day that it emptied (removed, not recounted; a store
        may leave some to a later call). When it
        deletes fewer than ``limit`` (none is left), it then also removes those rows of every
        day before ``before``'s day, and makes ``before``'s own day again from the events that
        remain, as a rebuild makes it, if its rows still count events before ``before`` (a store
        may do this in a transaction of its own: a run stopped in between leaves it to the next
        run; :mod:`eventcore.retention`). How many it deleted."""

    async def rebuild_counts(self, workspace_id: str | None = None) -> Recount:
        """Recompute the count tables, the persons' sketches, each event's stored dimension
        values (for the project's dimensions as declared now) and the dimension tallies from
        the stored events (of one workspace, or of all).

        The recount names every workspace whose count rows it replaced or whose events it
        counted: the ones whose cached answers may now be out of date.
        """


class DeletionStore(Protocol):
    """Deletion requests and their progress (the deleting itself is
    :meth:`EventStore.delete_events`)."""

    async def create_deletion(
        self,
        deletion: Deletion,
        *,
        audit: AuditEntry | None = None,
        suppression_audit: AuditEntry | None = None,
    ) -> None:
        """AlreadyExists if its id is in use in the workspace.

        With ``deletion.suppress``, also suppress each of its persons (``selector.user_ids``) in
        its project, in the same transaction, recording ``suppression_audit`` too: a person
        already suppressed keeps the suppression it had (:mod:`eventcore.suppressions`)."""

    async def get_deletion(self, workspace_id: str, deletion_id: str) -> Deletion | None: ...

    async def list_deletions(self, workspace_id: str, project_id: str) -> list[Deletion]:
        """The project's deletions, newest first."""

    async def progress_deletion(self, workspace_id: str, deletion_id: str, deleted: int) -> None:
        """Add ``deleted`` to its ``events_deleted``, and mark it running unless it has ended."""

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
        """End it (done or failed) ``at``, once: False, and nothing recorded, if it had ended."""

    async def open_deletions(self) -> list[tuple[str, str]]:
        """(workspace id, deletion id) of every pending or running deletion, oldest first, of
        every workspace: a runner's sweep (this lookup crosses tenants by nature)."""


class SuppressionStore(Protocol):
    """Suppressed persons (made by :meth:`DeletionStore.create_deletion` with ``suppress``);
    :meth:`EventStore.append` never stores an event of a person suppressed in its project, nor
    one received while a suppression since lifted was in force."""

    async def suppressed_persons(self, workspace_id: str, project_id: str) -> frozenset[str]:
        """Every person suppressed in the project now (not lifted)."""

    async def list_suppressions(
        self, workspace_id: str, project_id: str, *, limit: int, after: str | None = None
    ) -> list[Suppression]:
        """The project's suppressions in force, in the order of their persons' ids (as UTF-8
        bytes), strictly after ``after`` when given: the first ``limit``."""

    async def lift_suppression(
        self,
        workspace_id: str,
        project_id: str,
        user_id: str,
        at: datetime,
        *,
        audit: AuditEntry | None = None,
    ) -> bool:
        """End the person's suppression in the project ``at``; False (nothing recorded) if there
        was none. The store keeps when it was in force: an append after the lift still
        withholds the person's events received while it was (they waited in the queue)."""


class Store(AccountStore, EventStore, DeletionStore, SuppressionStore, Protocol):
    """A database that holds accounts, events, deletion requests and suppressions."""


class IngestQueue(Protocol):
    async def publish(self, batch: IngestBatch) -> None:
        """Return only once the batch is durably held; raise Unavailable otherwise."""


class LivePublisher(Protocol):
    """Where a process that commits events sends them to the live view's subscribers, wherever
    they are served. Neither method raises: a live view that cannot be reached costs its
    subscribers events, never an append its commit or its time."""

    async def watched(self, projects: Collection[ProjectRef]) -> frozenset[ProjectRef]:
        """Which of ``projects`` have a subscriber now (an answer at most
        LIVE_WATCH_CACHE_SECONDS old; none when it cannot be known)."""

    async def publish(self, batches: Sequence[IngestBatch]) -> None:
        """Hand committed events, each batch one project's in commit order, to the subscribers
        of their projects."""


class LiveWatch(Protocol):
    """How an API process receives the events other processes commit for its subscribers: it
    watches each project that has one, and feeds what arrives to its hub."""

    async def watch(self, ref: ProjectRef) -> None:
        """A subscriber of the project opened here: receive its events from now on."""

    async def unwatch(self, ref: ProjectRef) -> None:
        """The project's last subscriber here closed."""


class TicketStore(Protocol):
    """Stream tickets by their hash, each redeemable once, by any API process."""

    async def put(self, ticket_hash: str, ticket: Ticket, ttl_seconds: float) -> None:
        """Keep the ticket for ``ttl_seconds``; Unavailable if it cannot be kept."""

    async def take(self, ticket_hash: str) -> Ticket | None:
        """The ticket, removed in the same step (a second take finds nothing); None if there is
        none or its time has passed."""


class ApiKeyCache(Protocol):
    """A short-lived cache of key lookups; a revoked key must stop working within one second."""

    async def get(self, key_hash: str) -> ApiKey | None: ...

    async def put(self, key: ApiKey) -> None: ...

    async def evict(self, key_hash: str) -> None: ...


class RateLimiter(Protocol):
    async def acquire(self, workspace_id: str, events: int) -> float:
        """Take ``events`` from the workspace's allowance: 0.0 if allowed, else seconds to wait."""


class Admitted(msgspec.Struct, frozen=True):
    """What admitting one ingest call found: ``wait`` is 0.0 when the workspace's rate allows its
    events (else the seconds to wait, and nothing else was looked at); ``known`` are the ids
    asked about that the fast path knows to be committed."""

    wait: float
    known: frozenset[str] = frozenset()


class Admission(Protocol):
    """The rate limit and the committed-ids lookup of one ingest call, asked together, so that a
    shared cache answers both in one round trip. Fails open like each of the two."""

    async def admit(self, tenant: ProjectRef, events: int, event_ids: Sequence[str]) -> Admitted:
        """Take ``events`` from the workspace's allowance; if allowed, which ``event_ids`` are
        known committed."""


class CommittedKeys(Protocol):
    """The idempotency fast path: a cache of ids known to be committed. It may forget anything."""

    async def known(self, tenant: ProjectRef, event_ids: Sequence[str]) -> set[str]: ...

    async def remember(self, batches: Sequence[IngestBatch]) -> None: ...


class QueryCache(Protocol):
    """Cached analytics answers, keyed by workspace, query and the workspace's data generation.

    An answer is filed under the generation read before it was computed; :meth:`lookup` reads
    the generation and the answer filed under it together, so that a shared cache answers a
    hit in one round trip. A negative generation means the cache could not be read: no answer
    is ever filed under one.
    """

    async def generation(self, workspace_id: str) -> int: ...

    async def bump(self, workspace_ids: Iterable[str]) -> None: ...

    async def lookup(self, workspace_id: str, key: str) -> tuple[int, bytes | None]:
        """The workspace's generation now, and the answer filed under ``key`` at it (None if none)."""

    async def put(
        self, workspace_id: str, key: str, generation: int, value: bytes, ttl_seconds: float
    ) -> None:
        """File ``value`` under ``key`` at ``generation`` for ``ttl_seconds``, replacing the
        key's answer (a cache may keep only the latest, whatever its generation); nothing is
        filed under a negative generation."""


class ProjectCache(Protocol):
    """Projects as they were read, each remembered for a short time: a deleted project is still
    taken to exist, and a changed one (its dimensions) read as it was, until its entry ends
    (PROJECT_CACHE_SECONDS by default)."""

    async def get(self, workspace_id: str, project_id: str) -> Project | None: ...

    async def remember(self, project: Project) -> None: ...

    async def forget(self, workspace_id: str, project_id: str) -> None: ...


class WorkspaceCaches(Protocol):
    """Whatever a shared cache holds of one workspace, removed when the workspace is deleted."""

    async def drop(self, workspace_id: str) -> None:
        """Remove every cached answer, generation, committed id and rate bucket of it (a cache
        that cannot be reached keeps them until they expire)."""


class MembershipCache(Protocol):
    """Current memberships' roles, each remembered for a short time: a removed or demoted
    member keeps the old role until its entry ends (MEMBERSHIP_CACHE_SECONDS by default)."""

    async def role(self, workspace_id: str, user_id: str) -> Role | None: ...

    async def remember(self, workspace_id: str, user_id: str, role: Role) -> None: ...

    async def forget(self, workspace_id: str, user_id: str) -> None: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...


class TokenCodec(Protocol):
    def issue(self, principal: Principal, now: datetime) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds."""

    def verify(self, token: str, now: datetime) -> Principal:
        """The principal the token was issued to; AuthenticationFailed if bad or expired."""


class RequestContext(Protocol):
    """Where the request being served came from, for the audit log (eventcore.audit)."""

    def origin(self) -> RequestOrigin: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
