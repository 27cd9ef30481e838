"""A fast loader of the analytics data set: N events across W workspaces, as eventcore stores them.

Run against a freshly migrated database as its owner: it adds a user, a workspace, a membership
and a project per workspace, COPYs the events straight into ``eventcore.events`` (in the
transaction that truncates it, so with FREEZE, and with the indexes built once afterwards rather
than row by row), then computes both count tables from the events with one
``INSERT .. SELECT .. GROUP BY`` each: exactly what the workers would have written for the same
events. Event times are spread over the last ``days`` days (so the default analytics windows
see them), with a skewed mix of types.

Events carry persons: each workspace has ``persons / workspaces`` of them, 80 % identified users
and 20 % anonymous visitors; 80 % of the events name a user (``user_id``), 15 % a visitor only
(``anonymous_id``), 5 % nobody. Every project declares two dimensions (:data:`DIMENSIONS`:
``plan``, 3 values and none in 5 % of the events, and ``context.page.path``, 50 values), and the
events carry their values, stored beside them (``dim_values``) as the workers store them; the
tallies (``dims_day``) are not written here. The persons' sketches are not written here: ``bench.run`` loads
with ``counts=False`` and follows the load with ``eventcore rollup rebuild``, the production
command, which makes the count tables, the sketches and the dimensions' tallies from the loaded
events (and checks every event's stored values, rewriting none).

    python -m bench.loader postgresql://postgres@127.0.0.1/<fresh db> [--events 10000000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

# A skewed mix, like real traffic: most events are page views.
TYPE_WEIGHTS = {
    "page_view": 50,
    "click": 20,
    "scroll": 10,
    "signup": 5,
    "login": 5,
    "purchase": 4,
    "add_to_cart": 4,
    "logout": 2,
}
# The properties' shapes; each event's also carries the data set's two declared dimensions
# (DIMENSIONS): a plan (3 values, or none) and a page path (PAGES values), drawn skewed.
SHAPES = [
    '"path":"/pricing","referrer":"https://example.com/"',
    '"path":"/docs/start","referrer":"https://search.example/"',
    '"path":"/","utm_source":"newsletter","n":3',
    '"sku":"sku-1042","total":42.5,"currency":"EUR"',
]
# Every loaded project declares these (projects.dimensions), as PUT .../dimensions would.
DIMENSIONS = ("plan", "context.page.path")
PLANS = {"free": 55, "pro": 30, "enterprise": 10, None: 5}
PAGES = 50


def _properties() -> tuple[list[str], list[str], list[float]]:
    """Every (shape, plan, page) combination's properties JSON, its stored declared values
    (``dim_values``, as the store computes them for DIMENSIONS), and the cumulative weights:
    shapes equally, plans as PLANS, page k of PAGES with weight 1 / (k + 1)."""
    from eventcore.dimensions import encode_values, values_of

    texts: list[str] = []
    values: list[str] = []
    weights: list[float] = []
    for shape in SHAPES:
        for plan, plan_weight in PLANS.items():
            for page in range(PAGES):
                plan_json = "" if plan is None else f',"plan":"{plan}"'
                path = "/" if page == 0 else f"/section-{page % 7}/page-{page}"
                text = f'{{{shape}{plan_json},"context":{{"page":{{"path":"{path}"}}}}}}'
                texts.append(text)
                values.append(encode_values(values_of(text.encode(), DIMENSIONS)))
                weights.append(plan_weight / (page + 1))
    cumulative: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    return texts, values, cumulative


PROPERTIES = _properties()
CHUNK_EVENTS = 50_000
# Who did each event: a user (user_id), an anonymous visitor only (anonymous_id), nobody known.
PERSON_MIX = {"user": 0.80, "anonymous": 0.15, "none": 0.05}
# The share of a workspace's persons that are identified users (the rest: anonymous visitors).
USER_SHARE = 0.8
_NULL = "\\N"  # COPY text format's NULL


@dataclass(frozen=True)
class Tenant:
    """One loaded workspace: who owns it and its one project."""

    workspace_id: str
    project_id: str
    user_id: str


@dataclass(frozen=True)
class Loaded:
    tenants: list[Tenant]
    events: int
    seconds: dict[str, float]
    newest: datetime


async def load(
    dsn: str,
    *,
    events: int,
    workspaces: int,
    persons: int = 1_000_000,
    days: int = 30,
    now: datetime | None = None,
    counts: bool = True,
) -> Loaded:
    """Load the data set into ``dsn`` (migrated, with no events yet); returns the tenants.

    Without ``counts`` the count tables are left empty, for ``eventcore rollup rebuild`` to fill
    (``bench.run`` runs it next: it would replace them anyway)."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    tenants = [
        Tenant(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(workspaces)
    ]
    seconds: dict[str, float] = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await _session(conn)
        began = time.perf_counter()
        async with conn.transaction():
            await _accounts(conn, tenants, now)
            event_indexes = await _drop_indexes(conn, "events")
            count_indexes: list[str] = []
            if counts:
                count_indexes += await _drop_indexes(conn, "counts_minute")
                count_indexes += await _drop_indexes(conn, "counts_hour")
            # Truncated in the same transaction, the table takes the rows already frozen.
            await conn.execute("TRUNCATE eventcore.events")
            await _copy_events(conn, tenants, events, persons, days, now)
            await conn.execute("SELECT setval('eventcore.event_seq', %s)", (max(events, 1),))
        seconds["copy_events"] = time.perf_counter() - began
        mark = time.perf_counter()
        # The indexes of the events and the count tables are built side by side.
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as other:
            await _session(other)
            if counts:
                await asyncio.gather(
                    _run_all(conn, event_indexes), _count_tables(other, count_indexes)
                )
            else:
                await _run_all(conn, event_indexes)
        seconds["index_and_count" if counts else "index"] = time.perf_counter() - mark
        mark = time.perf_counter()
        if counts:
            await conn.execute("VACUUM (ANALYZE) eventcore.counts_hour")
            await conn.execute("VACUUM (ANALYZE) eventcore.counts_minute")
        await conn.execute("ANALYZE eventcore.events")
        seconds["analyze"] = time.perf_counter() - mark
    seconds["total"] = sum(seconds.values())
    return Loaded(tenants, events, seconds, now)


async def analyze(dsn: str) -> None:
    """Vacuum and analyze what ``eventcore rollup rebuild`` rewrote (the count tables, the
    sketches and the dimensions' tallies: index-only scans need all-visible pages), as the load
    did before it."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for table in ("counts_hour", "counts_minute", "users_hour", "users_day", "dims_day"):
            await conn.execute(f"VACUUM (ANALYZE) eventcore.{table}")


async def _session(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute("SET work_mem = '256MB'")


async def _run_all(
    conn: psycopg.AsyncConnection[tuple[object, ...]], statements: list[str]
) -> None:
    for statement in statements:
        await conn.execute(statement)


async def _count_tables(
    conn: psycopg.AsyncConnection[tuple[object, ...]], indexes: list[str]
) -> None:
    """Both count tables from the events, as the workers' upserts would have left them."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO eventcore.counts_minute"
            " (workspace_id, project_id, bucket, event_type, count)"
            " SELECT workspace_id, project_id, date_trunc('minute', event_time, 'UTC'), type,"
            " count(*) FROM eventcore.events GROUP BY 1, 2, 3, 4"
        )
        await conn.execute(
            "INSERT INTO eventcore.counts_hour"
            " (workspace_id, project_id, bucket, event_type, count)"
            " SELECT workspace_id, project_id, date_trunc('hour', bucket, 'UTC'), event_type,"
            " sum(count) FROM eventcore.counts_minute GROUP BY 1, 2, 3, 4"
        )
        await _run_all(conn, indexes)


async def tenants_of(dsn: str) -> Loaded:
    """What an earlier load left in ``dsn`` (to measure again without loading again)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT p.workspace_id, p.project_id, m.user_id FROM eventcore.projects p"
            " JOIN eventcore.memberships m USING (workspace_id)"
            " JOIN eventcore.users u ON u.user_id = m.user_id"
            " WHERE u.password_hash = 'not-a-login' ORDER BY p.workspace_id"
        )
        tenants = [Tenant(*row) for row in await cursor.fetchall()]
        cursor = await conn.execute("SELECT count(*), max(event_time) FROM eventcore.events")
        row = await cursor.fetchone()
    assert row is not None
    return Loaded(tenants, int(row[0]), {"total": 0.0}, row[1].replace(second=0, microsecond=0))


async def _accounts(
    conn: psycopg.AsyncConnection[tuple[object, ...]], tenants: list[Tenant], now: datetime
) -> None:
    async with conn.cursor() as cursor:
        for table, rows in (
            (
                "users (user_id, email, password_hash, created_at)",
                [
                    (t.user_id, f"bench-{t.user_id}@example.com", "not-a-login", now)
                    for t in tenants
                ],
            ),
            (
                "workspaces (workspace_id, name, created_at)",
                [(t.workspace_id, f"bench {i}", now) for i, t in enumerate(tenants)],
            ),
            (
                "memberships (workspace_id, user_id, role, created_at)",
                [(t.workspace_id, t.user_id, "owner", now) for t in tenants],
            ),
            (
                "projects (workspace_id, project_id, name, created_at, dimensions)",
                [(t.workspace_id, t.project_id, "web", now, list(DIMENSIONS)) for t in tenants],
            ),
        ):
            async with cursor.copy(f"COPY eventcore.{table} FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row)


async def _drop_indexes(conn: psycopg.AsyncConnection[tuple[object, ...]], table: str) -> list[str]:
    """Drop the table's indexes and primary key; returns the statements that rebuild them."""
    cursor = await conn.execute(
        "SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
        " WHERE conrelid = %s::regclass AND contype = 'p'",
        (f"eventcore.{table}",),
    )
    constraints = await cursor.fetchall()
    cursor = await conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'eventcore'"
        " AND tablename = %s AND indexname NOT IN"
        " (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        (table, f"eventcore.{table}"),
    )
    indexes = await cursor.fetchall()
    rebuild = [
        f'ALTER TABLE eventcore.{table} ADD CONSTRAINT "{name}" {definition}'
        for name, definition in constraints
    ]
    rebuild += [definition for _, definition in indexes]
    for name, _ in constraints:
        await conn.execute(f'ALTER TABLE eventcore.{table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        await conn.execute(f'DROP INDEX eventcore."{name}"')
    return rebuild


def person_columns(number: int, persons: int) -> tuple[list[str], list[float]]:
    """The (user_id, anonymous_id) COPY columns of workspace ``number``'s ``persons`` persons,
    and nobody's, with the cumulative weights that give :data:`PERSON_MIX`."""
    users = max(1, round(persons * USER_SHARE))
    visitors = max(1, persons - users)
    columns = [f"{_NULL}\t{_NULL}"]
    columns += [f"{_NULL}\tanon-{number}-{k:x}" for k in range(visitors)]
    columns += [f"user-{number}-{k}\t{_NULL}" for k in range(users)]
    weights = [PERSON_MIX["none"]]
    weights += [PERSON_MIX["anonymous"] / visitors] * visitors
    weights += [PERSON_MIX["user"] / users] * users
    cumulative = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    return columns, cumulative


def _event_rows(
    tenant: Tenant,
    first: int,
    count: int,
    minutes: list[str],
    weighted_types: list[str],
    people: tuple[list[str], list[float]],
) -> bytes:
    """COPY text rows of one chunk. Times, types and properties are spread by cheap integer
    hashing of the event's number rather than by a random generator: the loader is bound by
    how fast rows can be written, and these spread just as evenly. Persons are drawn by a
    generator seeded with the chunk's first number (integer hashing would tie them to the
    types and times, whose hashes share factors): the same data set every run."""
    ws, project = tenant.workspace_id, tenant.project_id
    span = len(minutes)
    types = len(weighted_types)
    texts, values, weights = PROPERTIES
    columns, cumulative = people
    rng = random.Random(first)
    who = rng.choices(columns, cum_weights=cumulative, k=count)
    # Drawn after the persons, from the same generator: the persons are those of before.
    which = rng.choices(range(len(texts)), cum_weights=weights, k=count)
    rows = [
        f"{ws}\t{project}\te{i:x}\t{i + 1}\t{minutes[(i * 7919) % span]}:{i % 60:02d}+00\t"
        f"{minutes[(i * 7919) % span]}:{i % 60:02d}+00\t"
        f"{weighted_types[(i * 131) % types]}\t{texts[k]}\t{person}\t{values[k]}\n"
        for i, person, k in zip(range(first, first + count), who, which, strict=True)
    ]
    return "".join(rows).encode()


async def _copy_events(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
    tenants: list[Tenant],
    events: int,
    persons: int,
    days: int,
    now: datetime,
) -> None:
    start = now - timedelta(days=days)
    minutes = [
        (start + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M") for m in range(days * 1440)
    ]
    weighted_types = [name for name, weight in TYPE_WEIGHTS.items() for _ in range(weight)]
    per_tenant = [
        events // len(tenants) + (1 if k < events % len(tenants) else 0)
        for k in range(len(tenants))
    ]
    # Persons as the events: the same number in every workspace.
    persons_per_tenant = [
        persons // len(tenants) + (1 if k < persons % len(tenants) else 0)
        for k in range(len(tenants))
    ]
    loop = asyncio.get_running_loop()
    async with (
        conn.cursor() as cursor,
        cursor.copy(
            "COPY eventcore.events (workspace_id, project_id, event_id, seq, event_time,"
            " received_at, type, properties, user_id, anonymous_id, dim_values)"
            " FROM STDIN WITH (FREEZE)"
        ) as copy,
    ):
        first = 0
        pending: asyncio.Future[bytes] | None = None
        for number, (tenant, count) in enumerate(zip(tenants, per_tenant, strict=True)):
            people = person_columns(number, persons_per_tenant[number])
            done = 0
            while done < count:
                size = min(CHUNK_EVENTS, count - done)
                # Rows for the next chunk are made in a thread while this one is sent.
                chunk = loop.run_in_executor(
                    None, _event_rows, tenant, first + done, size, minutes, weighted_types, people
                )
                if pending is not None:
                    await copy.write(await pending)
                pending = chunk
                done += size
            first += count
        if pending is not None:
            await copy.write(await pending)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dsn", help="owner's URL of a freshly migrated database")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--workspaces", type=int, default=100)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    loaded = asyncio.run(
        load(
            args.dsn,
            events=args.events,
            workspaces=args.workspaces,
            persons=args.persons,
            days=args.days,
        )
    )
    print(f"loaded {loaded.events:,} events in {len(loaded.tenants)} workspaces: {loaded.seconds}")


if __name__ == "__main__":
    main()
