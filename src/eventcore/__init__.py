"""eventcore: multi-tenant event ingestion that stores each event once and counts it exactly.

This package is the pure core: domain rules, ports and use cases, with no I/O of its own. The
adapters (``eventcore.adapters.memory``, ``eventcore.adapters.sqlite``, ...) implement the ports;
``eventcore.entrypoints`` wires them into the HTTP API, the worker and the CLI. (Those two come
from the source folders ``src/adapters`` and ``src/entrypoints``: see the README.)
"""

from importlib.metadata import PackageNotFoundError, version

from eventcore.aggregation import (
    CountPoint,
    CountSeries,
    EventTypeCount,
    EventTypeTotals,
    Granularity,
)
from eventcore.errors import (
    AlreadyExists,
    AlreadyMember,
    AuthenticationFailed,
    CacheUnavailable,
    Conflict,
    DatabaseUnavailable,
    EmailTaken,
    EventcoreError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    QueueFull,
    QueueUnavailable,
    RateLimited,
    Unavailable,
)
from eventcore.events import Event, EventLimits, IngestBatch, RejectedEvent, StoredEvent
from eventcore.funnels import FunnelQuery, FunnelResult, FunnelStep, FunnelStepResult
from eventcore.persons import UserSeries, UsersPoint
from eventcore.platform import Platform, build_platform
from eventcore.ports import AppendResult, Recount
from eventcore.tenancy import Principal, ProjectRef, Role
from eventcore.usecases import (
    Accounts,
    Analytics,
    BatchProcessor,
    EncodedAnswer,
    EventPage,
    EventsRejected,
    Ingestor,
    IngestReceipt,
    Maintenance,
)

try:
    __version__ = version("eventcore")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "Accounts",
    "AlreadyExists",
    "AlreadyMember",
    "Analytics",
    "AppendResult",
    "AuthenticationFailed",
    "BatchProcessor",
    "CacheUnavailable",
    "Conflict",
    "CountPoint",
    "CountSeries",
    "DatabaseUnavailable",
    "EmailTaken",
    "EncodedAnswer",
    "Event",
    "EventLimits",
    "EventPage",
    "EventTypeCount",
    "EventTypeTotals",
    "EventcoreError",
    "EventsRejected",
    "FunnelQuery",
    "FunnelResult",
    "FunnelStep",
    "FunnelStepResult",
    "Granularity",
    "IngestBatch",
    "IngestReceipt",
    "Ingestor",
    "InvalidRequest",
    "Maintenance",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Platform",
    "Principal",
    "ProjectRef",
    "QueueFull",
    "QueueUnavailable",
    "RateLimited",
    "Recount",
    "RejectedEvent",
    "Role",
    "StoredEvent",
    "Unavailable",
    "UserSeries",
    "UsersPoint",
    "__version__",
    "build_platform",
]
