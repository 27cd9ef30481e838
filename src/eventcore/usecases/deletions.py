"""Deletion requests: asked for by an owner or admin, carried out in chunks by a runner.

A request is stored pending (with its audit entry) and answered at once; :meth:`Deletions.run`
deletes its events :data:`~eventcore.defaults.DELETION_CHUNK` at a time, each chunk one
transaction that also recounts the days it touched, adds to ``events_deleted`` and retires the
workspace's cached answers, until nothing the selector takes is left; then the request is done.
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
    DELETION_CHUNK,
    MAX_DELETION_EVENT_IDS,
    MAX_DELETION_USER_IDS,
    MAX_ID_LENGTH,
    MAX_PERSON_LENGTH,
)
from eventcore.deletions import Deletion, DeletionStatus, EventSelector
from eventcore.errors import DatabaseUnavailable, InvalidRequest, NotFound
from eventcore.ports import Clock, QueryCache, RequestContext, Store
from eventcore.tenancy import Permission, Principal


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
    ) -> None:
        self._store = store
        self._cache = cache
        self._clock = clock
        self._context = request_context or NoRequest()
        self._chunk = chunk

    async def request(
        self,
        principal: Principal,
        project_id: str,
        *,
        user_ids: list[str] | None = None,
        event_ids: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Deletion:
        """A pending deletion of the project's events that match every criterion given
        (owner, admin); :meth:`run` carries it out."""
        principal.require(Permission.MANAGE_PROJECTS)
        if await self._store.get_project(principal.workspace_id, project_id) is None:
            raise NotFound("No such project.")
        selector = selector_of(user_ids, event_ids, start, end)
        now = self._clock.now()
        deletion = Deletion(
            id=str(uuid.uuid4()),
            workspace_id=principal.workspace_id,
            project_id=project_id,
            selector=selector,
            status=DeletionStatus.PENDING,
            requested_at=now,
            requested_by=principal.user_id,
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
        await self._store.create_deletion(deletion, audit=audit)
        return deletion

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
