"""The HTTP API under test: the production app on the embedded profile in a temporary data dir.

Every test builds the app the way `eventcore serve` does (`load_settings` -> `build_container` ->
`create_app`) with the SQLite store in ``tmp_path``; only the password hasher is swapped for a fast
fake, so that argon2 does not dominate the suite. The clients refuse any 500 answer on the spot.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from eventcore.adapters.memory import FakePasswordHasher
from eventcore.entrypoints.container import Container, build_container
from eventcore.entrypoints.http.app import create_app
from eventcore.entrypoints.settings import load_settings
from tests.http.support import Api, ApiFactory, Tenant, refuse_server_errors


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[ApiFactory]:
    """Start an app on the embedded profile, stopped at the end of the test.

    ``env`` adds EVENTCORE_* settings; ``configure`` may override providers of the container
    before it starts; ``data_dir`` reuses the data of an app stopped earlier.
    """
    stack = ExitStack()
    started = itertools.count(1)

    def start(
        env: dict[str, str] | None = None,
        configure: Callable[[Container], None] | None = None,
        data_dir: Path | None = None,
    ) -> Api:
        data_dir = data_dir or tmp_path / f"eventcore-data-{next(started)}"
        settings = load_settings({"EVENTCORE_DATA_DIR": str(data_dir), **(env or {})})
        container = build_container(settings)
        container.hasher.override(providers.Object(FakePasswordHasher()))
        if configure is not None:
            configure(container)
        client: TestClient[Any] = TestClient(create_app(settings, container=container))
        client.event_hooks["response"].append(refuse_server_errors)
        client.__enter__()
        api = Api(client, settings, container, data_dir)
        stack.callback(api.stop)
        return api

    with stack:
        yield start


@pytest.fixture
def api(make_api: ApiFactory) -> Api:
    """The app with production settings in a fresh data dir."""
    return make_api()


@pytest.fixture
def tenant(api: Api) -> Tenant:
    return api.tenant()
