"""What the deploy/ tests check files against: eventcore's CLI, settings, routes and metrics."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from eventcore.entrypoints.cli import _parser
from eventcore.entrypoints.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
README = (ROOT / "README.md").read_text()

# Ports eventcore listens on in the deploy files: the API's and a worker's metrics.
API_PORT = 8000
WORKER_METRICS_PORT = 9464

# Variables of other software that the deploy files set, each documented by that software.
DOCUMENTED_ELSEWHERE: dict[str, set[str]] = {
    # https://hub.docker.com/_/postgres (Environment Variables)
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    # https://hub.docker.com/_/rabbitmq (Environment Variables)
    # and RabbitMQ's own (Configure, "Environment Variables"): the Erlang cookie of a cluster.
    "rabbitmq": {"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS", "RABBITMQ_ERLANG_COOKIE"},
    # Grafana: any [section] key as GF_<SECTION>_<KEY> (Configure Grafana, "Override configuration
    # with environment variables")
    "grafana/grafana": {
        "GF_SECURITY_ADMIN_USER",
        "GF_SECURITY_ADMIN_PASSWORD",
        "GF_AUTH_ANONYMOUS_ENABLED",
        "GF_AUTH_ANONYMOUS_ORG_ROLE",
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
    },
    # Jaeger all-in-one: accept OTLP (Jaeger "Getting Started")
    "jaegertracing/all-in-one": {"COLLECTOR_OTLP_ENABLED"},
    # Python's own (python --help-env)
    "python": {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"},
}


def settings_variables() -> set[str]:
    """Every environment variable eventcore reads: one per Settings field."""
    return {f"EVENTCORE_{field.name.upper()}" for field in msgspec.structs.fields(Settings)}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_documents(path: Path) -> list[Any]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def eventcore_command(args: list[str], where: str) -> Any:
    """``args`` parsed by the `eventcore` CLI; fails the test if it is not a real command."""
    try:
        parsed = _parser().parse_args([str(arg) for arg in args])
    except SystemExit:
        pytest.fail(f"{where}: `eventcore {' '.join(map(str, args))}` is not an eventcore command")
    assert hasattr(parsed, "run"), f"{where}: `eventcore {' '.join(args)}` names no command"
    return parsed


@cache
def route_paths() -> frozenset[str]:
    """The path of every route of the API, as the app itself registers them."""
    from eventcore.entrypoints.http.app import create_app
    from eventcore.entrypoints.settings import load_settings

    app = create_app(load_settings({"EVENTCORE_DATA_DIR": "/nonexistent/eventcore-deploy-test"}))
    return frozenset(route.path for route in app.routes)


_COMPOSE_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def interpolate(value: object) -> str:
    """A Compose value with ``${NAME:-default}`` replaced by its default, as with NAME unset."""
    return _COMPOSE_VARIABLE.sub(lambda m: m.group(2) or "", str(value))


_METRIC = re.compile(r"\beventcore_[a-z0-9_]+\b")


def metric_names_in(expression: str) -> set[str]:
    """The eventcore metric names a PromQL expression reads."""
    return set(_METRIC.findall(expression))
