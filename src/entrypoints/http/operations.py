"""Routes for operators: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

import structlog
from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.plugins.prometheus import PrometheusController
from litestar.types import ControllerRouterHandler
from prometheus_client import CONTENT_TYPE_LATEST

from eventcore.entrypoints.bootstrap import Check, Readiness
from eventcore.entrypoints.http.errors import EDGE_ERRORS
from eventcore.entrypoints.http.metrics import refresh_queue_gauges
from eventcore.entrypoints.http.schemas import Health

CHECK_TIMEOUT_SECONDS = 2.0

log = structlog.get_logger("eventcore.http")


@get(
    "/health/live",
    tags=["operations"],
    summary="200 while the process runs",
    responses=EDGE_ERRORS,
    sync_to_thread=False,
)
def live() -> Health:
    return Health("ok")


@get(
    "/health/ready",
    tags=["operations"],
    summary="200 when every dependency answers; 503 naming the one that is down",
    responses={
        **EDGE_ERRORS,
        503: ResponseSpec(
            data_container=Health, description="A needed dependency is down. Codes: `unavailable`."
        ),
    },
)
async def ready(state: State) -> Response[Health]:
    checks: Readiness = state.checks
    results = await asyncio.gather(*(_run(name, probe.ping) for name, probe in checks.items()))
    report = dict(zip(checks, results, strict=True))
    critical_down = [
        name for name, probe in checks.items() if probe.critical and report[name] != "ok"
    ]
    degraded = any(value != "ok" for value in report.values())
    if critical_down:
        error = {"code": "unavailable", "message": f"Down: {', '.join(critical_down)}."}
        return Response(
            Health("unavailable", report, error), status_code=503, headers={"Retry-After": "1"}
        )
    return Response(Health("degraded" if degraded else "ok", report), status_code=200)


async def _run(name: str, check: Check) -> str:
    """``ok`` or ``down``: the route is anonymous, so why (and where the server is) goes to the
    log, not to the caller."""
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("health.dependency_down", dependency=name, error=f"{type(exc).__name__}: {exc}")
        return "down"
    return "ok"


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = True
    tags = ["operations"]

    # Re-declared only so that the OpenAPI document says what it serves: Prometheus text.
    @get(
        media_type=CONTENT_TYPE_LATEST,
        summary="Prometheus metrics (text exposition format)",
        responses=EDGE_ERRORS,
    )
    async def get(self, state: State) -> Response[bytes]:
        # The queue's length is read from RabbitMQ now, when a scrape asks for it.
        await refresh_queue_gauges(state.get("queue_lengths"))
        metrics: Response[bytes] = await PrometheusController.get.fn(self)
        return metrics


ROUTES: list[ControllerRouterHandler] = [live, ready, MetricsController]
