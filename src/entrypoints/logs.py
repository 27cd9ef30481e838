"""Structured logging: JSON lines in production, readable lines in a terminal.

Every line says which request or batch it belongs to: the HTTP middleware binds ``request_id``
(and the dependency that resolves the caller binds ``workspace_id``), the worker binds
``batch_id`` and ``workspace_ids`` per group, all as structlog context variables, and
:func:`add_trace_ids` adds the OpenTelemetry ``trace_id`` and ``span_id`` of the current span.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import msgspec
import structlog
from opentelemetry import trace

from eventcore.entrypoints.settings import Settings


def add_trace_ids(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """The current span's ids, so a log line leads to its trace (and the API's to the worker's)."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event.setdefault("trace_id", trace.format_trace_id(span_context.trace_id))
        event.setdefault("span_id", trace.format_span_id(span_context.span_id))
    return event


class _LineLogger(structlog.WriteLogger):
    """What eventcore's own loggers write through: one rendered line per call, straight to the
    stream (no standard-library record), keeping the logger's name for ``add_logger_name``."""

    def __init__(self, stream: TextIO, name: str) -> None:
        super().__init__(stream)
        self.name = name


def _dumps(event: object, **_: object) -> str:
    # msgspec renders a line several times faster than the json module; what it cannot encode
    # (an exception, a path) is written as its repr.
    return msgspec.json.encode(event, enc_hook=repr).decode()


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """One renderer for eventcore's loggers (structlog, written straight to ``stream``) and for
    the standard library's (uvicorn's, psycopg's: through a handler), to ``stream`` (default:
    standard error). Lines below ``EVENTCORE_LOG_LEVEL`` cost a method call and nothing else."""
    out = stream or sys.stderr
    terminal = out.isatty()
    json_output = settings.log_format == "json" or (settings.log_format == "auto" and not terminal)
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if json_output
        else structlog.dev.ConsoleRenderer(colors=terminal)
    )
    tail: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, renderer] if json_output else [renderer]
    )

    def line_logger(*args: object) -> _LineLogger:
        return _LineLogger(out, str(args[0]) if args else "eventcore")

    structlog.configure(
        processors=[*shared, *tail],
        logger_factory=line_logger,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # eventcore writes its own access line (entrypoints.http.observability). uvicorn writes its
    # own whenever its access logger has a handler anywhere up the tree, whatever it was told.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
