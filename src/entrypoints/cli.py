"""The ``eventcore`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import eventcore
from entrypoints.settings import ConfigurationError, Settings, load_settings


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
    from entrypoints.logs import configure_logging

    configure_logging(settings)
    try:
        result: int = args.run(settings, args)
    except ConfigurationError as exc:
        print(f"eventcore: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventcore", description="Multi-tenant event ingestion and analytics."
    )
    parser.add_argument("--version", action="version", version=f"eventcore {eventcore.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    serve.set_defaults(run=_serve)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import structlog
    import uvicorn

    log = structlog.get_logger("eventcore")
    if args.workers < 1:
        raise ConfigurationError("--workers must be at least 1.")
    if settings.uses_postgres:
        log.info("starting", profile="distributed" if settings.distributed else "postgres")
    else:
        log.info("starting", profile="embedded", database=str(settings.sqlite_path.resolve()))
    uvicorn.run(
        "entrypoints.http.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
