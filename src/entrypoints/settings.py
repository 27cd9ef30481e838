"""The one settings object, read from ``EVENTCORE_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, inspect

from eventcore import defaults
from eventcore.adapters.files import private_directory, private_file, tighten
from eventcore.entrypoints import failpoints
from eventcore.events import EventLimits


class ConfigurationError(Exception):
    """The configuration cannot work; the message says which variable to fix."""


# The bounds of each setting are declared on its field, once: loading checks them, and the error
# message and the README's Configuration table state them (``accepted``).
NonEmpty = Annotated[str, Meta(min_length=1)]
Positive = Annotated[int, Meta(ge=1)]
# Events or attempts per second or minute; 0 switches the limit off.
Rate = Annotated[float, Meta(ge=0, le=1_000_000_000)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything configurable. Each field maps to ``EVENTCORE_<FIELD NAME IN CAPITALS>``."""

    data_dir: NonEmpty = "./eventcore-data"
    database_url: str = ""
    # A streaming replica of database_url for analytics and listings (README, Read replica).
    database_read_url: str = ""
    database_read_wait_seconds: Annotated[float, Meta(ge=0, le=60)] = (
        defaults.DATABASE_READ_WAIT_SECONDS
    )
    redis_url: str = ""
    amqp_url: str = ""
    jwt_secret: str = ""
    token_lifetime_seconds: Annotated[int, Meta(ge=1, le=31_536_000)] = (
        defaults.TOKEN_LIFETIME_SECONDS
    )
    rate_limit_events_per_second: Rate = defaults.RATE_LIMIT_EVENTS_PER_SECOND
    # 0: twice the rate (see ``burst``).
    rate_limit_burst: Rate = 0.0
    login_attempts_per_minute: Rate = defaults.LOGIN_ATTEMPTS_PER_MINUTE
    login_attempts_per_minute_per_account: Rate = defaults.LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT
    login_attempts_per_minute_per_address: Rate = defaults.LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS
    signups_per_hour_per_address: Rate = defaults.SIGNUPS_PER_HOUR_PER_ADDRESS
    password_hash_concurrency: Annotated[int, Meta(ge=1, le=64)] = (
        defaults.PASSWORD_HASH_CONCURRENCY
    )
    password_hash_waiting: Annotated[int, Meta(ge=0, le=10_000)] = defaults.PASSWORD_HASH_WAITING
    max_batch_events: Positive = defaults.MAX_BATCH_EVENTS
    max_event_bytes: Positive = defaults.MAX_EVENT_BYTES
    max_request_bytes: Positive = defaults.MAX_REQUEST_BYTES
    analytics_cache_seconds: Annotated[float, Meta(ge=0, le=86_400)] = (
        defaults.ANALYTICS_CACHE_SECONDS
    )
    audit_retention_days: Annotated[int, Meta(ge=0, le=36_500)] = defaults.AUDIT_RETENTION_DAYS
    deletion_sweep_seconds: Annotated[float, Meta(ge=0.1, le=86_400)] = (
        defaults.DELETION_SWEEP_SECONDS
    )
    live_streams_per_workspace: Annotated[int, Meta(ge=1, le=10_000)] = (
        defaults.LIVE_STREAMS_PER_WORKSPACE
    )
    live_buffer_events: Annotated[int, Meta(ge=1, le=1_000_000)] = defaults.LIVE_BUFFER_EVENTS
    # RabbitMQ names are at most 255 bytes, and the retry and dead-letter queues add a suffix.
    queue_name: Annotated[str, Meta(min_length=1, max_length=200)] = defaults.QUEUE_NAME
    queue_max_length: Positive = defaults.QUEUE_MAX_LENGTH
    # Members of each quorum queue's replication group; 0: one on each node of EVENTCORE_AMQP_URL.
    queue_replicas: Annotated[int, Meta(ge=0, le=255)] = 0
    # Main queues the workspaces are spread over by a hash of their id (workers consume all).
    queue_partitions: Annotated[int, Meta(ge=1, le=64)] = 1
    queue_retry_delays: str = ",".join(f"{delay:g}" for delay in defaults.QUEUE_RETRY_DELAYS)
    redis_prefix: str = defaults.REDIS_PREFIX
    worker_batch_events: Positive = defaults.WORKER_BATCH_EVENTS
    worker_batch_wait_ms: Annotated[int, Meta(ge=0, le=60_000)] = defaults.WORKER_BATCH_WAIT_MS
    # AMQP's prefetch count is a 16-bit number.
    worker_prefetch: Annotated[int, Meta(ge=1, le=65_535)] = defaults.WORKER_PREFETCH
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console", "auto"] = "auto"
    # OTLP/HTTP collector for traces (e.g. http://collector:4318); empty: no spans exported.
    otlp_endpoint: str = ""
    # `eventcore worker` serves Prometheus metrics here; port 0 switches it off.
    worker_metrics_host: NonEmpty = "127.0.0.1"
    worker_metrics_port: Annotated[int, Meta(ge=0, le=65_535)] = 9464
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

# What the settings that are checked by hand (in ``_check``) accept, in the README's words.
_ACCEPTED: Final = {
    "database_url": "empty, `postgresql://…`, `postgres://…` or `sqlite:///path`",
    "database_read_url": "empty, or `postgresql://…` or `postgres://…` with a PostgreSQL"
    " `EVENTCORE_DATABASE_URL`",
    "redis_url": "empty, a `redis://`, `rediss://` or `unix://` URL, or a Redis Cluster's"
    " `redis+cluster://host:port,host:port,…`",
    "amqp_url": "empty, or `amqp://` or `amqps://` URLs separated by commas (a cluster's nodes)",
    "jwt_secret": "empty, or at least 32 characters",
    "queue_retry_delays": "positive seconds separated by commas, e.g. `1,5,25`",
    "redis_prefix": "non-empty, without `{` or `}`",
    "otlp_endpoint": "empty, or an `http://` or `https://` URL",
    "failpoints": "empty, or `step:N` separated by commas",
}


def accepted(name: str) -> str:
    """What the setting ``name`` (a field of :class:`Settings`) accepts, as its error message
    and the README's Configuration table say it."""
    if name in _ACCEPTED:
        return _ACCEPTED[name]
    kind = _field_types()[name]
    if isinstance(kind, inspect.LiteralType):
        return "one of " + ", ".join(f"`{value}`" for value in kind.values)
    if isinstance(kind, inspect.StrType):
        if kind.max_length is None:
            return "non-empty"
        return f"{kind.min_length or 0} to {kind.max_length} characters"
    assert isinstance(kind, inspect.IntType | inspect.FloatType), (name, kind)
    what = "an integer" if isinstance(kind, inspect.IntType) else "a number"
    if kind.le is None:
        return f"{what} of at least {_number(kind.ge or 0)}"
    return f"{what} from {_number(kind.ge or 0)} to {_number(kind.le)}"


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _field_types() -> dict[str, inspect.Type]:
    info = inspect.type_info(Settings)
    assert isinstance(info, inspect.StructType)
    return {field.name: field.type for field in info.fields}


def refused(name: str, value: str | None = None) -> ConfigurationError:
    """The error for a setting that cannot work: the variable, what it accepts, and what it got
    (unless the value is a secret)."""
    got = "" if value is None else f" (got {value[:40]!r})"
    return ConfigurationError(
        f"{_PREFIX}{name.upper()} must be {accepted(name).replace('`', '')}{got}."
    )


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
        # "... - at `$.rate_limit_burst`": the field whose value is refused.
        _, _, path = str(exc).partition(" - at `$.")
        name = path.rstrip("`")
        if name not in raw:
            raise ConfigurationError(f"Invalid configuration: {exc}") from None
        raise refused(name, raw[name]) from None
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    url = settings.database_url
    if url and not (url.startswith("sqlite:///") or settings.uses_postgres):
        raise refused("database_url")
    if settings.database_read_url and not (
        settings.uses_postgres
        and settings.database_read_url.startswith(("postgresql://", "postgres://"))
    ):
        raise refused("database_read_url")
    if settings.redis_url and not _redis_url_works(settings.redis_url):
        raise refused("redis_url")
    if settings.amqp_url and not all(
        node.strip().startswith(("amqp://", "amqps://")) for node in settings.amqp_url.split(",")
    ):
        raise refused("amqp_url")
    if settings.distributed and not settings.uses_postgres:
        raise ConfigurationError(
            "EVENTCORE_AMQP_URL needs EVENTCORE_DATABASE_URL=postgresql://…: workers on other "
            "processes must reach the same database."
        )
    try:
        delays = settings.retry_delays
    except ValueError:
        delays = ()
    if not delays or any(not 0 < delay < float("inf") for delay in delays):
        raise refused("queue_retry_delays", settings.queue_retry_delays)
    if not settings.redis_prefix or any(c in settings.redis_prefix for c in "{}"):
        raise refused("redis_prefix", settings.redis_prefix)
    if settings.jwt_secret and len(settings.jwt_secret) < 32:
        raise refused("jwt_secret")
    try:
        failpoints.parse(settings.failpoints)
    except ValueError:
        raise refused("failpoints", settings.failpoints) from None
    if settings.otlp_endpoint and not settings.otlp_endpoint.startswith(("http://", "https://")):
        raise refused("otlp_endpoint", settings.otlp_endpoint)


def _redis_url_works(url: str) -> bool:
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        from eventcore.adapters.redis.gateway import cluster_nodes  # imports redis-py

        try:
            cluster_nodes(url)
        except ValueError:
            return False
        return True
    return url.startswith(("redis://", "rediss://", "unix://"))


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
