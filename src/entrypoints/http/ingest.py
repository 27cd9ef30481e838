"""The ingest route: API key in, 202 out once the batch is durably accepted."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.status_codes import HTTP_202_ACCEPTED
from litestar.types import ControllerRouterHandler

from eventcore.entrypoints.http.body import READ_BODY_CODES, documented_body, read_body
from eventcore.entrypoints.http.deps import bearer_token, resolve_api_key
from eventcore.entrypoints.http.errors import Codes, api_errors
from eventcore.entrypoints.http.metrics import counting_refusals, record_receipt
from eventcore.entrypoints.http.openapi import API_KEY_AUTH
from eventcore.entrypoints.http.schemas import event_id_schema, event_type_schema
from eventcore.events import split_request
from eventcore.platform import Platform
from eventcore.suppressions import SUPPRESSED
from eventcore.usecases.ingest import IngestReceipt

_EVENT = Schema(
    type=OpenAPIType.OBJECT,
    required=["type"],
    properties={
        "id": event_id_schema("Idempotency key within the project"),
        "type": event_type_schema("Holds a character other than white space"),
        "timestamp": Schema(
            one_of=[
                Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
                Schema(type=OpenAPIType.NUMBER),
            ],
            description="RFC 3339 with an offset, or epoch seconds; default: time received",
        ),
        "properties": Schema(type=OpenAPIType.OBJECT, additional_properties=True),
    },
)
_BATCH = Schema(
    type=OpenAPIType.OBJECT,
    required=["events"],
    properties={"events": Schema(type=OpenAPIType.ARRAY, items=_EVENT, min_items=1)},
)


# What an ingest of events (native or Segment) may answer, past reading the body: the key, the
# body's JSON, the batch, the rate limit, and the store or queue it goes to.
INGEST_CODES: Codes = {
    400: ("malformed_json", "invalid_body", "invalid_events", "unstorable_value"),
    401: ("unauthorized", "invalid_api_key", "revoked_api_key"),
    403: ("origin_not_allowed",),
    413: ("too_many_events",),
    429: ("rate_limited",),
    503: ("database_unavailable", "queue_unavailable", "queue_full"),
}
# The codes of the events `rejected` lists, by index (`eventcore.events.validate_events`, and
# `suppressed`: a valid event of a person suppressed in the project, `eventcore.suppressions`).
EVENT_REJECTIONS = (
    "invalid_event",
    "invalid_properties",
    "invalid_number",
    "duplicate_key",
    "invalid_timestamp",
    "timestamp_in_future",
    "event_too_large",
    SUPPRESSED,
)


def rejections(codes: tuple[str, ...]) -> str:
    """What a receipt's ``rejected`` holds, for the answer's description."""
    named = ", ".join(f"`{code}`" for code in codes)
    return f" `rejected` lists each event refused alone, by its index, with its code: {named}."


def api_key(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("x-api-key") or bearer_token(request)


@post(
    "/v1/ingest",
    status_code=HTTP_202_ACCEPTED,
    tags=["ingest"],
    security=API_KEY_AUTH,
    summary="Send one event or a batch",
    operation_class=documented_body(
        "One event, or a batch of events. `Content-Encoding`: `gzip` (one or more members) or"
        " `identity`; any other is a 415.",
        Schema(one_of=[_EVENT, _BATCH]),
    ),
    response_description="The valid events are durably accepted." + rejections(EVENT_REJECTIONS),
    responses=api_errors(READ_BODY_CODES, INGEST_CODES),
)
async def ingest(
    request: Request[Any, Any, Any], platform: NamedDependency[Platform]
) -> IngestReceipt:
    key = api_key(request)
    limits = platform.ingestor.limits
    body = await read_body(request, limits.max_request_bytes)
    # What Ingestor.ingest does, in steps, so that the workspace is bound to the request's logs
    # once the key is resolved and refused events are counted.
    record = await resolve_api_key(platform, key)
    await platform.keys.check_origin(record, request.headers.get("origin"))
    events = split_request(body, limits)
    with counting_refusals(len(events)):
        receipt = await platform.ingestor.submit(record.tenant, events)
    record_receipt(receipt)
    return receipt


ROUTES: list[ControllerRouterHandler] = [ingest]
