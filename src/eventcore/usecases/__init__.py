"""Use cases: the application services that drive the ports."""

from eventcore.usecases.accounts import (
    AccessToken,
    Accounts,
    IssuedApiKey,
    KeyResolver,
    SignupResult,
)
from eventcore.usecases.analytics import Analytics, EncodedAnswer, EventPage
from eventcore.usecases.ingest import EventsRejected, Ingestor, IngestReceipt
from eventcore.usecases.maintenance import Maintenance
from eventcore.usecases.processing import BatchProcessor, InlineQueue

__all__ = [
    "AccessToken",
    "Accounts",
    "Analytics",
    "BatchProcessor",
    "EncodedAnswer",
    "EventPage",
    "EventsRejected",
    "IngestReceipt",
    "Ingestor",
    "InlineQueue",
    "IssuedApiKey",
    "KeyResolver",
    "Maintenance",
    "SignupResult",
]
