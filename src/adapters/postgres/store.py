"""The PostgreSQL store: accounts and events behind row-level security, through a connection pool."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeAlias

import psycopg
from msgspec import Raw
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from psycopg import AsyncConnection, sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg_pool import AsyncConnectionPool

from eventcore import failpoints
from eventcore.adapters.postgres.schema import DEFAULT_APP_ROLE
from eventcore.aggregation import CountPoint, EventTypeCount, Granularity
from eventcore.errors import Conflict, InvalidRequest, Unavailable
from eventcore.events import EventCursor, IngestBatch, StoredEvent
from eventcore.ports import AppendResult
from eventcore.tenancy import ApiKey, Membership, Project, Role, User, Workspace

Connection: TypeAlias = AsyncConnection[tuple[Any, ...]]

_tracer = trace.get_tracer("eventcore.adapters.postgres")

# Transaction-local, so it ends with the transaction whatever happens to the connection.
_SET_TENANT = "SELECT set_config('app.workspace_id', %s, true)"
# Writers to the count tables also take the workspace's counts lock: shared for appends (they
# never wait for each other), exclusive for a rebuild, which must not interleave with them.
_SET_TENANT_FOR_COUNTS = (
    "SELECT set_config('app.workspace_id', %s, true), pg_advisory_xact_lock_shared(%s, %s)"
)
_SET_TENANT_FOR_REBUILD = (
    "SELECT set_config('app.workspace_id', %s, true), pg_advisory_xact_lock(%s, %s)"
)
_COUNTS_LOCK_CLASS = 0x65630001

# One round trip stores a workspace's events and adds exactly the inserted ones to both count
# tables. Every row lock is taken in one global order, so concurrent writers cannot deadlock:
# events in primary-key order (after seq numbers are drawn in arrival order, which paging
# needs; the first of two equal ids is the one kept), then count rows in primary-key order;
# workspaces themselves go in sorted order. Buckets are cut in UTC whatever the session time
# zone. The arrays travel in binary: psycopg dumps them in C, the text form costs milliseconds.
_APPEND = """
WITH incoming AS MATERIALIZED (
    SELECT i.*, nextval('eventcore.event_seq') AS seq
    FROM unnest(%(project_ids)b::text[], %(event_ids)b::text[], %(timestamps)b::timestamptz[],
                %(received)b::timestamptz[], %(types)b::text[], %(properties)b::text[])
         WITH ORDINALITY
         AS i (project_id, event_id, event_time, received_at, type, properties, position)
    ORDER BY i.position
),
stored AS (
    INSERT INTO eventcore.events AS e
        (workspace_id, project_id, event_id, seq, event_time, received_at, type, properties)
    SELECT %(workspace_id)s::text, project_id, event_id, seq, event_time, received_at, type,
           properties::json
    FROM incoming
    ORDER BY project_id COLLATE "C", event_id COLLATE "C", position
    ON CONFLICT DO NOTHING
    RETURNING e.project_id, e.event_time, e.type
),
per_minute AS (
    SELECT project_id, date_trunc('minute', event_time, 'UTC') AS bucket, type, count(*) AS n
    FROM stored
    GROUP BY 1, 2, 3
),
into_minutes AS (
    INSERT INTO eventcore.counts_minute AS c (workspace_id, project_id, bucket, event_type, count)
    SELECT %(workspace_id)s::text, project_id, bucket, type, n
    FROM per_minute
    ORDER BY project_id, bucket, type
    ON CONFLICT (workspace_id, project_id, bucket, event_type)
    DO UPDATE SET count = c.count + excluded.count
),
into_hours AS (
    INSERT INTO eventcore.counts_hour AS c (workspace_id, project_id, bucket, event_type, count)
    SELECT %(workspace_id)s::text, project_id, date_trunc('hour', bucket, 'UTC'), type, sum(n)
    FROM per_minute
    GROUP BY 2, 3, 4
    ORDER BY 2, 3, 4
    ON CONFLICT (workspace_id, project_id, bucket, event_type)
    DO UPDATE SET count = c.count + excluded.count
)
SELECT coalesce(sum(n), 0)::bigint FROM per_minute
"""

_RECOUNT = """
WITH per_minute AS (
    SELECT project_id, date_trunc('minute', event_time, 'UTC') AS bucket, type, count(*) AS n
    FROM eventcore.events
    WHERE workspace_id = %(workspace_id)s
    GROUP BY 1, 2, 3
),
into_minutes AS (
    INSERT INTO eventcore.counts_minute (workspace_id, project_id, bucket, event_type, count)
    SELECT %(workspace_id)s::text, project_id, bucket, type, n FROM per_minute
),
into_hours AS (
    INSERT INTO eventcore.counts_hour (workspace_id, project_id, bucket, event_type, count)
    SELECT %(workspace_id)s::text, project_id, date_trunc('hour', bucket, 'UTC'), type, sum(n)
    FROM per_minute
    GROUP BY 2, 3, 4
)
SELECT coalesce(sum(n), 0)::bigint FROM per_minute
"""

_LIST_EVENTS = {
    # Keyed by (type filter, cursor): four static statements, each with its own good plan.
    (False, False): """
        SELECT event_id, type, event_time, received_at, properties, seq FROM eventcore.events
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
        ORDER BY event_time DESC, seq DESC LIMIT %(limit)s
    """,
    (True, False): """
        SELECT event_id, type, event_time, received_at, properties, seq FROM eventcore.events
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND type = %(event_type)s
        ORDER BY event_time DESC, seq DESC LIMIT %(limit)s
    """,
    (False, True): """
        SELECT event_id, type, event_time, received_at, properties, seq FROM eventcore.events
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND (event_time, seq) < (%(before_time)s, %(before_seq)s)
        ORDER BY event_time DESC, seq DESC LIMIT %(limit)s
    """,
    (True, True): """
        SELECT event_id, type, event_time, received_at, properties, seq FROM eventcore.events
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND type = %(event_type)s
          AND (event_time, seq) < (%(before_time)s, %(before_seq)s)
        ORDER BY event_time DESC, seq DESC LIMIT %(limit)s
    """,
}

_SERIES = {
    (Granularity.MINUTE, False): """
        SELECT bucket, event_type, count FROM eventcore.counts_minute
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND bucket >= %(start)s AND bucket < %(end)s AND count <> 0
        ORDER BY bucket, event_type
    """,
    (Granularity.MINUTE, True): """
        SELECT bucket, event_type, count FROM eventcore.counts_minute
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND bucket >= %(start)s AND bucket < %(end)s AND count <> 0
          AND event_type = %(event_type)s
        ORDER BY bucket, event_type
    """,
    (Granularity.HOUR, False): """
        SELECT bucket, event_type, count FROM eventcore.counts_hour
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND bucket >= %(start)s AND bucket < %(end)s AND count <> 0
        ORDER BY bucket, event_type
    """,
    (Granularity.HOUR, True): """
        SELECT bucket, event_type, count FROM eventcore.counts_hour
        WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
          AND bucket >= %(start)s AND bucket < %(end)s AND count <> 0
          AND event_type = %(event_type)s
        ORDER BY bucket, event_type
    """,
}

_TYPE_TOTALS = """
SELECT event_type, sum(count)::bigint AS total FROM eventcore.counts_hour
WHERE workspace_id = %(workspace_id)s AND project_id = %(project_id)s
  AND bucket >= %(start)s AND bucket < %(end)s AND count <> 0
GROUP BY event_type
ORDER BY total DESC, event_type
"""


class _RawJsonBinaryLoader(Loader):
    """json straight to msgspec.Raw: its binary form is the client's JSON text itself."""

    format = Format.BINARY

    def load(self, data: Buffer) -> Raw:
        return Raw(bytes(data))


class _RawJsonTextLoader(Loader):
    format = Format.TEXT

    def load(self, data: Buffer) -> Raw:
        return Raw(bytes(data))


# API keys this process has read, kept to authenticate ingest while PostgreSQL cannot be reached
# (see find_api_key): how many, how long a lookup waits for a pooled connection before the last
# record read is used instead, and how long after a failed lookup the next one tries again.
_KNOWN_KEYS = 10_000
_KEY_LOOKUP_TIMEOUT = 2.0
_KEY_LOOKUP_RETRY = 1.0


def _counts_lock(workspace_id: str) -> int:
    """A stable 32-bit key for the workspace's counts lock (collisions only serialise more)."""
    digest = hashlib.blake2b(workspace_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStore:
    """Accounts and events in PostgreSQL, each transaction confined to one workspace.

    The store connects with the DSN's user and works as ``app_role`` (``SET ROLE`` on every new
    pooled connection): a role that owns nothing and is bound by row-level security, so a query
    that forgot its ``workspace_id`` filter still cannot see another tenant.
    """

    def __init__(self, pool: AsyncConnectionPool[Connection]) -> None:
        self._pool = pool
        self._known_keys: OrderedDict[str, ApiKey] = OrderedDict()
        self._keys_unreachable_until: float | None = None
        self._probing_keys = False

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        app_role: str = DEFAULT_APP_ROLE,
        pool_timeout: float = 5.0,
    ) -> PostgresStore:
        """Open the pool; fails at once, saying why, if the database or the role is not there.

        ``pool_timeout`` bounds both the wait for the pool to fill and each later wait for a
        free connection (then Unavailable).
        """
        session = sql.SQL("SET ROLE {}; SET TIME ZONE 'UTC'").format(sql.Identifier(app_role))
        # Everything a checkout could have changed in the session goes back to how configure
        # left it; the pool has already rolled back any open transaction.
        reset = sql.SQL(
            "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *;"
            " SELECT pg_advisory_unlock_all(); DISCARD TEMP; {}"
        ).format(session)

        async def configure(conn: Connection) -> None:
            conn.adapters.register_loader("json", _RawJsonBinaryLoader)
            conn.adapters.register_loader("json", _RawJsonTextLoader)
            await conn.execute(session)

        async def reset_session(conn: Connection) -> None:
            await conn.execute(reset)

        # The pool alone would retry in the background and only report a timeout; one direct
        # attempt first gives the real reason (server down, role missing: run the migrations).
        async with await AsyncConnection.connect(dsn, autocommit=True) as probe:
            await probe.execute(session)
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=configure,
            reset=reset_session,
            open=False,
            timeout=pool_timeout,
            name="eventcore",
        )
        try:
            await pool.open(wait=True, timeout=pool_timeout)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    @property
    def pool(self) -> AsyncConnectionPool[Connection]:
        """The connection pool, for statistics and tests."""
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def ping(self) -> None:
        """Readiness: return if a pooled connection answers; raise Unavailable otherwise."""
        async with self._connection() as conn:
            await conn.execute("SELECT 1")

    @asynccontextmanager
    async def _connection(
        self, wait_for_connection: float | None = None
    ) -> AsyncIterator[Connection]:
        """A pooled connection in autocommit; a database that cannot answer is Unavailable.

        ``wait_for_connection`` bounds the wait for a free connection (default: the pool's).
        """
        try:
            async with self._pool.connection(timeout=wait_for_connection) as conn:
                yield conn
        except psycopg.errors.UniqueViolation:
            # A record id (or key hash) already in use: as the other stores, refuse, never
            # overwrite. (Taken emails and memberships are reported before they get here.)
            raise Conflict("A record with that id already exists.", code="conflict") from None
        except psycopg.OperationalError as exc:
            # Connection loss, pool timeout, deadlock, serialization failure, shutdown: all
            # transient for the caller (a worker retries, the API answers 503).
            raise Unavailable(
                f"PostgreSQL is unavailable: {type(exc).__name__}.",
                code="database_unavailable",
            ) from exc
        except psycopg.DataError as exc:
            # A value PostgreSQL cannot hold (a NUL character in a text, a number beyond
            # numeric's range): retrying cannot help, the input has to change.
            raise InvalidRequest(
                f"PostgreSQL cannot store a value: {exc.diag.message_primary}",
                code="unstorable_value",
            ) from exc

    @asynccontextmanager
    async def _tenant(self, workspace_id: str) -> AsyncIterator[Connection]:
        """A transaction that sees only ``workspace_id``'s rows.

        Pipelined: BEGIN, the tenant setting and the first statement leave in one round trip.
        """
        async with self._connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(_SET_TENANT, (workspace_id,))
            yield conn

    # accounts

    async def create_signup(self, user: User, workspace: Workspace, owner: Membership) -> None:
        async with self._tenant(workspace.id) as conn:
            cursor = await conn.execute(
                "INSERT INTO eventcore.users (user_id, email, password_hash, created_at)"
                " VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (email) DO NOTHING RETURNING user_id",
                (user.id, user.email, user.password_hash, user.created_at),
            )
            if await cursor.fetchone() is None:
                raise Conflict("An account with this email already exists.", code="email_taken")
            await conn.execute(
                "INSERT INTO eventcore.workspaces (workspace_id, name, created_at)"
                " VALUES (%s, %s, %s)",
                (workspace.id, workspace.name, workspace.created_at),
            )
            if owner.workspace_id != workspace.id:
                await conn.execute(_SET_TENANT, (owner.workspace_id,))
            await conn.execute(
                "INSERT INTO eventcore.memberships (workspace_id, user_id, role, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (owner.workspace_id, owner.user_id, owner.role.value, owner.created_at),
            )

    async def get_user(self, user_id: str) -> User | None:
        # users is global (not tenant data): no workspace, no row-level security.
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT user_id, email, password_hash, created_at FROM eventcore.users"
                " WHERE user_id = %s",
                (user_id,),
            )
            row = await cursor.fetchone()
        return User(*row) if row is not None else None

    async def get_user_by_email(self, email: str) -> User | None:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT user_id, email, password_hash, created_at FROM eventcore.users"
                " WHERE email = %s",
                (email,),
            )
            row = await cursor.fetchone()
        return User(*row) if row is not None else None

    async def get_membership(self, workspace_id: str, user_id: str) -> Membership | None:
        async with self._tenant(workspace_id) as conn:
            cursor = await conn.execute(
                "SELECT workspace_id, user_id, role, created_at FROM eventcore.memberships"
                " WHERE workspace_id = %s AND user_id = %s",
                (workspace_id, user_id),
            )
            row = await cursor.fetchone()
        return _membership(row) if row is not None else None

    async def list_memberships(self, user_id: str) -> list[Membership]:
        # Login asks before any workspace is chosen: a SECURITY DEFINER function answers it.
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT workspace_id, user_id, role, created_at"
                " FROM eventcore.memberships_of_user(%s) ORDER BY created_at, seq",
                (user_id,),
            )
            rows = await cursor.fetchall()
        return [_membership(row) for row in rows]

    async def add_membership(self, membership: Membership) -> None:
        async with self._tenant(membership.workspace_id) as conn:
            cursor = await conn.execute(
                "INSERT INTO eventcore.memberships (workspace_id, user_id, role, created_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (workspace_id, user_id) DO NOTHING"
                " RETURNING user_id",
                (
                    membership.workspace_id,
                    membership.user_id,
                    membership.role.value,
                    membership.created_at,
                ),
            )
            if await cursor.fetchone() is None:
                raise Conflict(
                    "That user is already a member of this workspace.", code="already_member"
                )

    async def create_project(self, project: Project) -> None:
        async with self._tenant(project.workspace_id) as conn:
            await conn.execute(
                "INSERT INTO eventcore.projects (workspace_id, project_id, name, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (project.workspace_id, project.id, project.name, project.created_at),
            )

    async def get_project(self, workspace_id: str, project_id: str) -> Project | None:
        async with self._tenant(workspace_id) as conn:
            cursor = await conn.execute(
                "SELECT project_id, workspace_id, name, created_at FROM eventcore.projects"
                " WHERE workspace_id = %s AND project_id = %s",
                (workspace_id, project_id),
            )
            row = await cursor.fetchone()
        return Project(*row) if row is not None else None

    async def list_projects(self, workspace_id: str) -> list[Project]:
        async with self._tenant(workspace_id) as conn:
            cursor = await conn.execute(
                "SELECT project_id, workspace_id, name, created_at FROM eventcore.projects"
                " WHERE workspace_id = %s ORDER BY created_at, seq",
                (workspace_id,),
            )
            rows = await cursor.fetchall()
        return [Project(*row) for row in rows]

    async def create_api_key(self, key: ApiKey) -> None:
        async with self._tenant(key.workspace_id) as conn:
            await conn.execute(
                "INSERT INTO eventcore.api_keys (key_id, workspace_id, project_id, name, prefix,"
                " key_hash, created_at, revoked_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    key.id,
                    key.workspace_id,
                    key.project_id,
                    key.name,
                    key.prefix,
                    key.key_hash,
                    key.created_at,
                    key.revoked_at,
                ),
            )

    async def list_api_keys(self, workspace_id: str, project_id: str) -> list[ApiKey]:
        async with self._tenant(workspace_id) as conn:
            cursor = await conn.execute(
                "SELECT key_id, workspace_id, project_id, name, prefix, key_hash, created_at,"
                " revoked_at FROM eventcore.api_keys"
                " WHERE workspace_id = %s AND project_id = %s ORDER BY created_at, seq",
                (workspace_id, project_id),
            )
            rows = await cursor.fetchall()
        return [ApiKey(*row) for row in rows]

    async def revoke_api_key(self, workspace_id: str, key_id: str, at: datetime) -> ApiKey | None:
        async with self._tenant(workspace_id) as conn:
            cursor = await conn.execute(
                "UPDATE eventcore.api_keys SET revoked_at = coalesce(revoked_at, %s)"
                " WHERE workspace_id = %s AND key_id = %s RETURNING key_id, workspace_id,"
                " project_id, name, prefix, key_hash, created_at, revoked_at",
                (at, workspace_id, key_id),
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        revoked = ApiKey(*row)
        self._known_keys.pop(revoked.key_hash, None)
        return revoked

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key's record; while PostgreSQL cannot be reached, the record last read here.

        Ingest must keep accepting while the database is away (the batches wait in the queue
        for it), and a key is the one thing ingest reads from the database. So a key this
        process has read before is answered as last read when the database does not answer
        (after a short wait, then without asking for ``_KEY_LOOKUP_RETRY`` s while one lookup
        probes it); a key never read is Unavailable. A revocation made elsewhere meanwhile
        takes effect once the database answers again.
        """
        known = self._known_keys.get(key_hash)
        down_until = self._keys_unreachable_until
        if (
            known is not None
            and down_until is not None
            and (self._probing_keys or time.monotonic() < down_until)
        ):
            return known
        probing = down_until is not None
        self._probing_keys = self._probing_keys or probing
        try:
            # The tenant is what this lookup finds: a SECURITY DEFINER function answers it.
            async with self._connection(_KEY_LOOKUP_TIMEOUT) as conn:
                cursor = await conn.execute(
                    "SELECT key_id, workspace_id, project_id, name, prefix, key_hash,"
                    " created_at, revoked_at FROM eventcore.find_api_key(%s)",
                    (key_hash,),
                )
                row = await cursor.fetchone()
        except Unavailable:
            self._keys_unreachable_until = time.monotonic() + _KEY_LOOKUP_RETRY
            if known is None:
                raise
            return known
        finally:
            if probing:
                self._probing_keys = False
        self._keys_unreachable_until = None
        if row is None:
            self._known_keys.pop(key_hash, None)
            return None
        record = ApiKey(*row)
        self._known_keys[key_hash] = record
        self._known_keys.move_to_end(key_hash)
        if len(self._known_keys) > _KNOWN_KEYS:
            self._known_keys.popitem(last=False)
        return record

    # events

    async def append(self, batches: Sequence[IngestBatch]) -> AppendResult:
        # One CLIENT span per transaction: the worker's trace shows what the commit cost.
        with _tracer.start_as_current_span(
            "postgresql append",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "postgresql", "db.operation.name": "append"},
        ) as span:
            result = await self._append(batches)
            span.set_attribute("eventcore.inserted", result.inserted)
            span.set_attribute("eventcore.duplicates", result.duplicates)
            return result

    async def _append(self, batches: Sequence[IngestBatch]) -> AppendResult:
        by_workspace: dict[str, list[IngestBatch]] = {}
        total = 0
        for batch in batches:
            if batch.events:
                by_workspace.setdefault(batch.workspace_id, []).append(batch)
                total += len(batch.events)
        if not total:
            return AppendResult(0, 0)
        inserted = 0
        async with self._connection() as conn, conn.transaction():
            # Workspaces in one order for every writer: see _APPEND on lock order.
            for workspace_id in sorted(by_workspace):
                await conn.execute(
                    _SET_TENANT_FOR_COUNTS,
                    (workspace_id, _COUNTS_LOCK_CLASS, _counts_lock(workspace_id)),
                )
                cursor = await conn.execute(
                    _APPEND, _append_parameters(workspace_id, by_workspace[workspace_id])
                )
                row = await cursor.fetchone()
                assert row is not None
                inserted += row[0]
            failpoints.hit(failpoints.AFTER_INSERT)
        return AppendResult(inserted, total - inserted)

    async def count_series(
        self,
        workspace_id: str,
        project_id: str,
        granularity: Granularity,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
    ) -> list[CountPoint]:
        query = _SERIES.get((granularity, event_type is not None))
        if query is None:
            # Only minute and hour are stored; no other grain has rows.
            return []
        parameters = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "start": start,
            "end": end,
            "event_type": event_type,
        }
        async with self._tenant(workspace_id) as conn:
            cursor = await conn.execute(query, parameters, binary=True)
            rows = await cursor.fetchall()
        return [CountPoint(*row) for row in rows]

    async def event_type_totals(
        self, workspace_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[EventTypeCount]:
        parameters = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "start": start,
            "end": end,
        }
        async with self._tenant(workspace_id) as conn:
            cursor = await conn.execute(_TYPE_TOTALS, parameters, binary=True)
            rows = await cursor.fetchall()
        return [EventTypeCount(*row) for row in rows]

    async def list_events(
        self,
        workspace_id: str,
        project_id: str,
        *,
        limit: int,
        event_type: str | None = None,
        before: EventCursor | None = None,
    ) -> list[StoredEvent]:
        parameters: dict[str, Any] = {
            "workspace_id": workspace_id,
            "project_id": project_id,
            "limit": max(limit, 0),
            "event_type": event_type,
        }
        if before is not None:
            parameters["before_time"] = before.timestamp
            parameters["before_seq"] = before.seq
        query = _LIST_EVENTS[(event_type is not None, before is not None)]
        async with self._tenant(workspace_id) as conn:
            cursor = await conn.execute(query, parameters, binary=True)
            rows = await cursor.fetchall()
        return [StoredEvent(*row) for row in rows]

    async def rebuild_counts(self, workspace_id: str | None = None) -> int:
        if workspace_id is not None:
            return await self._rebuild_workspace(workspace_id)
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT eventcore.workspaces_with_events()")
            workspace_ids = [row[0] for row in await cursor.fetchall()]
        counted = 0
        for each in sorted(workspace_ids):
            counted += await self._rebuild_workspace(each)
        return counted

    async def _rebuild_workspace(self, workspace_id: str) -> int:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                _SET_TENANT_FOR_REBUILD,
                (workspace_id, _COUNTS_LOCK_CLASS, _counts_lock(workspace_id)),
            )
            await conn.execute(
                "DELETE FROM eventcore.counts_minute WHERE workspace_id = %s", (workspace_id,)
            )
            await conn.execute(
                "DELETE FROM eventcore.counts_hour WHERE workspace_id = %s", (workspace_id,)
            )
            cursor = await conn.execute(_RECOUNT, {"workspace_id": workspace_id})
            row = await cursor.fetchone()
        assert row is not None
        counted: int = row[0]
        return counted


def _membership(row: tuple[Any, ...]) -> Membership:
    workspace_id, user_id, role, created_at = row
    return Membership(workspace_id, user_id, Role(role), created_at)


def _append_parameters(workspace_id: str, batches: list[IngestBatch]) -> dict[str, Any]:
    """One workspace's events as parallel arrays, in input order."""
    project_ids: list[str] = []
    event_ids: list[str] = []
    timestamps: list[datetime] = []
    received: list[datetime] = []
    types: list[str] = []
    properties: list[str] = []
    for batch in batches:
        events = batch.events
        project_ids += [batch.project_id] * len(events)
        received += [batch.received_at] * len(events)
        event_ids += [event.id for event in events]
        timestamps += [event.timestamp for event in events]
        types += [event.type for event in events]
        properties += [str(event.properties, "utf-8") for event in events]
    return {
        "workspace_id": workspace_id,
        "project_ids": project_ids,
        "event_ids": event_ids,
        "timestamps": timestamps,
        "received": received,
        "types": types,
        "properties": properties,
    }
