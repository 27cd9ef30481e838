"""What every fault test needs: a distributed stack, a load generator that keeps a ledger of every
answer, restartable worker processes, draining, and the verdict (lost and duplicated events).

The verdict is taken twice: as the database owner (every stored row, both count tables, and a
recount from raw events) and through the public API (every listed event id and the analytics
total), so a fault that corrupts either side is caught.
"""

from __future__ import annotations

import itertools
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from eventcore.adapters.rabbitmq import QueueNames
from eventcore.adapters.rabbitmq._amqp import open_connection
from tests.support.postgres import fresh_database, require_server, run_coroutine
from tests.support.processes import (
    STOP_TIMEOUT_SECONDS,
    Process,
    Server,
    clean_environment,
    run_command,
    serve,
)
from tests.support.rabbitmq import AMQP_URL, delete_queues, require_rabbitmq, unique_names
from tests.support.redis import REDIS_URL, require_redis

PASSWORD = "correct horse battery staple"
# Every event of a fault test falls in this hour, so one analytics query counts them all.
HOUR = {"start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z"}
DRAIN_SECONDS = 90.0
# Queues empty and nothing stored for this long: what is missing is lost, not late.
STALL_SECONDS = 15.0


# The stack


@dataclass
class Stack:
    """A fresh database, unique queues and Redis prefix; ``settings`` is what processes get."""

    workdir: Path
    logs: Path
    settings: dict[str, str]
    dsn: str
    names: QueueNames
    prefix: str
    # The broker as the checks reach it: one URL, or a cluster's node URLs separated by commas.
    amqp_url: str = AMQP_URL

    def with_settings(self, **overrides: str) -> dict[str, str]:
        return {**self.settings, **{f"EVENTCORE_{k.upper()}": v for k, v in overrides.items()}}

    @contextmanager
    def api(self, name: str = "api", **overrides: str) -> Iterator[Server]:
        with serve(self.workdir, self.logs, name, self.with_settings(**overrides)) as server:
            yield server


@contextmanager
def distributed_stack(
    tmp_path: Path,
    *,
    database_port: int | None = None,
    redis_port: int | None = None,
    amqp_port: int | None = None,
    amqp_url: str | None = None,
    **extra: str,
) -> Iterator[Stack]:
    """A migrated fresh database, unique queue names and Redis prefix, all cleaned up afterwards.

    The ``*_port`` arguments point eventcore at a fault proxy instead of the server itself; the
    migration and every check of the test still go straight to the servers. ``amqp_url`` puts
    the queues on another broker (e.g. a cluster's nodes) instead of the one on 127.0.0.1:5672.
    """
    require_server()
    if amqp_url is None:
        run_coroutine(require_rabbitmq())
    run_coroutine(require_redis())
    names = unique_names(retry_delays=(0.2, 0.4, 0.8))
    prefix = f"ectest-{secrets.token_hex(4)}"
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    with fresh_database(migrated=False) as dsn:
        database = dsn.rsplit("/", 1)[1]
        settings = {
            "EVENTCORE_DATABASE_URL": dsn,
            "EVENTCORE_REDIS_URL": REDIS_URL,
            "EVENTCORE_REDIS_PREFIX": prefix,
            "EVENTCORE_AMQP_URL": amqp_url or AMQP_URL,
            "EVENTCORE_QUEUE_NAME": names.base,
            "EVENTCORE_QUEUE_RETRY_DELAYS": ",".join(str(d) for d in names.retry_delays),
            "EVENTCORE_JWT_SECRET": secrets.token_urlsafe(40),
            "EVENTCORE_WORKER_BATCH_WAIT_MS": "20",
            "EVENTCORE_WORKER_BATCH_EVENTS": "500",
            "EVENTCORE_LOG_FORMAT": "json",
            # Many workers at once: none of them may take the shared default metrics port.
            "EVENTCORE_WORKER_METRICS_PORT": "0",
            **{f"EVENTCORE_{k.upper()}": v for k, v in extra.items()},
        }
        migrated = run_command(["migrate"], workdir=tmp_path, settings=settings)
        assert migrated.returncode == 0, migrated.stderr
        if database_port is not None:
            settings["EVENTCORE_DATABASE_URL"] = (
                f"postgresql://postgres@127.0.0.1:{database_port}/{database}"
            )
        if redis_port is not None:
            settings["EVENTCORE_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        if amqp_port is not None:
            settings["EVENTCORE_AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:{amqp_port}/"
        try:
            yield Stack(tmp_path, logs, settings, dsn, names, prefix, amqp_url or AMQP_URL)
        finally:
            run_coroutine(delete_queues(names, amqp_url or AMQP_URL))
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
            client.close()


@dataclass(frozen=True)
class Tenant:
    token: str
    workspace_id: str
    project_id: str
    api_key: str


def open_tenant(api: Server, name: str) -> Tenant:
    """Sign up a user with a workspace, a project and an API key for it."""
    signup = api.client.post(
        "/v1/auth/signup",
        json={"email": f"{name}@example.com", "password": PASSWORD, "workspace": name},
    )
    assert signup.status_code == 201, signup.text
    token = signup.json()["access_token"]
    user = {"Authorization": f"Bearer {token}"}
    project = api.client.post("/v1/projects", json={"name": "web"}, headers=user)
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    key = api.client.post(f"/v1/projects/{project_id}/api-keys", json={"name": "k"}, headers=user)
    assert key.status_code == 201, key.text
    return Tenant(token, signup.json()["workspace_id"], project_id, key.json()["key"])


def events_body(ids: Iterable[str]) -> dict[str, Any]:
    return {
        "events": [
            {
                "id": event_id,
                "type": "click",
                "timestamp": f"2026-03-01T10:{n % 60:02}:{n * 7 % 60:02}Z",
                "properties": {"n": n},
            }
            for n, event_id in enumerate(ids)
        ]
    }


# Load


@dataclass
class Attempt:
    at: float
    outcome: str


@dataclass
class SentBatch:
    ids: list[str]
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return any(attempt.outcome == "202" for attempt in self.attempts)


class LoadGenerator:
    """Threads that post batches of events with unique ids and keep a ledger of every answer.

    A batch answered 429, 503 or not answered at all is sent again with the same ids after a
    short pause, as a well-behaved client does (unless ``resend`` is false), until it gets a 202
    or the generator is stopped. Anything else (a 500, a 4xx other than 429, a 503 without
    Retry-After or without the JSON error shape, a 202 that does not account for every event)
    is recorded in ``unexpected``, and :meth:`check` fails the test with it.
    """

    def __init__(
        self,
        base_url: str,
        tenant: Tenant,
        *,
        run: str,
        senders: int = 3,
        batch_events: int = 20,
        pause: float = 0.02,
        resend: bool = True,
        keepalive: bool = True,
        timeout: float = 20.0,
    ) -> None:
        self._base_url = base_url
        self._tenant = tenant
        self._run = run
        self._senders = senders
        self._batch_events = batch_events
        self._pause = pause
        self._resend = resend
        self._keepalive = keepalive
        self._timeout = timeout
        self._lock = threading.Lock()
        self._no_new_batches = threading.Event()
        self._give_up = threading.Event()
        self._threads: list[threading.Thread] = []
        self.batches: list[SentBatch] = []
        self.unexpected: list[str] = []

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(settle_within=0)

    def start(self) -> None:
        for number in range(self._senders):
            thread = threading.Thread(
                target=self._send_loop, args=(number,), name=f"load-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, settle_within: float = 60.0) -> None:
        """Start no new batch; keep resending unanswered ones for up to ``settle_within`` s."""
        self._no_new_batches.set()
        deadline = time.monotonic() + settle_within
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._give_up.set()
        for thread in self._threads:
            thread.join(30)
            assert not thread.is_alive(), "a load thread did not stop"

    def wait_for_acknowledged(self, count: int, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while len(self.acknowledged_batches()) < count:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"fewer than {count} batches acknowledged within {within} s: "
                    f"{dict(self.outcomes())} {self.unexpected[:3]}"
                )
            time.sleep(0.05)

    def acknowledged_batches(self) -> list[SentBatch]:
        with self._lock:
            return [batch for batch in self.batches if batch.acknowledged]

    @property
    def acknowledged_ids(self) -> set[str]:
        return {i for batch in self.acknowledged_batches() for i in batch.ids}

    @property
    def sent_ids(self) -> set[str]:
        with self._lock:
            return {i for batch in self.batches for i in batch.ids}

    def outcomes(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """How many attempts ended in each outcome between the two monotonic times."""
        with self._lock:
            return Counter(
                attempt.outcome
                for batch in self.batches
                for attempt in batch.attempts
                if since <= attempt.at <= until
            )

    def check(self) -> None:
        assert not self.unexpected, "unexpected answers:\n" + "\n".join(self.unexpected[:10])

    def _send_loop(self, number: int) -> None:
        limits = httpx.Limits(max_keepalive_connections=None if self._keepalive else 0)
        with httpx.Client(base_url=self._base_url, timeout=self._timeout, limits=limits) as client:
            for sequence in itertools.count():
                if self._no_new_batches.is_set():
                    return
                ids = [f"{self._run}-{number}-{sequence}-{n}" for n in range(self._batch_events)]
                batch = SentBatch(ids)
                with self._lock:
                    self.batches.append(batch)
                self._send(client, batch)
                time.sleep(self._pause)

    def _send(self, client: httpx.Client, batch: SentBatch) -> None:
        body = events_body(batch.ids)
        while not self._give_up.is_set():
            outcome, retry_after = self._post(client, body, len(batch.ids))
            with self._lock:
                batch.attempts.append(Attempt(time.monotonic(), outcome))
            if outcome == "202" or not self._resend or outcome.startswith("unexpected"):
                return
            self._give_up.wait(min(retry_after, 0.5))

    def _post(self, client: httpx.Client, body: dict[str, Any], size: int) -> tuple[str, float]:
        try:
            response = client.post(
                "/v1/ingest", json=body, headers={"X-API-Key": self._tenant.api_key}
            )
        except httpx.TransportError as exc:
            return type(exc).__name__, 0.1
        status = response.status_code
        if status == 202:
            receipt = response.json()
            if receipt["accepted"] + receipt["duplicates"] != size or receipt["rejected"]:
                return self._unexpected(f"202 not covering the batch: {receipt}"), 0
            return "202", 0
        if status in (429, 503):
            retry_after = response.headers.get("retry-after")
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                return self._unexpected(f"{status} without the error shape: {response.text}"), 0
            if retry_after is None or not retry_after.isdigit():
                return self._unexpected(f"{status} without Retry-After: {response.text}"), 0
            return f"{status}:{code}", float(retry_after)
        return self._unexpected(f"{status}: {response.text[:500]}"), 0

    def _unexpected(self, text: str) -> str:
        with self._lock:
            self.unexpected.append(text)
        return "unexpected"


# Workers


def spawn(stack: Stack, name: str, args: list[str], settings: Mapping[str, str]) -> Process:
    log = stack.logs / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "eventcore.entrypoints.cli", *args],
            cwd=stack.workdir,
            env=clean_environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Process(process, name, log)


class Workers:
    """`eventcore worker` processes in numbered slots; any can be killed and started again."""

    def __init__(self, stack: Stack, count: int, **overrides: str) -> None:
        self._stack = stack
        self._settings = stack.with_settings(**overrides)
        self._incarnations = itertools.count(1)
        self.slots: list[Process] = []
        self.every: list[Process] = []
        self.kills = 0
        for slot in range(count):
            self.slots.append(self._spawn(slot))

    def _spawn(self, slot: int) -> Process:
        process = spawn(
            self._stack, f"worker-{slot}-{next(self._incarnations)}", ["worker"], self._settings
        )
        self.every.append(process)
        return process

    def kill_and_restart(self, slot: int) -> None:
        """SIGKILL the worker in ``slot`` (no cleanup, no acks) and start a new one there."""
        self.slots[slot].kill()
        self.kills += 1
        self.slots[slot] = self._spawn(slot)

    def check_running(self) -> None:
        for process in self.slots:
            process.check_running()

    def wait_consuming(self, within: float = 30.0) -> None:
        """Until every running worker has started consuming (or fail if one exited)."""

        def consuming() -> bool:
            self.check_running()
            return all("rabbitmq.consumer_started" in p.output() for p in self.slots)

        eventually(consuming, within=within, what="every worker consuming")

    def terminate(self) -> list[int]:
        """SIGTERM every running worker once it consumes, as a process manager stops them;
        their exit statuses."""
        self.wait_consuming()
        for process in self.slots:
            process.process.send_signal(signal.SIGTERM)
        return [wait_for_exit(process, STOP_TIMEOUT_SECONDS) for process in self.slots]

    def kill_all(self) -> None:
        for process in self.every:
            process.kill()

    def output(self) -> str:
        return "\n".join(f"== {p.name}\n{p.output()[-3000:]}" for p in self.every)


@contextmanager
def workers(stack: Stack, count: int, **overrides: str) -> Iterator[Workers]:
    pool = Workers(stack, count, **overrides)
    try:
        yield pool
    finally:
        pool.kill_all()


class Killer:
    """A thread that SIGKILLs a random worker every ``min_gap``..``max_gap`` s and restarts it."""

    def __init__(self, pool: Workers, *, seed: int, min_gap: float, max_gap: float) -> None:
        self._pool = pool
        self._random = random.Random(seed)
        self._gaps = (min_gap, max_gap)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="killer", daemon=True)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self._random.uniform(*self._gaps)):
            self._pool.kill_and_restart(self._random.randrange(len(self._pool.slots)))


# The broker, Redis and the database, seen directly


def queue_depths(names: QueueNames, url: str = AMQP_URL) -> dict[str, int]:
    """Ready messages in every queue of the pipeline (unacked ones are not counted), read from
    the first node of ``url`` that answers."""

    async def depths() -> dict[str, int]:
        connection = await open_connection(url, within=10)
        try:
            channel = await connection.channel()
            found = {}
            for queue in names.queues:
                declared = await channel.queue_declare(queue, passive=True)
                found[queue] = int(declared.message_count or 0)
            return found
        finally:
            await connection.close()

    result: dict[str, int] = run_coroutine(depths())
    return result


def stored_ids(dsn: str, project_id: str) -> list[str]:
    """Every stored event id of the project, one entry per row, read as the owner."""
    with psycopg.connect(dsn, autocommit=True) as owner:
        rows = owner.execute(
            "SELECT event_id FROM eventcore.events WHERE project_id = %s", (project_id,)
        ).fetchall()
    return [row[0] for row in rows]


def committed_keys_in_redis(stack: Stack, tenant: Tenant) -> set[str]:
    """Event ids the idempotency fast path holds for the tenant's project."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        pattern = f"{stack.prefix}:{{{tenant.workspace_id}}}:ck:{tenant.project_id}:*"
        return {key.decode().rsplit(":", 1)[1] for key in client.scan_iter(match=pattern)}
    finally:
        client.close()


def eventually(check: Callable[[], bool], *, within: float, what: str) -> float:
    """Poll until ``check`` holds; the seconds it took. Fails saying ``what`` did not happen."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            pytest.fail(f"{what} did not happen within {within} s")
        time.sleep(0.1)
    return time.monotonic() - started


def drain(stack: Stack, tenant: Tenant, expected: set[str], within: float = DRAIN_SECONDS) -> float:
    """Wait until every expected id is stored and no queue holds a ready message; seconds taken.

    Fails early, counting the missing events, once the queues are empty and nothing has been
    stored for ``STALL_SECONDS``: those events are lost, not late.
    """
    main_and_retries = (*stack.names.main_queues, *stack.names.retry_queues)
    started = last_change = time.monotonic()
    last_seen: tuple[int, tuple[int, ...]] | None = None
    while True:
        stored = set(stored_ids(stack.dsn, tenant.project_id))
        depths = queue_depths(stack.names, stack.amqp_url)
        ready = tuple(depths[queue] for queue in main_and_retries)
        missing = len(expected - stored)
        if not missing and not any(ready):
            return time.monotonic() - started
        now = time.monotonic()
        if (len(stored), ready) != last_seen:
            last_seen, last_change = (len(stored), ready), now
        stalled = not any(ready) and now - last_change > STALL_SECONDS
        if stalled or now - started > within:
            pytest.fail(
                f"{missing} of {len(expected)} acknowledged events not stored after "
                f"{now - started:.0f} s ({'queues empty, nothing moving' if stalled else 'timeout'}"
                f"; ready messages {depths})"
            )
        time.sleep(0.1)


# The verdict


@dataclass
class Verdict:
    acknowledged: int
    stored_rows: int
    stored_distinct: int
    counted_minute: int
    counted_hour: int
    api_listed: int
    api_total: int
    lost: int
    phantom: int
    dead_lettered: int

    @property
    def duplicated(self) -> int:
        """Events stored or counted more than once, seen from any side."""
        return max(
            self.stored_rows - self.stored_distinct,
            self.counted_minute - self.stored_distinct,
            self.counted_hour - self.stored_distinct,
            self.api_listed - self.stored_distinct,
            self.api_total - self.stored_distinct,
            0,
        )

    def summary(self) -> dict[str, int]:
        return {
            "acknowledged": self.acknowledged,
            "stored": self.stored_rows,
            "lost": self.lost,
            "duplicated": self.duplicated,
        }


def api_event_ids(api: Server, tenant: Tenant) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"project_id": tenant.project_id, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = api.client.get(
            "/v1/events", params=params, headers={"Authorization": f"Bearer {tenant.token}"}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [event["id"] for event in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def api_total(api: Server, tenant: Tenant) -> int:
    response = api.client.get(
        "/v1/analytics/counts",
        params={"project_id": tenant.project_id, "granularity": "minute", **HOUR},
        headers={"Authorization": f"Bearer {tenant.token}"},
    )
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def verdict(
    stack: Stack, api: Server, tenant: Tenant, acknowledged: set[str], sent: set[str]
) -> Verdict:
    """Compare the ledger with the database (as owner) and the API, after draining."""
    rows = stored_ids(stack.dsn, tenant.project_id)
    distinct = set(rows)
    with psycopg.connect(stack.dsn, autocommit=True) as owner:
        minute, hour = (
            owner.execute(
                f"SELECT coalesce(sum(count), 0) FROM eventcore.counts_{grain}"
                " WHERE project_id = %s",
                (tenant.project_id,),
            ).fetchone()[0]  # type: ignore[index]
            for grain in ("minute", "hour")
        )
    listed = api_event_ids(api, tenant)
    assert set(listed) == distinct, "the API lists other events than the database holds"
    return Verdict(
        acknowledged=len(acknowledged),
        stored_rows=len(rows),
        stored_distinct=len(distinct),
        counted_minute=int(minute),
        counted_hour=int(hour),
        api_listed=len(listed),
        api_total=api_total(api, tenant),
        lost=len(acknowledged - distinct),
        phantom=len(distinct - sent),
        dead_lettered=queue_depths(stack.names, stack.amqp_url)[stack.names.dead_letter],
    )


def assert_exactly_once(stack: Stack, result: Verdict) -> None:
    """Nothing acknowledged lost, nothing stored or counted twice, counts equal to a recount."""
    assert result.lost == 0, f"{result.lost} acknowledged events were lost: {result}"
    assert result.duplicated == 0, f"{result.duplicated} events duplicated: {result}"
    assert result.phantom == 0, f"{result.phantom} stored events were never sent: {result}"
    assert result.dead_lettered == 0, f"batches were dead-lettered: {result}"
    assert (
        result.counted_minute
        == result.counted_hour
        == result.api_total
        == result.stored_distinct
        == result.stored_rows
    ), result
    assert counts_agree_with_events(stack.dsn), "the count tables disagree with a recount"


def counts_agree_with_events(dsn: str) -> bool:
    """Whether both count tables equal a recount of the stored events, in one snapshot (so
    that commits made meanwhile by running workers cannot make them differ)."""
    with psycopg.connect(dsn) as owner:
        owner.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with owner.transaction():
            for grain in ("minute", "hour"):
                differing = owner.execute(
                    f"""
                    WITH recount AS (
                        SELECT workspace_id, project_id, date_trunc('{grain}', event_time, 'UTC')
                               AS bucket, type AS event_type, count(*) AS count
                        FROM eventcore.events GROUP BY 1, 2, 3, 4
                    ), stored AS (
                        SELECT workspace_id, project_id, bucket, event_type, count
                        FROM eventcore.counts_{grain} WHERE count <> 0
                    )
                    SELECT count(*) FROM (
                        (SELECT * FROM recount EXCEPT ALL SELECT * FROM stored)
                        UNION ALL
                        (SELECT * FROM stored EXCEPT ALL SELECT * FROM recount)
                    ) AS differences
                    """
                ).fetchone()
                if differing is None or differing[0] != 0:
                    return False
    return True


def wait_for_exit(process: Process, within: float) -> int:
    try:
        return process.process.wait(within)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{process.name} did not exit within {within} s:\n{process.output()}")
