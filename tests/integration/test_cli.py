"""The `eventcore` command's start-up errors: one clear line, never a traceback."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from tests.support.processes import free_port, run_command

pytestmark = pytest.mark.integration

SECRET = {"EVENTCORE_JWT_SECRET": secrets.token_urlsafe(40)}


def is_log_record(line: str) -> bool:
    """A structured log record (one JSON object a line): the log stream, which shares stderr."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and {"event", "level"} <= set(record)


def assert_one_clear_line(stderr: str, *expected: str) -> None:
    """Besides log records, stderr is exactly one non-empty line, `eventcore: ...`, naming each of
    ``expected``, and nothing on it is a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not is_log_record(line)]
    assert len(lines) == 1, f"expected one line of message, got {len(lines)}: {stderr!r}"
    (line,) = lines
    assert line.startswith("eventcore: "), stderr
    for text in expected:
        assert text in line, stderr


def test_version(tmp_path: Path) -> None:
    """`eventcore --version` prints the package version."""
    result = run_command(["--version"], workdir=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("eventcore ")


def test_serve_on_postgres_without_a_jwt_secret_stops_with_a_message(tmp_path: Path) -> None:
    """A missing secret in the distributed profile stops start-up and names the variable."""
    result = run_command(
        ["serve"],
        workdir=tmp_path,
        settings={"EVENTCORE_DATABASE_URL": "postgresql://postgres@127.0.0.1/postgres"},
    )
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, "EVENTCORE_JWT_SECRET")


def test_serve_with_an_unreachable_database_stops_with_a_message(tmp_path: Path) -> None:
    """A database that does not answer stops `serve` with the reason."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    result = run_command(
        ["serve", "--port", str(free_port())],
        workdir=tmp_path,
        settings={"EVENTCORE_DATABASE_URL": url, **SECRET},
    )
    assert result.returncode == 1
    assert_one_clear_line(result.stderr, "cannot start", "Connection refused")


def test_worker_with_an_unreachable_broker_stops_with_a_message(tmp_path: Path) -> None:
    """A broker that does not answer stops `worker` with the reason."""
    result = run_command(
        ["worker"],
        workdir=tmp_path,
        settings={
            "EVENTCORE_DATABASE_URL": "postgresql://postgres@127.0.0.1/postgres",
            "EVENTCORE_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        },
    )
    assert result.returncode == 1
    assert_one_clear_line(result.stderr, "cannot start")


def test_worker_without_a_broker_explains_the_embedded_profile(tmp_path: Path) -> None:
    """`worker` on the embedded profile says why it is not needed."""
    result = run_command(["worker"], workdir=tmp_path)
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, "EVENTCORE_AMQP_URL")


def test_bad_setting_names_the_variable(tmp_path: Path) -> None:
    """A value of the wrong type is refused with the variable's name."""
    result = run_command(
        ["serve"], workdir=tmp_path, settings={"EVENTCORE_RATE_LIMIT_BURST": "lots"}
    )
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, "EVENTCORE_RATE_LIMIT_BURST")


def test_migrate_on_the_embedded_profile_creates_the_store(tmp_path: Path) -> None:
    """`eventcore migrate` without configuration prepares the SQLite file."""
    result = run_command(["migrate"], workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "eventcore-data" / "eventcore.sqlite3").is_file()


def test_rollup_rebuild_on_the_embedded_profile(tmp_path: Path) -> None:
    """`eventcore rollup rebuild` recounts (nothing, on a new store) and says so."""
    result = run_command(["rollup", "rebuild"], workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "recounted 0 events" in result.stdout


def test_rollup_rebuild_of_one_workspace_on_the_embedded_profile(tmp_path: Path) -> None:
    """`eventcore rollup rebuild --workspace ID` recounts that workspace alone and says so."""
    result = run_command(["rollup", "rebuild", "--workspace", "ws-unknown"], workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "recounted 0 events for workspace ws-unknown" in result.stdout
