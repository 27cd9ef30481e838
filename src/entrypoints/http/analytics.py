"""Routes that read: counts over time, event-type totals and the event list.

The two analytics answers go out as the use case's JSON bytes (a cached answer as it was stored),
with an ``ETag``; ``If-None-Match`` holding it answers 304 (``conditional``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from eventcore.aggregation import CountSeries, EventTypeTotals, Granularity
from eventcore.cursors import CURSOR_PATTERN
from eventcore.defaults import DEFAULT_PAGE, DEFAULT_WINDOW, MAX_BUCKETS, MAX_PAGE
from eventcore.entrypoints.http.conditional import json_answer
from eventcore.entrypoints.http.errors import ACCESS_TOKEN, VALIDATED, Codes, api_errors
from eventcore.entrypoints.http.openapi import USER_AUTH
from eventcore.entrypoints.http.schemas import EventList, EventView, ndjson
from eventcore.errors import InvalidRequest
from eventcore.platform import Platform
from eventcore.tenancy import Principal

CURSOR = (
    "The `next_cursor` of the previous page, as it came: opaque (its position is encrypted) and"
    " good only for the same project and `event_type` filter; any other text, an edited cursor"
    " or one of another listing is refused (400 `invalid_cursor`). Empty is the first page."
)
# The bounds below are checked by the use case, after the caller's role and project (with
# their own codes), so they are stated in the schema rather than enforced by Litestar.
START = QueryParameter(
    description=(
        "An RFC 3339 time with an offset (an unescaped `+`, read as a space, is taken as `+`);"
        f" default: `end` minus {DEFAULT_WINDOW.total_seconds() / 3600:g} hours. Rounded down"
        f" to the granularity; it must be before `end`, and the window at most {MAX_BUCKETS}"
        " buckets (400 `window_too_large`)."
    ),
    schema_extra={"format": "date-time"},
)
END = QueryParameter(
    description="An RFC 3339 time with an offset; default: now. Rounded up to the granularity.",
    schema_extra={"format": "date-time"},
)
LIMIT = QueryParameter(
    description=f"Events per page, 1 to {MAX_PAGE} (else 400 `invalid_query`).",
    schema_extra={"minimum": 1, "maximum": MAX_PAGE},
)
# What every analytics read may answer besides its answer.
READ: Codes = {**VALIDATED, **ACCESS_TOKEN, 404: ("not_found",)}

WHERE = (
    "A filter `dimension:value` on one of the project's declared dimensions (repeatable: every"
    " filter must match). Filtered answers are counted exactly from the stored events."
)


def parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    # Left out means the default window; given empty is a time that is not one (as the schema says).
    # An unescaped "+" in a query string arrives as a space.
    text = value.strip().replace(" ", "+")
    try:
        moment = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        raise InvalidRequest(
            f"`{name}` must be an RFC 3339 time such as 2026-01-31T12:00:00Z.", code="invalid_query"
        ) from None
    if moment.tzinfo is None:
        raise InvalidRequest(f"`{name}` needs a time zone offset (RFC 3339).", code="invalid_query")
    return moment


@get(
    "/v1/analytics/counts",
    tags=["analytics"],
    security=USER_AUTH,
    summary="Event counts over time",
    responses=api_errors(READ, {400: ("window_too_large",)}),
)
async def counts(
    request: Request[Any, Any, Any],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
    project_id: FromQuery[str],
    start: Annotated[str | None, START] = None,
    end: Annotated[str | None, END] = None,
    granularity: FromQuery[Granularity] = Granularity.HOUR,
    event_type: FromQuery[str | None] = None,
    where: Annotated[list[str] | None, QueryParameter(description=WHERE)] = None,
) -> Response[CountSeries]:
    answer = await platform.analytics.counts_json(
        principal,
        project_id,
        start=parse_time("start", start),
        end=parse_time("end", end),
        granularity=granularity,
        event_type=event_type,
        where=where or (),
    )
    return json_answer(request, answer)


@get(
    "/v1/analytics/event-types",
    tags=["analytics"],
    security=USER_AUTH,
    summary="Event counts per type, largest first",
    responses=api_errors(READ, {400: ("window_too_large",)}),
)
async def event_types(
    request: Request[Any, Any, Any],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
    project_id: FromQuery[str],
    start: Annotated[str | None, START] = None,
    end: Annotated[str | None, END] = None,
) -> Response[EventTypeTotals]:
    answer = await platform.analytics.event_types_json(
        principal, project_id, start=parse_time("start", start), end=parse_time("end", end)
    )
    return json_answer(request, answer)


@get(
    "/v1/events",
    tags=["analytics"],
    security=USER_AUTH,
    summary="Stored events, newest first",
    responses=api_errors(READ, {400: ("invalid_cursor",)}),
)
async def list_events(
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
    project_id: FromQuery[str],
    event_type: FromQuery[str | None] = None,
    limit: Annotated[int, LIMIT] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        QueryParameter(description=CURSOR, schema_extra={"pattern": f"^(?:{CURSOR_PATTERN})?$"}),
    ] = None,
) -> EventList:
    page = await platform.analytics.list_events(
        principal, project_id, event_type=event_type, limit=limit, cursor=cursor
    )
    return EventList(
        [EventView.of(e) for e in page.events],
        page.next_cursor,
    )


EXPORT_MEDIA_TYPE = "application/x-ndjson"


@get(
    "/v1/events/export",
    tags=["analytics"],
    security=USER_AUTH,
    media_type=EXPORT_MEDIA_TYPE,
    summary="Every stored event of a window, oldest first, one JSON object a line (any role)",
    description=(
        "Streams `application/x-ndjson`: each line one stored event as `/v1/events` lists it,"
        " in time order (ties in insertion order), read a page at a time whatever the window"
        " holds. `start` and `end` are optional (default: every stored event). An export that"
        " fails midway ends without the stream's last chunk: the client sees a cut-off"
        " transfer, never a short file that looks whole."
    ),
    responses=api_errors(READ),
)
async def export_events(
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
    project_id: FromQuery[str],
    start: Annotated[
        str | None,
        QueryParameter(
            description="An RFC 3339 time with an offset; default: the first stored event.",
            schema_extra={"format": "date-time"},
        ),
    ] = None,
    end: Annotated[
        str | None,
        QueryParameter(
            description="An RFC 3339 time with an offset (excluded); default: the last stored event.",
            schema_extra={"format": "date-time"},
        ),
    ] = None,
    event_type: FromQuery[str | None] = None,
) -> Stream:
    pages = await platform.analytics.export(
        principal,
        project_id,
        start=parse_time("start", start),
        end=parse_time("end", end),
        event_type=event_type,
    )
    return Stream(ndjson(pages), media_type=EXPORT_MEDIA_TYPE)


ROUTES: list[ControllerRouterHandler] = [counts, event_types, list_events, export_events]
