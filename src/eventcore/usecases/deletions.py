"""Deletion requests: asked for by an owner or admin, carried out in chunks by a runner.

A request is stored pending (with its audit entry) and answered at once; :meth:`Deletions.run`
deletes its events :data:`~eventcore.defaults.DELETION_CHUNK` at a time, each chunk one
transaction that also recounts the days it touched, adds to ``events_deleted`` and retires the
workspace's cached answers, until nothing the selector takes is left; then the request is done.
A request with ``suppress`` also suppresses its persons (:mod:`eventcore.suppressions`), in the
transaction that stores it; :meth:`Deletions.lift` lifts one person's suppression and
:meth:`Deletions.suppressions` lists a project's.

A run is safe to repeat and to run twice at once (each event is deleted by one chunk, and a
request ends once): the HTTP layer runs a request right after answering, and every API process
sweeps for open ones (:meth:`Deletions.run_open`), so a request whose process stopped mid-way is
finished by another.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from eventcore.audit import ActorType, AuditAction, NoRequest, entry
from eventcore.defaults import (
    DEFAULT_PAGE,
    DELETION_CHUNK,
    MAX_DELETION_EVENT_IDS,
    MAX_DELETION_USER_IDS,
    MAX_ID_LENGTH,
    MAX_PAGE,
    MAX_PERSON_LENGTH,
    MAX_SUPPRESSIONS,
)
from eventcore.deletions import Deletion, DeletionStatus, EventSelector
from eventcore.errors import Conflict, DatabaseUnavailable, InvalidRequest, NotFound
from eventcore.ports import Clock, QueryCache, RequestContext, Store
from eventcore.suppressions import SuppressionPage
from eventcore.tenancy import Permission, Principal
from eventcore.usecases.ingest import SuppressedPersons


def selector_of(
    user_ids: list[str] | None,
    event_ids: list[str] | None,
    start: datetime | None,
    end: datetime | None,
) -> EventSelector:
    """The request's selector, checked: a 400 naming what is wrong."""
    for name, given, most, longest in (
        ("user_ids", user_ids, MAX_DELETION_USER_IDS, MAX_PERSON_LENGTH),
        ("event_ids", event_ids, MAX_DELETION_EVENT_IDS, MAX_ID_LENGTH),
    ):
        if given is None:
            continue
        if not 1 <= len(given) <= most:
            raise InvalidRequest(
                f"`{name}` must hold 1 to {most:,} ids (leave it out for no such criterion).",
                code="invalid_deletion",
            )
        if any(not 1 <= len(one) <= longest for one in given):
            raise InvalidRequest(
                f"Each of `{name}` must be 1 to {longest} characters.", code="invalid_deletion"
            )
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidRequest(
                f"`{name}` needs a time zone offset (RFC 3339).", code="invalid_deletion"
            )
    if start is not None and end is not None and start >= end:
        raise InvalidRequest("`start` must be before `end`.", code="invalid_deletion")
    selector = EventSelector(
        tuple(dict.fromkeys(user_ids or ())), tuple(dict.fromkeys(event_ids or ())), start, end
    )
    if selector.is_empty():
        raise InvalidRequest(
            "Name what to delete: `user_ids`, `event_ids`, `start` or `end` (or several: an"
            " event is deleted when it matches all of them).",
            code="invalid_deletion",
        )
    return selector


class Deletions:
    def __init__(
        self,
        store: Store,
        cache: QueryCache,
        clock: Clock,
        request_context: RequestContext | None = None,
        chunk: int = DELETION_CHUNK,
        suppressed: SuppressedPersons | None = None,
    ) -> None:
        self._store = store
        self._cache = cache
        self._clock = clock
        self._context = request_context or NoRequest()
        self._chunk = chunk
        self._suppressed = suppressed

    async def request(
        self,
        principal: Principal,
        project_id: str,
        *,
        user_ids: list[str] | None = None,
        event_ids: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        suppress: bool = False,
    ) -> Deletion:
        """A pending deletion of the project's events that match every criterion given
        (owner, admin); :meth:`run` carries it out. With ``suppress`` (which needs
        ``user_ids``), those persons are suppressed in the project from now on, whatever the
        other criteria: their later events are refused and never stored, until lifted."""
        principal.require(Permission.MANAGE_PROJECTS)
        if await self._store.get_project(principal.workspace_id, project_id) is None:
            raise NotFound("No such project.")
        if suppress and not user_ids:
            raise InvalidRequest(
                "`suppress` needs `user_ids`: the persons whose later events to refuse.",
                code="invalid_deletion",
            )
        selector = selector_of(user_ids, event_ids, start, end)
        if suppress:
            held = await self._store.suppressed_persons(principal.workspace_id, project_id)
            if len(held | set(selector.user_ids)) > MAX_SUPPRESSIONS:
                raise Conflict(
                    f"A project holds at most {MAX_SUPPRESSIONS:,} suppressed persons; it has"
                    f" {len(held):,}, and `user_ids` would add"
                    f" {len(set(selector.user_ids) - held):,}. Lift some first.",
                    code="too_many_suppressions",
                )
        now = self._clock.now()
        deletion = Deletion(
            id=str(uuid.uuid4()),
            workspace_id=principal.workspace_id,
            project_id=project_id,
            selector=selector,
            status=DeletionStatus.PENDING,
            requested_at=now,
            requested_by=principal.user_id,
            suppress=suppress,
        )
        audit = entry(
            AuditAction.DELETION_REQUESTED,
            principal.workspace_id,
            now,
            origin=self._context.origin(),
            actor=principal,
            target=("deletion", deletion.id),
            details={
                "project_id": project_id,
                "user_ids": len(selector.user_ids),
                "event_ids": len(selector.event_ids),
                "start": selector.start.isoformat() if selector.start else None,
                "end": selector.end.isoformat() if selector.end else None,
            },
        )
        suppression_audit = (
            entry(
                AuditAction.SUPPRESSION_ADDED,
                principal.workspace_id,
                now,
                origin=self._context.origin(),
                actor=principal,
                target=("project", project_id),
                details={"deletion_id": deletion.id, "user_ids": len(selector.user_ids)},
            )
            if suppress
            else None
        )
        await self._store.create_deletion(
            deletion, audit=audit, suppression_audit=suppression_audit
        )
        if suppress and self._suppressed is not None:
            self._suppressed.forget(principal.workspace_id, project_id)
        return deletion

    async def lift(self, principal: Principal, project_id: str, user_id: str) -> None:
        """Lift the person's suppression in the project (owner, admin): their events received
        from now on are accepted again. NotFound if the person is not suppressed there."""
        principal.require(Permission.MANAGE_PROJECTS)
        if await self._store.get_project(principal.workspace_id, project_id) is None:
            raise NotFound("No such project.")
        now = self._clock.now()
        audit = entry(
            AuditAction.SUPPRESSION_LIFTED,
            principal.workspace_id,
            now,
            origin=self._context.origin(),
            actor=principal,
            target=("project", project_id),
            details={"user_id": user_id},
        )
        lifted = await self._store.lift_suppression(
            principal.workspace_id, project_id, user_id, now, audit=audit
        )
        if not lifted:
            raise NotFound("That person is not suppressed in this project.")
        if self._suppressed is not None:
            self._suppressed.forget(principal.workspace_id, project_id)

    async def suppressions(
        self,
        principal: Principal,
        project_id: str,
        *,
        limit: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> SuppressionPage:
        """The project's suppressions in the order of their persons' ids, strictly after
        ``after`` (the previous page's ``next_after``) when given: at most ``limit``, 1 to
        :data:`~eventcore.defaults.MAX_PAGE` (owner, admin)."""
        principal.require(Permission.MANAGE_PROJECTS)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"`limit` must be 1 to {MAX_PAGE}.", code="invalid_query")
        if after is not None and not 1 <= len(after) <= MAX_PERSON_LENGTH:
            raise InvalidRequest(
                f"`after` must be 1 to {MAX_PERSON_LENGTH} characters.", code="invalid_query"
            )
        if await self._store.get_project(principal.workspace_id, project_id) is None:
            raise NotFound("No such project.")
        found = await self._store.list_suppressions(
            principal.workspace_id, project_id, limit=limit + 1, after=after
        )
        more = len(found) > limit
        return SuppressionPage(found[:limit], found[limit - 1].user_id if more else None)

    async def get(self, principal: Principal, deletion_id: str) -> Deletion:
        principal.require(Permission.MANAGE_PROJECTS)
        deletion = await self._store.get_deletion(principal.workspace_id, deletion_id)
        if deletion is None:
            raise NotFound("No such deletion.")
        return deletion

    async def list(self, principal: Principal, project_id: str) -> list[Deletion]:
        """The project's deletions, newest first (owner, admin)."""
        principal.require(Permission.MANAGE_PROJECTS)
        if await self._store.get_project(principal.workspace_id, project_id) is None:
            raise NotFound("No such project.")
        return await self._store.list_deletions(principal.workspace_id, project_id)

    async def run(self, workspace_id: str, deletion_id: str) -> Deletion | None:
        """Carry the deletion out, chunk by chunk, and end it; the deletion as it is then (None
        if there is none). One the store cannot reach stays open for a later run."""
        deletion = await self._store.get_deletion(workspace_id, deletion_id)
        if deletion is None or not deletion.open:
            return deletion
        try:
            while True:
                deleted = await self._store.delete_events(
                    workspace_id, deletion.project_id, deletion.selector, limit=self._chunk
                )
                if deleted:
                    await self._store.progress_deletion(workspace_id, deletion_id, deleted)
                    await self._cache.bump([workspace_id])
                if deleted < self._chunk:
                    break
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            await self._store.finish_deletion(
                workspace_id,
                deletion_id,
                DeletionStatus.FAILED,
                self._clock.now(),
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
            raise
        now = self._clock.now()
        done = await self._store.get_deletion(workspace_id, deletion_id)
        audit = entry(
            AuditAction.DELETION_COMPLETED,
            workspace_id,
            now,
            origin=NoRequest().origin(),
            actor_type=ActorType.SYSTEM,
            user_id=deletion.requested_by,
            target=("deletion", deletion_id),
            details={"events_deleted": done.events_deleted if done else 0},
        )
        await self._store.finish_deletion(
            workspace_id, deletion_id, DeletionStatus.DONE, now, audit=audit
        )
        return await self._store.get_deletion(workspace_id, deletion_id)

    async def run_open(self) -> int:
        """Run every open deletion of every workspace, oldest first; how many it ran."""
        found = await self._store.open_deletions()
        for workspace_id, deletion_id in found:
            try:
                await self.run(workspace_id, deletion_id)
            except DatabaseUnavailable:
                raise
            except Exception:  # noqa: S112
                # run() ended it `failed`, with its error; the others still run.
                continue
        return len(found)
