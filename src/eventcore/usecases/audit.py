"""The audit log as its readers see it: a workspace's entries, newest first, page by page."""

from __future__ import annotations

import msgspec

from eventcore.audit import AuditAction, AuditEntry
from eventcore.cursors import CursorCodec, CursorScope
from eventcore.defaults import DEFAULT_PAGE, MAX_PAGE
from eventcore.errors import InvalidRequest
from eventcore.events import EventCursor
from eventcore.ports import AccountStore
from eventcore.tenancy import Permission, Principal

# The listing a cursor of the audit log belongs to (no project id is this text: they are UUIDs).
_SCOPE = "audit-log"


class AuditPage(msgspec.Struct, frozen=True):
    entries: list[AuditEntry]
    next_cursor: str | None


class AuditLog:
    """Reads the audit log (owner, admin); the stores write it with the actions."""

    def __init__(self, store: AccountStore, cursors: CursorCodec) -> None:
        self._store = store
        self._cursors = cursors

    async def entries(
        self,
        principal: Principal,
        *,
        action: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> AuditPage:
        """The workspace's entries (of one ``action``, or all), newest first; ``cursor`` is
        the previous page's ``next_cursor``, good for the same workspace and filter only."""
        principal.require(Permission.READ_AUDIT_LOG)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"`limit` must be 1 to {MAX_PAGE}.", code="invalid_query")
        wanted = _action(action)
        scope = CursorScope(principal.workspace_id, _SCOPE, action)
        before = self._cursors.decode(scope, cursor) if cursor else None
        rows = await self._store.list_audit(
            principal.workspace_id, limit=limit + 1, action=wanted, before=before
        )
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = self._cursors.encode(scope, EventCursor(last.at, last.seq))
        return AuditPage(rows[:limit], next_cursor)


def _action(action: str | None) -> AuditAction | None:
    if action is None:
        return None
    try:
        return AuditAction(action)
    except ValueError:
        known = ", ".join(a.value for a in AuditAction)
        raise InvalidRequest(f"`action` must be one of {known}.", code="invalid_query") from None
