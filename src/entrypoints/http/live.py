"""The live view: a project's stored events as Server-Sent Events, and the tickets that open one.

A stream is opened with the caller's usual credentials (the standard principal dependency) or,
for a client that cannot send headers (a browser's EventSource), with ``ticket=`` from
``POST /v1/events/live/tickets``. Every LIVE_RECHECK_SECONDS the stream asks again whether its
caller may still read the project (membership, role, project, and the credentials' expiry):
once not, it sends one ``event: error`` and ends.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import jwt
import msgspec
from litestar import Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED
from litestar.types import ControllerRouterHandler

from eventcore.defaults import (
    LIVE_BUFFER_EVENTS,
    LIVE_KEEPALIVE_SECONDS,
    LIVE_RECHECK_SECONDS,
    LIVE_STREAMS_PER_WORKSPACE,
    LIVE_TICKET_SECONDS,
)
from eventcore.entrypoints.http.deps import access_token, provide_principal
from eventcore.entrypoints.http.errors import (
    ACCESS_TOKEN,
    JSON_BODY,
    VALIDATED,
    Codes,
    api_errors,
    error_body,
)
from eventcore.entrypoints.http.observability import bind_workspace
from eventcore.entrypoints.http.openapi import USER_AUTH
from eventcore.entrypoints.http.schemas import EventView, Text
from eventcore.errors import EventcoreError
from eventcore.live import Dropped, LiveEvent, Subscription
from eventcore.platform import Platform
from eventcore.tenancy import Principal

PATH = "/v1/events/live"
MEDIA_TYPE = "text/event-stream"
# Where a server stopping finds the open streams, to end them (server.BoundedHttpToolsProtocol).
SCOPE_KEY = "eventcore.live"

_encoder = msgspec.json.Encoder()
_UNSENDABLE_ID = re.compile("[\r\n\x00]")
_READ: Codes = {**VALIDATED, **ACCESS_TOKEN, 404: ("not_found",)}


class TicketRequest(msgspec.Struct):
    project_id: Text
    event_type: Text | None = None


class TicketResponse(msgspec.Struct):
    ticket: str
    expires_at: datetime
    url: str


@post(
    f"{PATH}/tickets",
    tags=["analytics"],
    security=USER_AUTH,
    status_code=HTTP_201_CREATED,
    summary="A single-use ticket that opens one live stream (any role)",
    description=(
        f"For clients that cannot send headers (a browser's `EventSource`): the answer's `url`"
        f" opens the stream of `project_id` (only events of `event_type` if given) as the"
        f" caller, once, within {LIVE_TICKET_SECONDS} seconds (`expires_at`). The ticket is"
        " 256 random bits, kept only as its hash; the stream it opens ends when the access"
        " token it was issued with expires."
    ),
    responses=api_errors(JSON_BODY, _READ, {503: ("tickets_unavailable",)}),
)
async def issue_ticket(
    request: Request[Any, Any, Any],
    data: JSONBody[TicketRequest],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> TicketResponse:
    issued = await platform.live.issue_ticket(
        principal,
        data.project_id,
        data.event_type,
        session_ends_at=_token_expiry(request),
    )
    query = {"project_id": data.project_id, "ticket": issued.ticket}
    if data.event_type is not None:
        query["event_type"] = data.event_type
    return TicketResponse(issued.ticket, issued.expires_at, f"{PATH}?{urlencode(query)}")


@get(
    PATH,
    tags=["analytics"],
    security=[*USER_AUTH, {}],
    media_type=MEDIA_TYPE,
    summary="The project's events as they are stored, as Server-Sent Events (any role)",
    description=(
        "Each event the project stores from now on (never a duplicate, a rejected or a deleted"
        " one) is sent within a second of its commit, in commit order, as `event: event`,"
        " `id: <event id>` and `data: <the event as GET /v1/events lists it>`. A subscriber that"
        f" falls {LIVE_BUFFER_EVENTS} events behind loses the next ones and, where they were,"
        ' receives `event: dropped` with `data: {"dropped": n}`. A comment line (`: keepalive`)'
        f" comes every {LIVE_KEEPALIVE_SECONDS:g} seconds. Credentials: an access token, or"
        " `ticket` from `POST /v1/events/live/tickets`. Once the caller may no longer read the"
        " project (membership removed, token expired, project deleted) the stream sends"
        " `event: error` with the error's JSON and ends, within a second. At most"
        f" {LIVE_STREAMS_PER_WORKSPACE} streams per workspace are open at once on each API"
        " process (else 429 `too_many_streams`)."
    ),
    responses=api_errors(
        _READ,
        {
            401: ("invalid_ticket",),
            403: ("forbidden", "ticket_mismatch"),
            429: ("too_many_streams",),
        },
    ),
)
async def live_events(
    request: Request[Any, Any, Any],
    platform: NamedDependency[Platform],
    project_id: FromQuery[str],
    event_type: FromQuery[str | None] = None,
    ticket: Annotated[
        str | None,
        QueryParameter(
            description=(
                "A ticket from `POST /v1/events/live/tickets`, in place of an access token:"
                " good once, for its project."
            )
        ),
    ] = None,
) -> Stream:
    allowed: Callable[[], Awaitable[None]]
    if ticket is not None:
        principal, ends_at = await platform.live.redeem(ticket, project_id)
        bind_workspace(principal.workspace_id)
        ticket_principal = principal

        async def allowed() -> None:
            await platform.live.current(ticket_principal, project_id, ends_at=ends_at)

    else:
        principal = await provide_principal(request, platform)

        async def allowed() -> None:
            # The request's own credentials, read again as the dependency reads them.
            now = await provide_principal(request, platform)
            await platform.live.current(now, project_id)

    subscription = await platform.live.open(principal, project_id, event_type)
    request.scope["state"][SCOPE_KEY] = subscription
    return Stream(
        _frames(platform, subscription, allowed),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        # Also when the stream never started (its client gone before the first byte): the
        # subscription must not hold a place of the workspace's for ever.
        background=BackgroundTask(platform.live.close, subscription),
    )


async def _frames(
    platform: Platform, subscription: Subscription, allowed: Callable[[], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """The stream's bytes until it is closed (the server stopping), the caller loses the right
    to it (one ``event: error`` last), or the client goes (Litestar stops the iteration)."""
    loop = asyncio.get_running_loop()
    try:
        # At once: the client knows the stream is open (and from when it receives events).
        yield b": live\n\n"
        keepalive_at = loop.time() + LIVE_KEEPALIVE_SECONDS
        check_at = loop.time() + LIVE_RECHECK_SECONDS
        while not subscription.closed:
            now = loop.time()
            if now >= check_at:
                check_at = now + LIVE_RECHECK_SECONDS
                try:
                    await allowed()
                except EventcoreError as exc:
                    body = error_body(exc.code, exc.message)
                    yield b"event: error\ndata: " + _encoder.encode(body) + b"\n\n"
                    return
            if now >= keepalive_at:
                keepalive_at = now + LIVE_KEEPALIVE_SECONDS
                yield b": keepalive\n\n"
            item = await subscription.next(max(0.0, min(keepalive_at, check_at) - loop.time()))
            if item is None:
                continue
            chunk = bytearray()
            # Whatever is waiting goes out in one write.
            while item is not None:
                _frame(item, chunk)
                item = await subscription.next(0) if len(chunk) < 65536 else None
            yield bytes(chunk)
            keepalive_at = loop.time() + LIVE_KEEPALIVE_SECONDS
    finally:
        await platform.live.close(subscription)


def _frame(item: LiveEvent | Dropped, chunk: bytearray) -> None:
    if isinstance(item, Dropped):
        chunk += b'event: dropped\ndata: {"dropped":%d}\n\n' % item.count
        return
    event = item.event
    view = EventView(
        event.id,
        event.type,
        event.timestamp,
        item.received_at,
        event.properties,
        event.user_id,
        event.anonymous_id,
    )
    chunk += b"event: event\n"
    # An id with a line break (or NUL) cannot be an SSE field: the event's data still holds it.
    if not _UNSENDABLE_ID.search(event.id):
        chunk += b"id: " + event.id.encode() + b"\n"
    chunk += b"data: "
    _encoder.encode_into(view, chunk, -1)
    chunk += b"\n\n"


def _token_expiry(request: Request[Any, Any, Any]) -> datetime | None:
    """When the request's access token expires (it was verified already: only its claim is read
    here), whether it came as a bearer token or in the console's session cookie; None without
    one."""
    token = access_token(request)
    if token is None:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (jwt.PyJWTError, KeyError, TypeError, ValueError, OverflowError):
        return None


ROUTES: list[ControllerRouterHandler] = [issue_ticket, live_events]
