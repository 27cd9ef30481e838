"""The Litestar application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components

import eventcore
from eventcore.defaults import RETENTION_SWEEP_SECONDS
from eventcore.entrypoints.bootstrap import (
    ApiContainer,
    close_resources,
    open_resources,
    resolve,
)
from eventcore.entrypoints.http import (
    accounts,
    analytics,
    audience,
    audit,
    console,
    cors,
    deletions,
    docs,
    ingest,
    live,
    operations,
    schedules,
    segment,
)
from eventcore.entrypoints.http.deps import DEPENDENCIES, refuse_unusable_parameters
from eventcore.entrypoints.http.errors import EXCEPTION_HANDLERS
from eventcore.entrypoints.http.observability import observe_requests
from eventcore.entrypoints.http.openapi import SECURITY_SCHEMES, complete_document
from eventcore.entrypoints.settings import Settings, load_settings, require_shared_secret
from eventcore.entrypoints.telemetry import flush_spans, setup_tracing


def create_app(
    settings: Settings | None = None, *, container: ApiContainer | None = None
) -> Litestar:
    """The HTTP API. Nothing connects until the app starts; everything closes when it stops.

    ``container`` is the composition root to serve from (tests pass one with fakes swapped in);
    by default, the production one for ``settings``.
    """
    settings = settings or load_settings()
    require_shared_secret(settings)
    root = container or ApiContainer(settings=settings)
    setup_tracing(settings, service="eventcore-api")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await open_resources(root)
        try:
            app.state.platform = await resolve(root.platform)
            app.state.checks = await resolve(root.readiness)
            app.state.queue_lengths = await resolve(root.queue_lengths)
            scheduled = schedules.start(
                app.state.platform,
                deletions=settings.deletion_sweep_seconds,
                retention=RETENTION_SWEEP_SECONDS,
            )
            try:
                yield
            finally:
                for task in scheduled:
                    task.cancel()
                await asyncio.gather(*scheduled, return_exceptions=True)
        finally:
            await close_resources(root)
            flush_spans()

    app = Litestar(
        route_handlers=[
            *accounts.ROUTES,
            *ingest.ROUTES,
            *analytics.ROUTES,
            *live.ROUTES,
            *audience.ROUTES,
            *audit.ROUTES,
            *deletions.ROUTES,
            *operations.ROUTES,
            *segment.ROUTES,
            *docs.ROUTES,
            *console.ROUTES,
        ],
        dependencies=DEPENDENCIES,
        before_request=refuse_unusable_parameters,
        exception_handlers={**EXCEPTION_HANDLERS, **console.EXCEPTION_HANDLERS},
        lifespan=[lifespan],
        request_max_body_size=settings.max_request_bytes,
        openapi_config=OpenAPIConfig(
            title="eventcore",
            version=eventcore.__version__,
            description="Multi-tenant event ingestion and analytics.",
            path=docs.PATH,
            render_plugins=docs.RENDER_PLUGINS,
            components=Components(security_schemes=SECURITY_SCHEMES),
        ),
        state=_initial_state(),
        debug=False,
        # Logging is eventcore's (eventcore.entrypoints.logs): Litestar's default config would replace the
        # root handler and turn the JSON lines back into plain text.
        logging_config=None,
    )
    # Around the whole app rather than in `middleware=`, which only runs for matched routes:
    # a 404 or 405 gets its request id, trace and access-log line too. It also counts the
    # request metrics (one wrapper for all of it: Litestar's Prometheus middleware would build a
    # Request object and its labels a second time).
    app.asgi_handler = observe_requests(cors.cross_origin(app.asgi_handler))
    complete_document(app)
    return app


def serve_app() -> Litestar:
    """The app as each ``eventcore serve`` process runs it (the server's factory): settings from
    the environment, and this process's logging set up first (with ``--workers N`` the server
    starts each process afresh, without the command's own set-up)."""
    from eventcore.entrypoints.logs import configure_logging

    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


def _initial_state() -> State:
    return State({"checks": {}})
