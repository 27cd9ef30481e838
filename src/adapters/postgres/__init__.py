"""PostgreSQL adapter of the distributed profile: the store, its schema and its migrations.

``PostgresStore`` composes private parts: ``_database`` (the pool and how a connection is used),
``_accounts`` and ``_events`` (the tables and their statements) and ``_errors`` (the one place
psycopg's exceptions become eventcore's); ``schema`` runs the SQL files of ``migrations/``.
"""

from eventcore.adapters.postgres._store import PostgresStore
from eventcore.adapters.postgres.schema import (
    DEFAULT_APP_ROLE,
    Migration,
    MigrationError,
    load_migrations,
    migrate,
)

__all__ = [
    "DEFAULT_APP_ROLE",
    "Migration",
    "MigrationError",
    "PostgresStore",
    "load_migrations",
    "migrate",
]
