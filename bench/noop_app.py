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


def main() -> None:
    """Serve it as ``eventcore serve`` serves eventcore (same uvicorn settings)."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "bench.noop_app:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
