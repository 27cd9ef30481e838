"""The SQLite schema as numbered migrations, tracked by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

# Each migration is a list of statements run in one transaction together with the version bump.
# Never edit a released migration: append a new one.
#
# Every table of tenant data (all but users) has a workspace_id column, and its keys and indexes
# start with it (the Citus distribution column in the PostgreSQL twin). The exceptions are the
# lookups that find a tenant in the first place: API keys by key_hash, and memberships by user_id
# (a user's workspaces at sign-in). users holds no tenant data: keyed by id, unique by email.
# Times are integer microseconds since the Unix epoch, UTC.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE users (
            id TEXT NOT NULL PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE workspaces (
            id TEXT NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE memberships (
            workspace_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (workspace_id, user_id)
        )""",
        "CREATE INDEX memberships_by_user ON memberships (user_id, created_at)",
        """CREATE TABLE projects (
            workspace_id TEXT NOT NULL,
            id TEXT NOT NULL,
            name TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (workspace_id, id)
        )""",
        """CREATE TABLE api_keys (
            workspace_id TEXT NOT NULL,
            id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER,
            PRIMARY KEY (workspace_id, id)
        )""",
        "CREATE INDEX api_keys_by_project ON api_keys (workspace_id, project_id, created_at)",
        # seq is the rowid: the insertion order that breaks timestamp ties when paging. SQLite
        # appends the rowid to every index, so both indexes serve ORDER BY ts DESC, seq DESC.
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            workspace_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            ts INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            properties TEXT NOT NULL,
            UNIQUE (workspace_id, project_id, event_id)
        )""",
        "CREATE INDEX events_by_time ON events (workspace_id, project_id, ts)",
        "CREATE INDEX events_by_type_time ON events (workspace_id, project_id, event_type, ts)",
        """CREATE TABLE counts_minute (
            workspace_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            bucket INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (workspace_id, project_id, bucket, event_type)
        ) WITHOUT ROWID""",
        """CREATE TABLE counts_hour (
            workspace_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            bucket INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (workspace_id, project_id, bucket, event_type)
        ) WITHOUT ROWID""",
    ),
    (
        # Invitations are found by (workspace, token hash): the token names its workspace.
        """CREATE TABLE invitations (
            workspace_id TEXT NOT NULL,
            id TEXT NOT NULL,
            email TEXT NOT NULL,
            role TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            accepted_at INTEGER,
            PRIMARY KEY (workspace_id, id)
        )""",
    ),
    (
        # The analytics cache's generation of each workspace, shared by every process serving
        # the file (``_generations``).
        """CREATE TABLE generations (
            workspace_id TEXT NOT NULL PRIMARY KEY,
            generation INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # Events carry a person (eventcore.persons): NULL in the rows stored before. Adding a
        # nullable column rewrites nothing, so this is instant on a file of any size.
        "ALTER TABLE events ADD COLUMN user_id TEXT",
        "ALTER TABLE events ADD COLUMN anonymous_id TEXT",
        # One persons' sketch per (project, hour bucket, event type, '' for every type). Keyed
        # by type before bucket: a window's sketches of one type are one range of the key. A
        # sketch past a few hundred persons overflows its b-tree cell; the key columns come
        # first, so a scan of keys never reads the overflow pages. Funnels read the events
        # through events_by_type_time (one range per type asked, then a sort by person): a
        # covering index of the persons' events would halve that read but cost every stored
        # event with a person a third index insertion (about a third more per append).
        """CREATE TABLE users_hour (
            workspace_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            bucket INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            sketch BLOB NOT NULL,
            PRIMARY KEY (workspace_id, project_id, event_type, bucket)
        ) WITHOUT ROWID""",
    ),
    (
        # Declared dimensions (eventcore.dimensions): each project's paths as a JSON array, and
        # each event's values of them as a JSON object, NULL when its project declared none when
        # it was stored (a rebuild sets them again for the paths declared then).
        "ALTER TABLE projects ADD COLUMN dimensions TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE events ADD COLUMN dim_values TEXT",
        # One tally per (project, event type or '' for every type, dimension, UTC day, kind,
        # value): kind 0 a value, 1 no value, 2 the rest (value '' for both). Keyed by type,
        # dimension and day before the value: a window's tallies of one dimension are one range
        # of the key, and the values a day already keeps (what bounds the new ones) another.
        # The sketch comes last, so reading keys never touches its overflow pages.
        """CREATE TABLE dims_day (
            workspace_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            dimension TEXT NOT NULL,
            day INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            value TEXT NOT NULL,
            count INTEGER NOT NULL,
            sketch BLOB,
            PRIMARY KEY (workspace_id, project_id, event_type, dimension, day, kind, value)
        ) WITHOUT ROWID""",
    ),
    (
        # The audit log (eventcore.audit): append-only. seq (the rowid) is the order of
        # insertion; details is a JSON object. The triggers refuse every UPDATE and DELETE:
        # no statement of the application's can alter an entry.
        """CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY,
            workspace_id TEXT NOT NULL,
            id TEXT NOT NULL,
            at INTEGER NOT NULL,
            action TEXT NOT NULL,
            actor_type TEXT NOT NULL,
            actor_id TEXT,
            target_type TEXT,
            target_id TEXT,
            details TEXT NOT NULL,
            request_id TEXT,
            client_address TEXT,
            UNIQUE (workspace_id, id)
        )""",
        "CREATE INDEX audit_log_newest ON audit_log (workspace_id, at, seq)",
        "CREATE INDEX audit_log_by_action ON audit_log (workspace_id, action, at, seq)",
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    ),
    (
        # Deleted events' ids (eventcore.deletions): an append of one again is a duplicate.
        """CREATE TABLE deleted_events (
            workspace_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            deleted_at INTEGER NOT NULL,
            PRIMARY KEY (workspace_id, project_id, event_id)
        ) WITHOUT ROWID""",
        # Deletion requests (eventcore.deletions): the selector's persons and event ids as JSON
        # arrays, its times NULL when not given; seq (the rowid) breaks ties of requested_at.
        """CREATE TABLE deletions (
            seq INTEGER PRIMARY KEY,
            workspace_id TEXT NOT NULL,
            id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            user_ids TEXT NOT NULL,
            event_ids TEXT NOT NULL,
            start_time INTEGER,
            end_time INTEGER,
            status TEXT NOT NULL,
            requested_at INTEGER NOT NULL,
            requested_by TEXT,
            events_deleted INTEGER NOT NULL DEFAULT 0,
            completed_at INTEGER,
            error TEXT,
            UNIQUE (workspace_id, id)
        )""",
        "CREATE INDEX deletions_by_project ON deletions (workspace_id, project_id, requested_at)",
    ),
    (
        # The audit log's retention: an entry may be deleted only if it was recorded before
        # the horizon, which the expiry sets for its own transaction and puts back (the
        # smallest time) before it commits; any other DELETE is still aborted.
        "CREATE TABLE audit_horizon (horizon INTEGER NOT NULL)",
        "INSERT INTO audit_horizon VALUES (-9223372036854775808)",
        "DROP TRIGGER audit_log_no_delete",
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        WHEN old.at >= (SELECT horizon FROM audit_horizon)
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    ),
    (
        # Deleted workspaces' ids: an append of a batch of one stores nothing (still queued
        # when its workspace was deleted).
        """CREATE TABLE deleted_workspaces (
            workspace_id TEXT NOT NULL PRIMARY KEY,
            deleted_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # One persons' sketch per (project, UTC day, event type, '' for every type), beside the
        # hours' (eventcore.persons): a window's total merges its whole days' sketches. Made
        # from here on; a day stored before has none, and its hours answer for it (a day's
        # first sketch made later starts as the union of its hours', in the append).
        """CREATE TABLE users_day (
            workspace_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            day INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            sketch BLOB NOT NULL,
            PRIMARY KEY (workspace_id, project_id, event_type, day)
        ) WITHOUT ROWID""",
    ),
    (
        # Suppressions (eventcore.suppressions), each written with the deletion request that
        # asked for it: an append stores no event of a person suppressed now, nor one received
        # while a suppression since lifted (lifted_at) was in force; the ingest refuses them.
        # At most one in force per person and project.
        "ALTER TABLE deletions ADD COLUMN suppress INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE suppressions (
            seq INTEGER PRIMARY KEY,
            workspace_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            suppressed_at INTEGER NOT NULL,
            deletion_id TEXT NOT NULL,
            suppressed_by TEXT,
            lifted_at INTEGER
        )""",
        "CREATE INDEX suppressions_by_person ON suppressions (workspace_id, project_id, user_id)",
        """CREATE UNIQUE INDEX suppressions_in_force ON suppressions
            (workspace_id, project_id, user_id) WHERE lifted_at IS NULL""",
    ),
    (
        # A project's retention of its events in days (eventcore.retention); NULL: for ever.
        # The retention run finds the projects that have one through the partial index.
        "ALTER TABLE projects ADD COLUMN retention_days INTEGER",
        "CREATE INDEX projects_with_retention ON projects (workspace_id, id)"
        " WHERE retention_days IS NOT NULL",
    ),
    (
        # The origins whose pages may send with a project's keys (eventcore.origins), as a
        # JSON array; empty: any.
        "ALTER TABLE projects ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]'",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The file was written by a newer eventcore: refuse rather than misread it."""


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the database up to :data:`SCHEMA_VERSION`; returns the version it started at.

    The version is read again inside the write transaction, so two processes opening the same
    new file at once apply each migration exactly once.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        (found,) = connection.execute("PRAGMA user_version").fetchone()
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"The database has schema version {found}; this eventcore knows up to "
                f"{SCHEMA_VERSION}. Upgrade eventcore to open it."
            )
        for statements in MIGRATIONS[found:]:
            for statement in statements:
                connection.execute(statement)
        # PRAGMA takes no parameters; the value is our own integer.
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return int(found)
