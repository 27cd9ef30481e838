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

import pytest

from tests.http.support import Api, embedded_app, start_api

__all__ = ["embedded_app", "start_api"]

# Modules that only the `fuzz` session runs (they import schemathesis, from the `fuzz` extra).
FUZZ_ONLY = {"test_openapi_conformance.py"}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the long ``fuzz`` modules out unless ``-m`` asks for them by name."""
    if collection_path.name in FUZZ_ONLY:
        return not re.search(r"\bfuzz\b", config.getoption("markexpr") or "")
    return None


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


# The socket suite runs a real `eventcore serve` for most of a minute: only when -m
# names `fuzz` too.
FUZZ_ONLY.add("test_hostile_sockets.py")
