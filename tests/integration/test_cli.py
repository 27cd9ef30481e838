"""The `eventcore` command's start-up errors: one clear line, never a traceback."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.processes import free_port, run_command

PASSWORD = "correct horse battery staple"

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


# (variable, a value it refuses, what the message must say it accepts)
_AMQP_ACCEPTS = "empty, or amqp:// or amqps:// URLs separated by commas (a cluster's nodes)"
REFUSED_SETTINGS = [
    ("EVENTCORE_LOG_LEVEL", "verbose", "one of debug, error, info, warning"),
    ("EVENTCORE_LOG_FORMAT", "xml", "one of auto, console, json"),
    ("EVENTCORE_TOKEN_LIFETIME_SECONDS", "0", "an integer from 1 to 31,536,000"),
    ("EVENTCORE_TOKEN_LIFETIME_SECONDS", "-5", "an integer from 1 to 31,536,000"),
    ("EVENTCORE_TOKEN_LIFETIME_SECONDS", "1e99", "an integer from 1 to 31,536,000"),
    ("EVENTCORE_TOKEN_LIFETIME_SECONDS", "hour", "an integer from 1 to 31,536,000"),
    ("EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND", "-1", "a number from 0 to 1,000,000,000"),
    ("EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND", "inf", "a number from 0 to 1,000,000,000"),
    ("EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND", "nan", "a number from 0 to 1,000,000,000"),
    ("EVENTCORE_RATE_LIMIT_BURST", "-1", "a number from 0 to 1,000,000,000"),
    ("EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE", "-1", "a number from 0 to 1,000,000,000"),
    ("EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS", "x", "a number from 0"),
    ("EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT", "-1", "a number from 0 to 1,000,000,000"),
    ("EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS", "ten", "a number from 0 to 1,000,000,000"),
    ("EVENTCORE_PASSWORD_HASH_CONCURRENCY", "0", "an integer from 1 to 64"),
    ("EVENTCORE_PASSWORD_HASH_WAITING", "-1", "an integer from 0 to 10,000"),
    ("EVENTCORE_MAX_BATCH_EVENTS", "0", "an integer of at least 1"),
    ("EVENTCORE_MAX_EVENT_BYTES", "-1", "an integer of at least 1"),
    ("EVENTCORE_MAX_REQUEST_BYTES", "1.5", "an integer of at least 1"),
    ("EVENTCORE_ANALYTICS_CACHE_SECONDS", "-1", "a number from 0 to 86,400"),
    ("EVENTCORE_DELETION_SWEEP_SECONDS", "0", "a number from 0.1 to 86,400"),
    ("EVENTCORE_AUDIT_RETENTION_DAYS", "-1", "an integer from 0 to 36,500"),
    ("EVENTCORE_QUEUE_NAME", "", "1 to 200 characters"),
    ("EVENTCORE_QUEUE_NAME", "q" * 201, "1 to 200 characters"),
    ("EVENTCORE_QUEUE_MAX_LENGTH", "0", "an integer of at least 1"),
    ("EVENTCORE_QUEUE_RETRY_DELAYS", "1,0", "positive seconds separated by commas"),
    ("EVENTCORE_QUEUE_RETRY_DELAYS", "1,inf", "positive seconds separated by commas"),
    ("EVENTCORE_REDIS_PREFIX", "a{b}", "non-empty, without { or }"),
    ("EVENTCORE_LIVE_STREAMS_PER_WORKSPACE", "0", "an integer from 1 to 10,000"),
    ("EVENTCORE_LIVE_BUFFER_EVENTS", "0", "an integer from 1 to 1,000,000"),
    ("EVENTCORE_WORKER_BATCH_EVENTS", "0", "an integer of at least 1"),
    ("EVENTCORE_WORKER_BATCH_WAIT_MS", "-1", "an integer from 0 to 60,000"),
    ("EVENTCORE_QUEUE_REPLICAS", "-1", "an integer from 0 to 255"),
    ("EVENTCORE_QUEUE_PARTITIONS", "0", "an integer from 1 to 64"),
    ("EVENTCORE_WORKER_PREFETCH", "70000", "an integer from 1 to 65,535"),
    ("EVENTCORE_WORKER_METRICS_PORT", "65536", "an integer from 0 to 65,535"),
    ("EVENTCORE_WORKER_METRICS_HOST", "", "non-empty"),
    ("EVENTCORE_DATA_DIR", "", "non-empty"),
    (
        "EVENTCORE_DATABASE_URL",
        "mysql://db",
        "empty, postgresql://…, postgres://… or sqlite:///path",
    ),
    (
        "EVENTCORE_DATABASE_READ_URL",
        "mysql://replica",
        "empty, or postgresql://… or postgres://… with a PostgreSQL EVENTCORE_DATABASE_URL",
    ),
    ("EVENTCORE_DATABASE_READ_WAIT_SECONDS", "-1", "a number from 0 to 60"),
    (
        "EVENTCORE_REDIS_URL",
        "http://redis:6379",
        "empty, a redis://, rediss:// or unix:// URL, or a Redis Cluster's redis+cluster://",
    ),
    (
        "EVENTCORE_REDIS_URL",
        "redis+cluster://node-1:6379,node-2:port",
        "empty, a redis://, rediss:// or unix:// URL, or a Redis Cluster's redis+cluster://",
    ),
    ("EVENTCORE_AMQP_URL", "rabbit:5672", _AMQP_ACCEPTS),
    ("EVENTCORE_AMQP_URL", "amqp://rabbit-1:5672/,rabbit-2:5672", _AMQP_ACCEPTS),
    ("EVENTCORE_AMQP_URL", "amqp://rabbit-1:5672/,", _AMQP_ACCEPTS),
    ("EVENTCORE_JWT_SECRET", "short", "empty, or at least 32 characters"),
    ("EVENTCORE_OTLP_ENDPOINT", "collector:4318", "empty, or an http:// or https:// URL"),
    ("EVENTCORE_FAILPOINTS", "nowhere:1", "empty, or step:N separated by commas"),
]


# Their values may hold a password: a message never repeats them.
SECRET_BEARING = {
    "EVENTCORE_JWT_SECRET",
    "EVENTCORE_DATABASE_URL",
    "EVENTCORE_DATABASE_READ_URL",
    "EVENTCORE_REDIS_URL",
    "EVENTCORE_AMQP_URL",
}


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    REFUSED_SETTINGS,
    ids=[f"{variable}={value[:12]}" for variable, value, _ in REFUSED_SETTINGS],
)
def test_a_refused_setting_is_one_line_naming_it_and_what_it_accepts(
    tmp_path: Path, variable: str, value: str, accepts: str
) -> None:
    """Every setting is checked at start-up: a value it cannot take stops the command with one
    line naming the variable and the values it accepts, exit status 2, no traceback."""
    result = run_command(["migrate"], workdir=tmp_path, settings={variable: value})
    assert result.returncode == 2, result.stderr
    assert_one_clear_line(result.stderr, f"{variable} must be {accepts}")
    if variable in SECRET_BEARING:
        assert value not in result.stderr
    else:
        assert f"(got {value[:40]!r})" in result.stderr
    assert not (tmp_path / "eventcore-data").exists()


def test_every_setting_has_a_refused_value_tested() -> None:
    """REFUSED_SETTINGS covers each setting that can be wrong (all but the free-form ones)."""
    import msgspec

    from eventcore.entrypoints.settings import Settings

    tested = {variable for variable, _, _ in REFUSED_SETTINGS}
    every = {f"EVENTCORE_{field.name.upper()}" for field in msgspec.structs.fields(Settings)}
    assert every - tested == set()


COMMANDS = [
    ["serve"],
    ["worker"],
    ["migrate"],
    ["dlq", "list"],
    ["dlq", "replay"],
    ["rollup", "rebuild"],
    ["export", "--workspace", "ws", "--project", "prj"],
    ["retention", "run"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_checks_the_settings(tmp_path: Path, command: list[str]) -> None:
    """Every command refuses a bad setting the same way, before it does anything."""
    result = run_command(
        command, workdir=tmp_path, settings={"EVENTCORE_TOKEN_LIFETIME_SECONDS": "0"}
    )
    assert result.returncode == 2, result.stderr
    assert_one_clear_line(
        result.stderr, "EVENTCORE_TOKEN_LIFETIME_SECONDS must be an integer from 1 to 31,536,000"
    )


@pytest.mark.parametrize("port", ["0", "-1", "65536", "http", ""])
def test_serve_refuses_a_port_outside_1_to_65535(tmp_path: Path, port: str) -> None:
    """`serve --port` outside 1-65535 (or not a number) is one line, exit status 2."""
    result = run_command(["serve", "--port", port], workdir=tmp_path)
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, "--port", "must be an integer from 1 to 65535")
    assert not (tmp_path / "eventcore-data").exists()


def unreachable_settings(server: str) -> dict[str, str]:
    """Settings where ``server`` is a closed port on this machine and the others answer."""
    closed = free_port()
    settings = {
        "EVENTCORE_DATABASE_URL": "postgresql://postgres@127.0.0.1/postgres",
        "EVENTCORE_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
        **SECRET,
    }
    if server == "database":
        settings["EVENTCORE_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{closed}/nothing"
    else:
        settings["EVENTCORE_AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:{closed}/"
    return settings


# (the command, the server it cannot reach). The worker is not run with a reachable broker: it
# would consume the shared queue.
UNREACHABLE = [
    (["serve", "--port", "1"], "database"),
    (["worker"], "database"),
    (["worker"], "queue"),
    (["migrate"], "database"),
    (["rollup", "rebuild"], "database"),
    (["dlq", "list"], "queue"),
    (["dlq", "replay"], "queue"),
]


@pytest.mark.parametrize(
    ("command", "server"),
    UNREACHABLE,
    ids=[f"{' '.join(command[:2])}-{server}" for command, server in UNREACHABLE],
)
def test_every_command_says_in_one_line_that_a_server_cannot_be_reached(
    tmp_path: Path, command: list[str], server: str
) -> None:
    """A server a command needs that does not answer stops it as it stops `serve`: exit
    status 1 and one line, `cannot start`, and the driver's reason."""
    result = run_command(command, workdir=tmp_path, settings=unreachable_settings(server))
    assert result.returncode == 1, result.stderr
    assert_one_clear_line(result.stderr, "eventcore: cannot start: ", "Connection refused")


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


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["rollup", "rebuild"]])
def test_a_database_migrated_by_an_older_eventcore_stops_with_run_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A schema older than the code stops the command at start-up with one line saying to run
    `eventcore migrate`, instead of a server answering 500s on the tables it lacks."""
    from tests.support.postgres import fresh_database, run_coroutine

    from eventcore.adapters.postgres import migrate, schema

    every = schema.load_migrations()
    with fresh_database(migrated=False) as dsn:
        monkeypatch.setattr(schema, "load_migrations", lambda: every[:8])
        run_coroutine(migrate(dsn))
        monkeypatch.undo()
        result = run_command(
            command, workdir=tmp_path, settings={"EVENTCORE_DATABASE_URL": dsn, **SECRET}
        )
    assert result.returncode == 1, result.stderr
    assert_one_clear_line(result.stderr, "cannot start", "run `eventcore migrate`")


def test_retention_run_says_what_it_removed(tmp_path: Path) -> None:
    """`eventcore retention run` expires the audit log now and says so; at 0 days, nothing."""
    result = run_command(["retention", "run"], workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "removed 0 audit log entries older than 365 days" in result.stdout
    forever = run_command(
        ["retention", "run"], workdir=tmp_path, settings={"EVENTCORE_AUDIT_RETENTION_DAYS": "0"}
    )
    assert forever.returncode == 0, forever.stderr
    assert "kept for ever" in forever.stdout
    assert "expired 0 events of 0 projects" in forever.stdout


def test_retention_run_expires_the_events_past_a_projects_retention(tmp_path: Path) -> None:
    """Events stored before their project was given a retention are expired by `eventcore
    retention run` at once, with the counts of what remains exact, and the run says how many
    events of how many projects went."""
    from eventcore import Granularity, ProjectRef
    from eventcore.entrypoints.embedded import open_embedded

    data_dir = tmp_path / "eventcore-data"
    now = datetime.now(UTC)

    async def seed() -> tuple[str, str, str]:
        async with open_embedded(data_dir) as ec:
            token = (await ec.accounts.signup("me@example.com", PASSWORD, "Acme")).access_token
            me = ec.accounts.authenticate(token)
            shop = await ec.accounts.create_project(me, "shop")
            events = [
                {
                    "id": f"old{n}",
                    "type": "buy",
                    "timestamp": (now - timedelta(days=40)).isoformat(),
                }
                for n in range(3)
            ]
            events.append({"id": "new", "type": "buy"})
            await ec.ingestor.submit(ProjectRef(me.workspace_id, shop.id), events)
            await ec.accounts.set_retention(me, shop.id, 30)
            return token, me.workspace_id, shop.id

    async def left(token: str, project_id: str) -> tuple[list[str], int]:
        async with open_embedded(data_dir) as ec:
            me = ec.accounts.authenticate(token)
            listed = await ec.analytics.list_events(me, project_id, limit=100)
            counts = await ec.analytics.counts(
                me, project_id, granularity=Granularity.DAY, start=now - timedelta(days=60)
            )
            return [e.id for e in listed.events], counts.total

    token, _, project_id = asyncio.run(seed())
    settings = {"EVENTCORE_DATA_DIR": str(data_dir)}

    result = run_command(["retention", "run"], workdir=tmp_path, settings=settings)

    assert result.returncode == 0, result.stderr
    assert "expired 3 events of 1 project past their project's retention" in result.stdout
    assert asyncio.run(left(token, project_id)) == (["new"], 1)
    again = run_command(["retention", "run"], workdir=tmp_path, settings=settings)
    assert "expired 0 events of 0 projects" in again.stdout
