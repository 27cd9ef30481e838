"""The embedded SQLite store: the default profile's durable home for accounts and events.

``SqliteStore`` composes private parts: ``_database`` (the file, its two connections and their
threads), ``_accounts`` and ``_events`` (the tables and their statements), ``_errors`` (the one
place SQLite's exceptions become eventcore's) and ``_codec`` (how times are stored); ``schema``
holds the numbered migrations.
"""

from eventcore.adapters.sqlite._generations import SqliteQueryCache
from eventcore.adapters.sqlite._store import SqliteStore
from eventcore.adapters.sqlite.schema import SCHEMA_VERSION, SchemaTooNew, migrate

__all__ = ["SCHEMA_VERSION", "SchemaTooNew", "SqliteQueryCache", "SqliteStore", "migrate"]
