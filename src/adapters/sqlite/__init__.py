"""The embedded SQLite store: the default profile's durable home for accounts and events."""

from adapters.sqlite.schema import SCHEMA_VERSION, SchemaTooNew
from adapters.sqlite.store import SqliteStore

__all__ = ["SCHEMA_VERSION", "SchemaTooNew", "SqliteStore"]
