"""The bare HTTP limit: a Litestar app that reads the body and answers at once, on the same stack.

``uvicorn --factory bench.noop_app:create_app`` serves it with the settings ``eventcore serve``
uses (see ``bench.run``), so the only difference to eventcore is what happens inside the handler.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, get, post
from litestar.status_codes import HTTP_202_ACCEPTED

_RECEIPT = {"accepted": 1, "duplicates": 0, "rejected": []}


@post("/v1/ingest", status_code=HTTP_202_ACCEPTED)
async def ingest(request: Request[Any, Any, Any]) -> dict[str, Any]:
    await request.body()
    return _RECEIPT


@get("/v1/analytics/counts")
async def counts() -> dict[str, Any]:
    return {"total": 0, "series": []}


@get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "live"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[ingest, counts, live], debug=False, logging_config=None)
