"""The ``eventcore`` command."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import NoReturn

import msgspec

import eventcore
from eventcore import defaults
from eventcore.entrypoints.settings import (
    ConfigurationError,
    Settings,
    load_settings,
    require_shared_secret,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"eventcore: {exc}", file=sys.stderr)
        return 2
    from eventcore.entrypoints.logs import configure_logging

    configure_logging(settings)
    try:
        result: int = args.run(settings, args)
    except ConfigurationError as exc:
        print(f"eventcore: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


class _Parser(argparse.ArgumentParser):
    """argparse, but a refused argument is one line (``eventcore: ...``), as a refused setting
    is: no usage block above it. ``--help`` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"eventcore: {message}\n")


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argument's type: an integer from ``low`` (to ``high``), refused in one line."""
    accepted = f"an integer from {low} to {high}" if high else f"an integer of at least {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {accepted} (got {text[:40]!r})")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eventcore", description="Multi-tenant event ingestion and analytics.")
    parser.add_argument("--version", action="version", version=f"eventcore {eventcore.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_integer(1, 65535), default=8000, help="port to listen on (default 8000)"
    )
    serve.add_argument("--workers", type=_integer(1), default=1, help="API processes (default 1)")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="consume the ingest queue (distributed profile)")
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(run=_migrate)

    dlq = commands.add_parser("dlq", help="inspect or re-queue dead-lettered batches")
    dlq_commands = dlq.add_subparsers(title="dlq commands", metavar="COMMAND", required=True)
    dlq_list = dlq_commands.add_parser("list", help="show dead-lettered batches (they stay there)")
    dlq_list.add_argument(
        "--limit",
        type=_integer(1),
        default=defaults.DEAD_LETTERS_LISTED,
        help=f"at most this many (default {defaults.DEAD_LETTERS_LISTED})",
    )
    dlq_list.add_argument("--json", action="store_true", help="one JSON object per line")
    dlq_list.set_defaults(run=_dlq_list)
    dlq_replay = dlq_commands.add_parser(
        "replay", help="move dead-lettered batches back to the queue"
    )
    dlq_replay.add_argument(
        "--limit", type=_integer(1), default=None, help="at most this many (default all)"
    )
    dlq_replay.set_defaults(run=_dlq_replay)

    rollup = commands.add_parser("rollup", help="maintain the count tables")
    rollup_commands = rollup.add_subparsers(
        title="rollup commands", metavar="COMMAND", required=True
    )
    rebuild = rollup_commands.add_parser(
        "rebuild", help="recompute the count tables from raw events"
    )
    rebuild.add_argument("--workspace", default=None, help="only this workspace id (default all)")
    rebuild.set_defaults(run=_rollup_rebuild)

    retention = commands.add_parser("retention", help="remove what is past its retention")
    retention_commands = retention.add_subparsers(
        title="retention commands", metavar="COMMAND", required=True
    )
    run = retention_commands.add_parser(
        "run",
        help="now, as every API process does each hour: the audit log's entries older than"
        " EVENTCORE_AUDIT_RETENTION_DAYS",
    )
    run.set_defaults(run=_retention_run)

    export = commands.add_parser(
        "export",
        help="write a project's stored events to stdout as NDJSON, oldest first",
        description=(
            "Each line one stored event as GET /v1/events shows it, in time order; read a page"
            " at a time, so memory stays bounded whatever the project holds."
        ),
    )
    export.add_argument("--workspace", required=True, help="the project's workspace id")
    export.add_argument("--project", required=True, help="the project id")
    export.add_argument(
        "--start", type=_time, default=None, help="RFC 3339 time, included (default: the first)"
    )
    export.add_argument(
        "--end", type=_time, default=None, help="RFC 3339 time, excluded (default: after the last)"
    )
    export.add_argument("--event-type", default=None, help="only events of this type")
    export.set_defaults(run=_export)
    return parser


def _time(text: str) -> datetime:
    try:
        moment = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"must be an RFC 3339 time with an offset, such as 2026-01-31T12:00:00Z (got {text[:40]!r})"
        )
    return moment


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import structlog
    import uvicorn

    log = structlog.get_logger("eventcore")
    require_shared_secret(settings)
    if checked := _run(_check_api(settings)):
        return checked
    if settings.uses_postgres:
        log.info("starting", profile="distributed" if settings.distributed else "postgres")
    else:
        log.info("starting", profile="embedded", database=str(settings.sqlite_path.resolve()))
    # uvicorn re-raises SIGTERM after its graceful shutdown, which would end the process with
    # status -15; a clean stop on SIGTERM should exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        "eventcore.entrypoints.http.app:serve_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        # httptools with bounds on the request line, the headers and the time to send them.
        http="eventcore.entrypoints.http.server:BoundedHttpToolsProtocol",
    )
    return 0


async def _check_api(settings: Settings) -> None:
    """Reach every server the API needs once, before uvicorn starts the API processes (each
    opens its own connections, on its own event loop): one that is down is then one clear line
    instead of a failed start-up in every process."""
    from eventcore.entrypoints.bootstrap import ApiContainer
    from eventcore.entrypoints.preflight import check

    container = ApiContainer(settings=settings)
    await check(container, container.readiness)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from eventcore.entrypoints.worker import run_worker

    # SIGTERM while starting (nothing consumed yet) is a clean stop too, status 0 rather than
    # death by signal; once consuming, the worker's own handler lets the group in flight finish.
    signal.signal(signal.SIGTERM, _stop_starting)
    return _run(run_worker(settings))


def _stop_starting(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from eventcore.entrypoints.commands import migrate

    return _run(migrate(settings))


def _dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    from eventcore.entrypoints.commands import dlq_list

    return _run(dlq_list(settings, limit=args.limit, as_json=args.json))


def _dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    from eventcore.entrypoints.commands import dlq_replay

    return _run(dlq_replay(settings, limit=args.limit))


def _rollup_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from eventcore.entrypoints.commands import rollup_rebuild

    return _run(rollup_rebuild(settings, workspace_id=args.workspace))


def _retention_run(settings: Settings, args: argparse.Namespace) -> int:
    from eventcore.entrypoints.commands import retention_run

    return _run(retention_run(settings))


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from eventcore.entrypoints.commands import export

    return _run(
        export(
            settings,
            workspace_id=args.workspace,
            project_id=args.project,
            start=args.start,
            end=args.end,
            event_type=args.event_type,
        )
    )


def _run(work: Coroutine[None, None, None]) -> int:
    """Run a command; a server that cannot be reached is a one-line error, not a traceback."""
    from eventcore.entrypoints.preflight import CannotStart, one_line
    from eventcore.errors import EventcoreError

    try:
        with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
            runner.run(work)
    except CannotStart as exc:
        print(f"eventcore: cannot start: {exc}", file=sys.stderr)
        return 1
    except EventcoreError as exc:
        print(f"eventcore: {one_line(exc.message)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"eventcore: cannot reach a server: {one_line(str(exc))}", file=sys.stderr)
        return 1
    return 0


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (a dependency except on Windows), which
    roughly halves the loop's own cost per message; else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


if __name__ == "__main__":
    sys.exit(main())
