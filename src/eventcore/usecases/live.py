"""The live view's use case: who may open a stream of a project, its tickets, and its lifetime."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import msgspec

from eventcore.defaults import LIVE_TICKET_SECONDS, TOKEN_LIFETIME_SECONDS
from eventcore.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from eventcore.live import LiveHub, Subscription, Ticket, ticket_hash
from eventcore.ports import Clock, LiveWatch, TicketStore
from eventcore.tenancy import Principal, ProjectRef
from eventcore.usecases.accounts import Accounts
from eventcore.usecases.analytics import Analytics

# 32 random bytes: 256 bits, URL-safe text of 43 characters.
_TICKET_BYTES = 32


class IssuedTicket(msgspec.Struct, frozen=True):
    """A new ticket's secret, which exists only in this value, and when it stops being good."""

    ticket: str
    expires_at: datetime


class LiveStreams:
    """Streams of a project's stored events for any member of its workspace (every role reads
    events), opened with an access token or with a ticket issued for one."""

    def __init__(
        self,
        hub: LiveHub,
        watch: LiveWatch,
        tickets: TicketStore,
        accounts: Accounts,
        analytics: Analytics,
        clock: Clock,
        *,
        ticket_seconds: float = LIVE_TICKET_SECONDS,
        session_seconds: float = TOKEN_LIFETIME_SECONDS,
    ) -> None:
        self.hub = hub
        self._watch = watch
        self._tickets = tickets
        self._accounts = accounts
        self._analytics = analytics
        self._clock = clock
        self._ticket_seconds = ticket_seconds
        self._session_seconds = session_seconds

    async def issue_ticket(
        self,
        principal: Principal,
        project_id: str,
        event_type: str | None,
        *,
        session_ends_at: datetime | None = None,
    ) -> IssuedTicket:
        """A single-use ticket that opens one stream of the project as ``principal``, good for
        ``ticket_seconds``; the stream it opens ends at ``session_ends_at`` at the latest (when
        the caller's own credentials expire; by default ``session_seconds`` from now)."""
        await self.check(principal, project_id, event_type)
        now = self._clock.now()
        expires_at = now + timedelta(seconds=self._ticket_seconds)
        ends_at = session_ends_at or now + timedelta(seconds=self._session_seconds)
        secret = secrets.token_urlsafe(_TICKET_BYTES)
        ticket = Ticket(
            principal.user_id,
            principal.workspace_id,
            principal.role,
            project_id,
            expires_at,
            ends_at,
        )
        await self._tickets.put(ticket_hash(secret), ticket, self._ticket_seconds)
        return IssuedTicket(secret, expires_at)

    async def redeem(self, secret: str, project_id: str) -> tuple[Principal, datetime]:
        """The principal a ticket was issued to, as a member now, and when its stream must end:
        AuthenticationFailed ``invalid_ticket`` for a ticket unknown, used or expired (it is
        used up by this call whatever follows), PermissionDenied ``ticket_mismatch`` for one
        issued for another project."""
        ticket = await self._tickets.take(ticket_hash(secret)) if secret else None
        now = self._clock.now()
        if ticket is None or ticket.expires_at <= now:
            raise AuthenticationFailed(
                "The stream ticket is unknown, used or expired: ask for a new one with"
                " POST /v1/events/live/tickets (each opens one stream, within"
                f" {self._ticket_seconds:g} seconds).",
                code="invalid_ticket",
            )
        if ticket.project_id != project_id:
            raise PermissionDenied(
                "The stream ticket was issued for another project.", code="ticket_mismatch"
            )
        principal = await self.current(
            Principal(ticket.user_id, ticket.workspace_id, ticket.role), project_id
        )
        return principal, ticket.ends_at

    async def check(self, principal: Principal, project_id: str, event_type: str | None) -> None:
        """The caller may read the project's events, and the filter is one."""
        if event_type == "":
            raise InvalidRequest(
                "`event_type` must not be empty: leave it out for every type.",
                code="invalid_query",
            )
        await self._analytics.check_project(principal, project_id)

    async def current(
        self, principal: Principal, project_id: str, *, ends_at: datetime | None = None
    ) -> Principal:
        """The principal as a member now, who may still read the project (a stream asks this
        every LIVE_RECHECK_SECONDS): AuthenticationFailed, PermissionDenied or NotFound once
        not, and AuthenticationFailed ``token_expired`` from ``ends_at`` on."""
        if ends_at is not None and self._clock.now() >= ends_at:
            raise AuthenticationFailed(
                "The access token this stream's ticket was issued with has expired.",
                code="token_expired",
            )
        now = await self._accounts.current(principal)
        await self._analytics.check_project(now, project_id)
        return now

    async def open(
        self, principal: Principal, project_id: str, event_type: str | None
    ) -> Subscription:
        """A subscription of the project's stored events from now on (checked first), which
        :meth:`close` ends; RateLimited ``too_many_streams`` past the workspace's streams."""
        await self.check(principal, project_id, event_type)
        ref = ProjectRef(principal.workspace_id, project_id)
        subscription = self.hub.subscribe(ref, event_type)
        try:
            await self._watch.watch(ref)
        except BaseException:
            await self.close(subscription)
            raise
        return subscription

    async def close(self, subscription: Subscription) -> None:
        if self.hub.unsubscribe(subscription):
            await self._watch.unwatch(subscription.ref)
