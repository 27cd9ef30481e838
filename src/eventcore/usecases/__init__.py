"""Use cases: the application services that drive the ports."""

from eventcore.usecases.accounts import (
    AccessToken,
    Accounts,
    IssuedApiKey,
    KeyResolver,
    SignupResult,
)
from eventcore.usecases.analytics import Analytics, EventPage
from eventcore.usecases.ingest import EventsRejected, Ingestor, IngestReceipt
from eventcore.usecases.processing import BatchProcessor

__all__ = [
    "AccessToken",
    "Accounts",
    "Analytics",
    "BatchProcessor",
    "EventPage",
    "EventsRejected",
    "IngestReceipt",
    "Ingestor",
    "IssuedApiKey",
    "KeyResolver",
    "SignupResult",
]
