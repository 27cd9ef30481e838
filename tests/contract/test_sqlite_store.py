"""What only the SQLite store promises: its file survives restarts and crashes, shared safely."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from eventcore.adapters.sqlite import SCHEMA_VERSION, SchemaTooNew, SqliteStore
from eventcore.aggregation import Granularity, StoredGrain
from eventcore.audit import ActorType, AuditAction, AuditEntry
from eventcore.errors import AlreadyExists, DatabaseUnavailable
from eventcore.events import Event
from eventcore.persons import window_user_series
from eventcore.ports import AppendResult
from eventcore.tenancy import Role
from tests.contract.support import (
    EVERYTHING,
    T0,
    Model,
    api_key,
    assert_matches_model,
    at,
    batch,
    event,
    membership,
    project,
    user,
    workspace,
)

START, END = EVERYTHING


def spread(prefix: str, count: int) -> list[Event]:
    return [event(f"{prefix}{n}", ("view", "buy")[n % 2], at(n * 3)) for n in range(count)]


async def test_everything_survives_closing_and_reopening(tmp_path: Path) -> None:
    """Users, memberships, projects, keys, events and counts are all there after a reopen."""
    path = tmp_path / "eventcore.sqlite3"
    owner_user, owned = user("ada@example.com"), workspace()
    owner = membership(owned.id, owner_user.id, Role.OWNER)
    web = project(owned.id)
    key = api_key(web)
    batches = [batch(owned.id, web.id, *spread("e", 20))]
    model = Model()
    model.append(batches)

    async with await SqliteStore.open(path) as store:
        await store.create_signup(owner_user, owned, owner)
        await store.create_project(web)
        await store.create_api_key(key)
        revoked = await store.revoke_api_key(owned.id, key.id, at(5))
        await store.append(batches)
        listed_before = await store.list_events(owned.id, web.id, limit=100)

    async with await SqliteStore.open(path) as store:
        assert await store.get_user_by_email("ada@example.com") == owner_user
        assert await store.list_memberships(owner_user.id) == [owner]
        assert await store.list_projects(owned.id) == [web]
        assert await store.find_api_key(key.key_hash) == revoked
        assert await store.list_events(owned.id, web.id, limit=100) == listed_before
        await assert_matches_model(store, model, [(owned.id, web.id)], ["buy"])
        assert await store.append(batches) == AppendResult(0, 20)
        await store.append([batch(owned.id, web.id, event("later", timestamp=at(0)))])
        [later] = await store.list_events(owned.id, web.id, limit=1, event_type="page_view")
        assert later.seq > max(e.seq for e in listed_before)


async def test_a_committed_append_survives_the_process_being_killed(tmp_path: Path) -> None:
    """An append that returned is on disk even if the process dies right after, without closing."""
    path = tmp_path / "crash" / "eventcore.sqlite3"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from eventcore.adapters.sqlite import SqliteStore
        from tests.contract.support import batch, event

        async def main():
            store = await SqliteStore.open({str(path)!r})
            result = await store.append([batch("ws", "prj", *(event(f"e{{n}}") for n in range(50)))])
            assert result.inserted == 50
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    finished = subprocess.run(  # noqa: ASYNC221 - the child must die on its own, whole
        [sys.executable, "-c", script], cwd=Path.cwd(), check=False, capture_output=True
    )
    assert finished.returncode == -9, finished.stderr.decode()

    async with await SqliteStore.open(path) as store:
        assert len(await store.list_events("ws", "prj", limit=100)) == 50
        totals = await store.event_type_totals("ws", "prj", START, END)
        assert [(t.event_type, t.count) for t in totals] == [("page_view", 50)]


async def test_opening_creates_missing_directories(tmp_path: Path) -> None:
    """open creates the parent directories of a new database file."""
    path = tmp_path / "a" / "b" / "eventcore.sqlite3"

    async with await SqliteStore.open(path) as store:
        assert await store.list_projects("ws") == []

    assert path.is_file()


async def test_the_schema_is_versioned_and_applied_once(tmp_path: Path) -> None:
    """A new file gets the current schema version in WAL mode; reopening keeps data and version."""
    path = tmp_path / "eventcore.sqlite3"
    async with await SqliteStore.open(path) as store:
        await store.append([batch("ws", "prj", event("e1"))])
    async with await SqliteStore.open(path) as store:
        assert len(await store.list_events("ws", "prj", limit=10)) == 1

    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        connection.close()


async def test_a_file_from_a_newer_eventcore_is_refused(tmp_path: Path) -> None:
    """A database whose schema version is newer than this code knows is not opened."""
    path = tmp_path / "eventcore.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()

    with pytest.raises(SchemaTooNew):
        await SqliteStore.open(path)


async def test_every_key_and_index_of_tenant_data_starts_with_the_workspace(
    tmp_path: Path,
) -> None:
    """Every table of tenant data (events, counts, sketches, projects, keys, ...) is keyed and
    indexed by workspace_id first."""
    path = tmp_path / "eventcore.sqlite3"
    async with await SqliteStore.open(path):
        pass
    connection = sqlite3.connect(path)
    try:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        # users holds no tenant data; a membership is also found by its user at sign-in; a
        # workspace is keyed by its id, the workspace_id of everything else; audit_horizon
        # holds one time (the audit log's expiry), nobody's data.
        assert {"events", "counts_hour", "users_hour", "projects", "api_keys"} <= tables
        for table in sorted(tables - {"users", "memberships", "workspaces", "audit_horizon"}):
            indexes = connection.execute(f"PRAGMA index_list({table})").fetchall()
            assert indexes
            for index in indexes:
                name = index[1]
                columns = [c[2] for c in connection.execute(f"PRAGMA index_info({name})")]
                if columns in (["key_hash"], ["token_hash"]):
                    # Unique across tenants: no two keys (or invitations) share a secret's hash.
                    continue
                assert columns[0] == "workspace_id", (table, name, columns)
    finally:
        connection.close()


async def test_two_stores_on_one_file_still_store_each_event_once(tmp_path: Path) -> None:
    """Concurrent appends of overlapping batches through two connections count each event once."""
    path = tmp_path / "eventcore.sqlite3"
    events = spread("e", 60)
    async with await SqliteStore.open(path) as first, await SqliteStore.open(path) as second:
        results = await asyncio.gather(
            *(
                store.append([batch("ws", "prj", *events[start : start + 30])])
                for start in (0, 10, 20, 30)
                for store in (first, second)
            )
        )
        model = Model()
        model.append([batch("ws", "prj", *events)])

        assert sum(r.inserted for r in results) == 60
        assert sum(r.duplicates for r in results) == 8 * 30 - 60
        await assert_matches_model(first, model, [("ws", "prj")], ["buy"])
        await assert_matches_model(second, model, [("ws", "prj")], ["view"])


async def test_a_store_locked_by_another_writer_is_unavailable_then_recovers(
    tmp_path: Path,
) -> None:
    """When another process holds the write lock too long, append is DatabaseUnavailable, then
    works."""
    path = tmp_path / "eventcore.sqlite3"
    async with await SqliteStore.open(path, busy_timeout_ms=20) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(DatabaseUnavailable):
                await store.append([batch("ws", "prj", event("e1"))])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()

        assert await store.append([batch("ws", "prj", event("e1"))]) == AppendResult(1, 0)
        assert await store.count_series("ws", "prj", StoredGrain.HOUR, START, END) != []


async def test_closing_is_idempotent_and_a_closed_store_refuses_work(tmp_path: Path) -> None:
    """close can be called twice; using the store afterwards raises a clear error."""
    store = await SqliteStore.open(tmp_path / "eventcore.sqlite3")
    await store.close()
    await store.close()

    with pytest.raises(RuntimeError, match="closed"):
        await store.list_projects("ws")


async def test_synchronous_full_is_accepted_and_other_modes_are_not(tmp_path: Path) -> None:
    """open accepts synchronous FULL for power-loss durability and rejects unknown modes."""
    async with await SqliteStore.open(tmp_path / "full.sqlite3", synchronous="FULL") as store:
        assert await store.append([batch("ws", "prj", event("e1"))]) == AppendResult(1, 0)

    with pytest.raises(ValueError, match="synchronous"):
        await SqliteStore.open(tmp_path / "off.sqlite3", synchronous="OFF")  # type: ignore[arg-type]


async def test_a_reused_record_id_conflicts_instead_of_overwriting(tmp_path: Path) -> None:
    """Creating a project or key under an id already stored raises AlreadyExists (in eventcore's
    words, not SQLite's) and keeps the first."""
    async with await SqliteStore.open(tmp_path / "eventcore.sqlite3") as store:
        web = project("ws-a")
        key = api_key(web)
        await store.create_project(web)
        await store.create_api_key(key)

        with pytest.raises(AlreadyExists) as project_taken:
            await store.create_project(msgspec.structs.replace(web, name="Renamed"))
        with pytest.raises(AlreadyExists) as key_taken:
            await store.create_api_key(msgspec.structs.replace(key, key_hash="f" * 64))

        assert "constraint" not in project_taken.value.message + key_taken.value.message

        assert await store.list_projects("ws-a") == [web]
        assert await store.list_api_keys("ws-a", web.id) == [key]


async def test_every_process_on_one_file_sees_every_bump(tmp_path: Path) -> None:
    """Two caches over one SQLite file (two `serve --workers` processes): an answer one filed is
    not served by either once the other bumped the workspace's generation."""
    from eventcore.adapters.clock import ManualClock
    from eventcore.adapters.sqlite import SqliteQueryCache

    path = tmp_path / "shared.sqlite3"
    here_store, there_store = await SqliteStore.open(path), await SqliteStore.open(path)
    try:
        clock = ManualClock()
        here, there = SqliteQueryCache(here_store, clock), SqliteQueryCache(there_store, clock)
        generation, _ = await there.lookup("ws", "counts")
        await there.put("ws", "counts", generation, b'{"total":1}', 60)
        assert await there.lookup("ws", "counts") == (generation, b'{"total":1}')

        await here.bump(["ws"])

        assert await there.lookup("ws", "counts") == (generation + 1, None)
        assert await here.generation("ws") == await there.generation("ws") == generation + 1
        assert await there.generation("other-ws") == 0
    finally:
        await here_store.close()
        await there_store.close()


async def test_the_audit_log_refuses_every_change_and_deletion(tmp_path: Path) -> None:
    """Triggers make the embedded store's audit log append-only at the database too."""
    store = await SqliteStore.open(tmp_path / "audit.db")
    try:
        await store.record_audit(
            AuditEntry(
                id="audit-1",
                workspace_id="ws-1",
                at=T0,
                action=AuditAction.SIGNUP,
                actor_type=ActorType.USER,
                actor_id="user-1",
            )
        )
    finally:
        await store.close()
    connection = sqlite3.connect(tmp_path / "audit.db")
    try:
        for statement in (
            "UPDATE audit_log SET action = 'nothing.happened'",
            "DELETE FROM audit_log",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(statement)
        assert connection.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)
    finally:
        connection.close()


async def test_the_audit_logs_expiry_is_the_only_deletion_let_through(tmp_path: Path) -> None:
    """The trigger lets through the expiry's deletion of old entries, inside its transaction
    only: afterwards a DELETE of any entry is aborted again."""
    store = await SqliteStore.open(tmp_path / "audit.db")
    try:
        for n, minutes in enumerate((0, 30)):
            await store.record_audit(
                AuditEntry(
                    id=f"audit-{n}",
                    workspace_id="ws-1",
                    at=T0 + timedelta(minutes=minutes),
                    action=AuditAction.SIGNUP,
                    actor_type=ActorType.USER,
                    actor_id="user-1",
                )
            )
        assert await store.expire_audit_log(T0 + timedelta(minutes=10)) == 1
    finally:
        await store.close()
    connection = sqlite3.connect(tmp_path / "audit.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("DELETE FROM audit_log")
        assert connection.execute("SELECT id FROM audit_log").fetchall() == [("audit-1",)]
    finally:
        connection.close()


async def test_days_stored_before_day_sketches_are_answered_from_their_hours(
    tmp_path: Path,
) -> None:
    """A file whose days have hour sketches only (written before schema 11) answers unique
    users from the hours, as before; a day's next append starts its day sketch from its hours'
    union."""
    path = tmp_path / "eventcore.sqlite3"
    events = [event(f"e{n}", "view", at(97 * n), user_id=f"u{n % 13}") for n in range(60)]
    start, end = T0 - timedelta(hours=12), T0 + timedelta(days=4, hours=12)

    async def answers(store: SqliteStore) -> list[object]:
        found = []
        for granularity in (Granularity.HOUR, Granularity.DAY):
            rows = await store.user_window("ws", "web", start, end, granularity)
            series = window_user_series("web", granularity, start, end, rows)
            found.append((series.total, [(p.bucket, p.users) for p in series.series]))
        return found

    async with await SqliteStore.open(path) as store:
        await store.append([batch("ws", "web", *events)])
        before = await answers(store)
    with sqlite3.connect(path) as connection:
        assert connection.execute("DELETE FROM users_day").rowcount > 0
    async with await SqliteStore.open(path) as store:
        assert await answers(store) == before
        late = [
            event("late-1", "view", at(24 * 60 + 5), user_id="u1"),
            event("late-2", "view", at(24 * 60 + 6), user_id="newcomer"),
        ]
        await store.append([batch("ws", "web", *late)])
        every = events + late
        day_total, by_day = (await answers(store))[1]
    assert day_total == len({e.user_id for e in every})
    second_day = (T0 + timedelta(days=1)).replace(hour=0)
    assert dict(by_day)[second_day] == len(
        {e.user_id for e in every if e.timestamp.date() == second_day.date()}
    )
    with sqlite3.connect(path) as connection:
        days = connection.execute("SELECT DISTINCT day FROM users_day").fetchall()
    assert len(days) == 1
