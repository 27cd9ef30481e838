"""The embedded SQLite store: the default profile's durable home for accounts and events."""

from eventcore.adapters.sqlite.schema import SCHEMA_VERSION, SchemaTooNew
from eventcore.adapters.sqlite.store import SqliteStore

__all__ = ["SCHEMA_VERSION", "SchemaTooNew", "SqliteStore"]
