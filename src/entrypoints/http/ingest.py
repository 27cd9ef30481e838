"""The ingest route: API key in, 202 out once the batch is durably accepted."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.status_codes import HTTP_202_ACCEPTED
from litestar.types import ControllerRouterHandler

from eventcore.entrypoints.http.body import documented_body, read_body
from eventcore.entrypoints.http.deps import bearer_token, resolve_api_key
from eventcore.entrypoints.http.errors import INGEST_ERRORS
from eventcore.entrypoints.http.metrics import counting_refusals, record_receipt
from eventcore.entrypoints.http.schemas import event_id_schema, event_type_schema
from eventcore.events import split_request
from eventcore.platform import Platform
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


def api_key(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("x-api-key") or bearer_token(request)


@post(
    "/v1/ingest",
    status_code=HTTP_202_ACCEPTED,
    tags=["ingest"],
    security=[{"ApiKey": []}, {"ApiKeyBearer": []}],
    summary="Send one event or a batch",
    operation_class=documented_body(
        "One event, or a batch of events. `Content-Encoding`: `gzip` (one or more members) or"
        " `identity`; any other is a 415.",
        Schema(one_of=[_EVENT, _BATCH]),
    ),
    responses=INGEST_ERRORS,
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
    events = split_request(body, limits)
    with counting_refusals(len(events)):
        receipt = await platform.ingestor.submit(record.tenant, events)
    record_receipt(receipt)
    return receipt


ROUTES: list[ControllerRouterHandler] = [ingest]
