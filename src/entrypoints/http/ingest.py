"""The ingest route: API key in, 202 out once the batch is durably accepted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.status_codes import HTTP_202_ACCEPTED
from litestar.types import ControllerRouterHandler

from eventcore.entrypoints.http.body import read_body
from eventcore.entrypoints.http.deps import bearer_token, resolve_api_key
from eventcore.entrypoints.http.errors import API_ERRORS
from eventcore.entrypoints.http.metrics import counting_refusals, record_receipt
from eventcore.events import split_request
from eventcore.platform import Platform
from eventcore.usecases.ingest import IngestReceipt

_EVENT = Schema(
    type=OpenAPIType.OBJECT,
    required=["type"],
    properties={
        "id": Schema(
            type=OpenAPIType.STRING,
            min_length=1,
            max_length=128,
            description="Idempotency key within the project",
        ),
        "type": Schema(
            type=OpenAPIType.STRING,
            min_length=1,
            max_length=128,
            pattern=r"\S",
            description="Holds a character other than white space",
        ),
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


@dataclass
class IngestOperation(Operation):
    """Documents the body the handler reads itself (raw, so gzip and per-event errors work)."""

    def __post_init__(self) -> None:
        # Litestar passes request_body=None for a handler without `data`, so set it here.
        self.request_body = RequestBody(
            required=True,
            description="One event, or a batch of events. `Content-Encoding: gzip` is accepted.",
            content={"application/json": OpenAPIMediaType(schema=Schema(one_of=[_EVENT, _BATCH]))},
        )


def api_key(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("x-api-key") or bearer_token(request)


@post(
    "/v1/ingest",
    status_code=HTTP_202_ACCEPTED,
    tags=["ingest"],
    security=[{"ApiKey": []}, {"ApiKeyBearer": []}],
    summary="Send one event or a batch",
    operation_class=IngestOperation,
    responses=API_ERRORS,
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
