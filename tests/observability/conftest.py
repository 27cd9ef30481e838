"""Fixtures of the observability tests: the app in process, its log lines, its spans, a stack.

``logs`` configures eventcore's logging (JSON) into a buffer the test reads and puts the
process's logging back afterwards; ``spans`` attaches an in-memory exporter to the process's
tracer provider (which then records spans) for the test's duration.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.faults.harness import Stack, distributed_stack
from tests.http.support import Api, ApiFactory, Configure, start_api

from eventcore.defaults import QUEUE_MAX_LENGTH
from eventcore.entrypoints.logs import configure_logging
from eventcore.entrypoints.settings import load_settings
from eventcore.entrypoints.telemetry import add_span_processor, remove_span_processor, setup_tracing


class LogLines:
    """The JSON lines eventcore logged during the test, parsed."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._buffer = buffer

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._buffer.getvalue().splitlines() if line.strip()]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line.get("event") == event]

    def text(self) -> str:
        return self._buffer.getvalue()


@pytest.fixture
def logs() -> Iterator[LogLines]:
    """eventcore's production logging (JSON, info level), written to a buffer for the test."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging(load_settings({"EVENTCORE_LOG_FORMAT": "json"}), buffer)
    # Loggers must not keep this configuration once the test has put the defaults back.
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield LogLines(buffer)
    finally:
        structlog.reset_defaults()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process ends during the test, kept in memory."""
    setup_tracing(load_settings({}), service="eventcore-test")
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    add_span_processor(processor)
    try:
        yield exporter
    finally:
        remove_span_processor(processor)
        exporter.clear()


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[ApiFactory]:
    """Start the production app in process (embedded profile unless ``env`` says otherwise),
    with a fast password hasher; stopped at the end of the test."""
    stack = ExitStack()
    started = itertools.count(1)

    def start(
        env: dict[str, str] | None = None,
        configure: Configure | None = None,
        refuse_500: bool = True,
    ) -> Api:
        data_dir = tmp_path / f"eventcore-data-{next(started)}"
        api = start_api(data_dir, env, configure, refuse_500=refuse_500)
        stack.callback(api.stop)
        return api

    with stack:
        yield start


@pytest.fixture
def api(make_api: ApiFactory) -> Api:
    return make_api()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The distributed profile as the fault tests build it (``tests.faults.harness``): a fresh
    database migrated by ``eventcore migrate``, queue names and a Redis prefix of its own, all
    removed afterwards; ``stack.settings`` is what the API here and ``eventcore worker``
    processes get.

    The queues' maximum length is the default, which test helpers declaring the topology
    (``publish_raw``) use too.
    """
    with distributed_stack(tmp_path, queue_max_length=str(QUEUE_MAX_LENGTH)) as opened:
        yield opened


async def wait_until(check: Callable[[], bool], *, within: float = 30.0, what: str) -> None:
    """Poll ``check`` (generously bounded) until it holds; fail naming ``what`` otherwise."""
    held = check()
    try:
        async with asyncio.timeout(within):
            while not held:
                await asyncio.sleep(0.05)
                held = check()
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {within} s")
