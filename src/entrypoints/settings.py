"""The one settings object, read from ``EVENTCORE_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from eventcore import defaults
from eventcore.adapters.files import private_directory, private_file, tighten
from eventcore.entrypoints import failpoints
from eventcore.events import EventLimits


class ConfigurationError(Exception):
    """The configuration cannot work; the message says which variable to fix."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything configurable. Each field maps to ``EVENTCORE_<FIELD NAME IN CAPITALS>``."""

    data_dir: str = "./eventcore-data"
    database_url: str = ""
    redis_url: str = ""
    amqp_url: str = ""
    jwt_secret: str = ""
    token_lifetime_seconds: int = defaults.TOKEN_LIFETIME_SECONDS
    rate_limit_events_per_second: float = defaults.RATE_LIMIT_EVENTS_PER_SECOND
    # 0: twice the rate (see ``burst``).
    rate_limit_burst: float = 0.0
    login_attempts_per_minute: float = defaults.LOGIN_ATTEMPTS_PER_MINUTE
    login_attempts_per_minute_per_address: float = defaults.LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS
    max_batch_events: int = defaults.MAX_BATCH_EVENTS
    max_event_bytes: int = defaults.MAX_EVENT_BYTES
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES
    analytics_cache_seconds: float = defaults.ANALYTICS_CACHE_SECONDS
    queue_name: str = defaults.QUEUE_NAME
    queue_max_length: int = defaults.QUEUE_MAX_LENGTH
    queue_retry_delays: str = ",".join(f"{delay:g}" for delay in defaults.QUEUE_RETRY_DELAYS)
    redis_prefix: str = defaults.REDIS_PREFIX
    worker_batch_events: int = defaults.WORKER_BATCH_EVENTS
    worker_batch_wait_ms: int = defaults.WORKER_BATCH_WAIT_MS
    worker_prefetch: int = defaults.WORKER_PREFETCH
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console", "auto"] = "auto"
    # OTLP/HTTP collector for traces (e.g. http://collector:4318); empty: no spans exported.
    otlp_endpoint: str = ""
    # `eventcore worker` serves Prometheus metrics here; port 0 switches it off.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9464
    # For testing only: make `eventcore worker` die at named points (eventcore.entrypoints.failpoints).
    failpoints: str = ""

    @property
    def distributed(self) -> bool:
        return bool(self.amqp_url)

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file of the embedded store (from ``sqlite:///path`` or the data dir)."""
        url = self.database_url
        if url.startswith("sqlite:///"):
            return Path(url.removeprefix("sqlite:///"))
        return Path(self.data_dir) / "eventcore.sqlite3"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def limits(self) -> EventLimits:
        return EventLimits(
            max_events_per_batch=self.max_batch_events,
            max_event_bytes=self.max_event_bytes,
            max_request_bytes=self.max_request_bytes,
        )

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.queue_retry_delays.split(",") if part.strip())

    @property
    def burst(self) -> float:
        return self.rate_limit_burst or 2 * self.rate_limit_events_per_second


_PREFIX = "EVENTCORE_"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment and check they can work together."""
    environ = os.environ if environ is None else environ
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    raw = {
        name.removeprefix(_PREFIX).lower(): value
        for name, value in environ.items()
        if name.startswith(_PREFIX) and name.removeprefix(_PREFIX).lower() in fields
    }
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"Invalid configuration: {_env_name(str(exc))}") from None
    _check(settings)
    return settings


def _env_name(message: str) -> str:
    # "... - at `$.rate_limit_burst`" reads better as the variable a user sets.
    head, sep, path = message.partition(" - at `$.")
    return f"{head} (EVENTCORE_{path.rstrip('`').upper()})" if sep else message


def _check(settings: Settings) -> None:
    url = settings.database_url
    if url and not (url.startswith("sqlite:///") or settings.uses_postgres):
        raise ConfigurationError(
            "EVENTCORE_DATABASE_URL must start with postgresql:// or sqlite:///."
        )
    if settings.distributed and not settings.uses_postgres:
        raise ConfigurationError(
            "EVENTCORE_AMQP_URL needs EVENTCORE_DATABASE_URL=postgresql://…: workers on other "
            "processes must reach the same database."
        )
    try:
        delays = settings.retry_delays
    except ValueError:
        delays = ()
    if not delays or any(delay <= 0 for delay in delays):
        raise ConfigurationError(
            "EVENTCORE_QUEUE_RETRY_DELAYS must be positive seconds separated by commas, e.g. 1,5,25."
        )
    if not settings.redis_prefix or any(c in settings.redis_prefix for c in "{}"):
        raise ConfigurationError("EVENTCORE_REDIS_PREFIX must be non-empty, without { or }.")
    if settings.jwt_secret and len(settings.jwt_secret) < 32:
        raise ConfigurationError("EVENTCORE_JWT_SECRET must be at least 32 characters.")
    if settings.rate_limit_events_per_second < 0:
        raise ConfigurationError("EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND may not be negative.")
    try:
        failpoints.parse(settings.failpoints)
    except ValueError as exc:
        raise ConfigurationError(f"EVENTCORE_FAILPOINTS: {exc}") from None
    if not 0 <= settings.worker_metrics_port <= 65535:
        raise ConfigurationError("EVENTCORE_WORKER_METRICS_PORT must be 0 (off) to 65535.")
    if settings.otlp_endpoint and not settings.otlp_endpoint.startswith(("http://", "https://")):
        raise ConfigurationError(
            "EVENTCORE_OTLP_ENDPOINT must be an http:// or https:// URL (OTLP over HTTP)."
        )
    for name in ("max_batch_events", "max_event_bytes", "max_request_bytes"):
        if getattr(settings, name) <= 0:
            raise ConfigurationError(f"EVENTCORE_{name.upper()} must be positive.")


def require_shared_secret(settings: Settings) -> None:
    """API processes on PostgreSQL must all sign tokens with one configured secret."""
    if settings.uses_postgres and not settings.jwt_secret:
        raise ConfigurationError(
            "EVENTCORE_JWT_SECRET is required with PostgreSQL (every API process must sign "
            "access tokens with the same secret). Generate one with: "
            'python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
        )


def jwt_secret(settings: Settings) -> str:
    """The configured secret, or the embedded profile's own, generated once and kept on disk.

    Processes that never issue tokens (workers, commands) on PostgreSQL get a throwaway one.
    """
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.uses_postgres:
        return secrets.token_urlsafe(48)
    path = Path(settings.data_dir) / "jwt-secret"
    if path.exists():
        tighten(path)
        return path.read_text().strip()
    private_directory(path.parent)
    secret = secrets.token_urlsafe(48)
    # Written to a temporary name and renamed, so two processes starting at once agree on one.
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    private_file(tmp)
    tmp.write_text(secret)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
