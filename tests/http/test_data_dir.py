"""The embedded profile's data directory is the owner's alone: 0700, and every file in it 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.support import ApiFactory


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common umask (022), under which a file created with default modes is 0644."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_something(make_api: ApiFactory, data_dir: Path) -> list[Path]:
    """Start the embedded profile in ``data_dir``, sign up and ingest; the files there while it
    runs (the SQLite file, its WAL and shared memory, the generated JWT secret)."""
    api = make_api(data_dir=data_dir)
    tenant = api.tenant()
    assert api.ingest(tenant, {"id": "e1", "type": "signup"}).status_code == 202
    files = sorted(data_dir.iterdir())
    names = {path.name for path in files}
    assert {"eventcore.sqlite3", "eventcore.sqlite3-wal", "jwt-secret"} <= names, names
    return files


def test_the_data_dir_and_every_file_in_it_are_private(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    """A data dir eventcore creates is 0700, and every file it writes there is 0600."""
    data_dir = tmp_path / "eventcore-data"

    files = write_something(make_api, data_dir)

    assert mode(data_dir) == 0o700
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}


def test_an_existing_data_dir_keeps_its_mode_and_gets_private_files(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    """In a directory that already exists (0755, the operator's), eventcore's files are 0600
    all the same, including a database file an older version left readable to all."""
    data_dir = tmp_path / "shared"
    data_dir.mkdir(mode=0o755)
    (data_dir / "eventcore.sqlite3").touch(mode=0o644)

    files = write_something(make_api, data_dir)

    assert mode(data_dir) == 0o755
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
