"""Versioned SQL migrations shipped with the package, and the runner that applies them.

A migration is a file ``migrations/NNNN_name.sql``; change the schema by adding the next one,
never by editing one already applied (its checksum is recorded and checked).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

SCHEMA = "eventcore"
DEFAULT_APP_ROLE = "eventcore_app"

# One key for every process migrating any eventcore database (advisory locks are per database).
_MIGRATION_LOCK = int.from_bytes(hashlib.sha256(b"eventcore.migrate").digest()[:8], "big") >> 1
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_BOOTSTRAP = b"""
CREATE SCHEMA IF NOT EXISTS eventcore;
CREATE TABLE IF NOT EXISTS eventcore.schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(Exception):
    """The migrations on disk do not agree with what the database says was applied."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def render(self, app_role: str) -> bytes:
        """The SQL with the application role put in: ``:"app_role"`` quoted as a name,
        ``:'app_role'`` as a string literal (psql's spelling, but replaced everywhere)."""
        identifier = '"' + app_role.replace('"', '""') + '"'
        literal = "'" + app_role.replace("'", "''") + "'"
        return self.text.replace(':"app_role"', identifier).replace(":'app_role'", literal).encode()


def load_migrations() -> list[Migration]:
    """Every migration file in the package, in version order."""
    found: dict[str, Migration] = {}
    for entry in resources.files("eventcore.adapters.postgres").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        version = match["version"]
        if version in found:
            raise MigrationError(f"Two migrations share version {version}.")
        found[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


async def migrate(dsn: str, *, app_role: str = DEFAULT_APP_ROLE) -> list[str]:
    """Bring the database to the latest schema; returns the versions this call applied.

    Run it as the role that should own the tables (the DSN's user). Each migration commits on
    its own; the whole run holds an advisory lock, so processes starting together apply each
    migration once and the others then find nothing to do.
    """
    migrations = load_migrations()
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            await conn.execute(_BOOTSTRAP)
            cursor = await conn.execute("SELECT version, checksum FROM eventcore.schema_migrations")
            done: dict[str, str] = dict(await cursor.fetchall())
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"Migration {migration.version}_{migration.name} was changed after "
                            "it was applied; add a new migration instead."
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.render(app_role))
                    await conn.execute(
                        "INSERT INTO eventcore.schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied
