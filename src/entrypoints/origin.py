"""Where the request being served came from, for the audit log: set by the request middleware
(``observability``) for each request, read by the use cases through the RequestContext port."""

from __future__ import annotations

from contextvars import ContextVar

from eventcore.audit import RequestOrigin

REQUEST_ORIGIN: ContextVar[RequestOrigin | None] = ContextVar("request_origin", default=None)


class HttpRequestContext:
    """The RequestContext port, answered from the request being served (none outside one)."""

    def origin(self) -> RequestOrigin:
        return REQUEST_ORIGIN.get() or RequestOrigin()
