"""Shared set-up for the bad-input suites: the production app on the embedded profile, in a tmp dir.

The schemathesis run over the whole OpenAPI document (marked ``fuzz``, minutes long, needing the
``fuzz`` extra) is collected only when the marker expression names it (``pytest -m fuzz``, as
``nox -s fuzz`` does); the quick hypothesis suites beside it are unmarked and run with everything
else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from eventcore.adapters.memory import FakePasswordHasher
from eventcore.entrypoints.container import Container, build_container
from eventcore.entrypoints.http.app import create_app
from eventcore.entrypoints.settings import Settings, load_settings
from tests.http.support import Api, refuse_server_errors

# Modules that only the `fuzz` session runs (they import schemathesis, from the `fuzz` extra).
FUZZ_ONLY = {"test_openapi_conformance.py"}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the long ``fuzz`` modules out unless ``-m`` asks for them by name."""
    if collection_path.name in FUZZ_ONLY:
        return not re.search(r"\bfuzz\b", config.getoption("markexpr") or "")
    return None


def embedded_app(
    data_dir: Path, env: dict[str, str] | None = None
) -> tuple[Litestar, Settings, Container]:
    """The app `eventcore serve` builds, on ``data_dir``, with a fast fake password hasher."""
    settings = load_settings({"EVENTCORE_DATA_DIR": str(data_dir), **(env or {})})
    container = build_container(settings)
    container.hasher.override(providers.Object(FakePasswordHasher()))
    return create_app(settings, container=container), settings, container


def start_api(data_dir: Path, env: dict[str, str] | None = None) -> Api:
    """A started app and a client that refuses any 500 answer on the spot."""
    app, settings, container = embedded_app(data_dir, env)
    client: TestClient[Any] = TestClient(app)
    client.event_hooks["response"].append(refuse_server_errors)
    client.__enter__()
    return Api(client, settings, container, data_dir)


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Start apps on fresh data dirs; every one is stopped at the end of the test."""
    started: list[Api] = []

    def start(env: dict[str, str] | None = None) -> Api:
        api = start_api(tmp_path / f"eventcore-data-{len(started) + 1}", env)
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()
