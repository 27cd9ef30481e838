"""PostgreSQL adapter of the distributed profile: the store, its schema and its migrations."""

from eventcore.adapters.postgres.schema import (
    DEFAULT_APP_ROLE,
    Migration,
    MigrationError,
    load_migrations,
    migrate,
)
from eventcore.adapters.postgres.store import PostgresStore

__all__ = [
    "DEFAULT_APP_ROLE",
    "Migration",
    "MigrationError",
    "PostgresStore",
    "load_migrations",
    "migrate",
]
