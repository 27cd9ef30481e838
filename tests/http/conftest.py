"""The HTTP API under test: the production app on the embedded profile in a temporary data dir.

Every test builds the app through the production composition root (``tests.http.support``:
settings, ``ApiContainer``, ``create_app``) with the SQLite store in ``tmp_path``; only the
password hasher is swapped for a fast fake. The clients refuse any 500 answer on the spot.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.http.support import Api, ApiFactory, Configure, Tenant, profile_settings, start_api


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
        configure: Configure | None = None,
        data_dir: Path | None = None,
    ) -> Api:
        api = start_api(data_dir or tmp_path / f"eventcore-data-{next(started)}", env, configure)
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


@pytest.fixture(params=["embedded", pytest.param("shared", marks=pytest.mark.integration)])
def either(request: pytest.FixtureRequest, make_api: ApiFactory) -> Iterator[Api]:
    """The app on either profile: both must answer the same."""
    with profile_settings(request.param) as env:
        api = make_api(env=env)
        yield api
        api.stop()
