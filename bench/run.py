"""The benchmark: eventcore's figures beside the bare limits of its parts, measured in one run.

    python -m bench.run [--events 10000000] [--api-workers 2] [--workers 1] [--seconds 10]
                        [--sweep 1x1,2x1,2x2] [--profile] [--skip-load]

Against the real PostgreSQL, Redis and RabbitMQ on 127.0.0.1, in a fresh database
``eventcore_bench_<hex>`` with its own queue names and Redis prefix (all removed at the end):

1. bare limits: PostgreSQL unnest insert of the same rows, RabbitMQ confirmed publish of the same
   messages, a no-op Litestar endpoint on the same uvicorn settings (throughput and latency),
   the analytics SQL sent directly, SQLite inserts of the same rows;
2. batch ingest (100-event requests), 3. single-event ingest, 4. latency at a fixed offered load
   and the delay until an accepted event is visible, 5. analytics over the loaded data set,
   cached and uncached, while ingest runs, on the distributed profile with N API and M worker
   processes, and the persons' figures (unique users uncached and their error against the exact
   count, a 3-step funnel over the largest workspace, batch ingest with persons, and with persons
   and 2 declared dimensions, against without) and a breakdown by a declared dimension;
   6. the embedded profile's batch ingest and every process's peak RSS; with the loaded data
   set, an export, a person's deletion and a retention run (about 1M events expired) measured
   beside ingest.

Prints a table (each figure beside its bare limit and the ratio) and writes
bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg import sql

from bench import bare, scenarios
from bench.loader import Loaded, analyze, load
from bench.loader import Tenant as LoadedTenant
from bench.loadgen import http_request, percentile

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WRK_SCRIPT = ROOT / "bench" / "wrk" / "ingest.lua"
HOST = "127.0.0.1"
ADMIN_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
AMQP_URL = f"amqp://guest:guest@{HOST}:5672/"
REDIS_URL = f"redis://{HOST}:6379/15"  # a database of its own: other tests scan db 0
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# processes


@dataclass
class Proc:
    """A process the benchmark started, with the peak RSS of it and its children."""

    name: str
    popen: subprocess.Popen[bytes]
    peak_rss_mb: dict[str, float] = field(default_factory=dict)

    def tree(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.popen.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample_rss(self) -> None:
        """Remember each process's peak RSS (VmHWM: the kernel keeps the high-water mark)."""
        for number, process in enumerate(self.tree()):
            with contextlib.suppress(psutil.Error, OSError):
                status = Path(f"/proc/{process.pid}/status").read_text()
                match = re.search(r"VmHWM:\s+(\d+) kB", status)
                if match:
                    label = f"{self.name}[{number}]" if number else self.name
                    self.peak_rss_mb[label] = max(
                        self.peak_rss_mb.get(label, 0.0), int(match[1]) / 1024
                    )

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.tree():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def pids(self) -> list[int]:
        return [p.pid for p in self.tree()]


class Processes:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[Proc] = []
        self.rss: dict[str, float] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        log_file = (self.logs / f"{name}.log").open("ab")
        popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        proc = Proc(name, popen)
        self.running.append(proc)
        return proc

    def sample(self) -> None:
        for proc in self.running:
            proc.sample_rss()

    def stop(self, proc: Proc) -> None:
        proc.sample_rss()
        self.rss.update(proc.peak_rss_mb)
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(20)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(5)
        self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            self.stop(proc)

    def check_alive(self) -> None:
        for proc in self.running:
            if proc.popen.poll() is not None:
                tail = (self.logs / f"{proc.name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{tail}")


def wait_ready(url: str, processes: Processes, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


# wrk


def wrk(
    url: str,
    key: str,
    per_request: int,
    run_id: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 2,
    grace: float = 10.0,
    persons: bool = False,
) -> dict[str, Any]:
    """Flood ``url`` with wrk and bench/wrk/ingest.lua for ``seconds``; every request sent is
    answered within the ``grace`` that follows (the script idles then), so its counts are exact.
    With ``persons``, the events name persons (the script's header). Its result line, plus its
    own CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds + grace))}s",
            "--timeout",
            "10s",
            "-s",
            str(WRK_SCRIPT),
            url,
            "--",
            key,
            str(per_request),
            run_id,
            str(seconds),
            *(["persons"] if persons else []),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"^WRK_RESULT (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(match[1])
    # The first thread's request() is called once more, to check the script, and never sent.
    result["unanswered"] = result["sent"] - 1 - result["requests"]
    result["seconds"] = result["last"] - result["first"]
    result["requests_per_second"] = result["requests"] / result["seconds"]
    result["cpu_seconds"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    result["cpu_share"] = result["cpu_seconds"] / result["seconds"]
    result["connections"] = connections
    return result


def ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit(
            "bench: wrk is not installed (Debian: apt-get install -y wrk; `nox -s bench` does it)"
        )


# the run

# The steps --only may name (all by default); the bare limits always run.
STEPS = (
    "batch",
    "single",
    "latency",
    "analytics",
    "persons",
    "breakdown",
    "export",
    "deletion",
    "retention",
    "embedded",
)
# The funnel measured over the largest workspace: the loader's types, a week from the first step.
FUNNEL_STEPS = ["page_view", "signup", "purchase"]
# The retention step's retention: the loader spreads events over the last 30 days.
RETENTION_DAYS = 20
# The declared dimension broken down (the loader's projects declare it, with ~50 values).
BREAKDOWN_DIMENSION = "context.page.path"


@dataclass
class Tenant:
    """An ingest tenant made through the API: a workspace, a project per scenario and keys."""

    token: str
    workspace_id: str
    projects: dict[str, tuple[str, str]]  # scenario -> (project id, api key)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = secrets.token_hex(4)
        # --database: measure again on a data set an earlier run kept (--keep-database).
        self.reused = bool(args.database)
        self.database = args.database or f"eventcore_bench_{self.run_id}"
        self.dsn = f"postgresql://postgres@{HOST}:5432/{self.database}"
        self.queue = f"eventcore.bench.{self.run_id}"
        self.redis_prefix = f"ecbench{self.run_id}"
        self.secret = secrets.token_urlsafe(48)
        self.workdir = Path(tempfile.mkdtemp(prefix="eventcore-bench-"))
        self.processes = Processes(self.workdir)
        self.results: dict[str, Any] = {"notes": []}
        self.loaded: Loaded | None = None
        self.started = datetime.now(UTC)
        self.context = multiprocessing.get_context("spawn")
        self._pg_backends: set[int] = set()
        self._pg_cpu: dict[int, float] = {}
        self.only = set(args.only.split(",")) if args.only else set(STEPS)
        unknown = self.only - set(STEPS)
        if unknown:
            raise SystemExit(f"bench: --only takes {','.join(STEPS)}, not {','.join(unknown)}")

    # environment

    def env(self, *, distributed: bool, data_dir: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTCORE_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        env["EVENTCORE_LOG_LEVEL"] = self.args.log_level
        env["EVENTCORE_LOG_FORMAT"] = "json"
        # The limiter still runs (a Redis script per request) but never refuses: the benchmark
        # measures how fast eventcore accepts, not how it refuses.
        env["EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND"] = "1000000000"
        # Every benchmark tenant signs up from this one address.
        env["EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS"] = "0"
        env["EVENTCORE_WORKER_METRICS_PORT"] = "0"
        if distributed:
            env.update(
                {
                    "EVENTCORE_DATABASE_URL": self.dsn,
                    "EVENTCORE_REDIS_URL": REDIS_URL,
                    "EVENTCORE_REDIS_PREFIX": self.redis_prefix,
                    "EVENTCORE_AMQP_URL": AMQP_URL,
                    "EVENTCORE_QUEUE_NAME": self.queue,
                    "EVENTCORE_JWT_SECRET": self.secret,
                }
            )
        else:
            env["EVENTCORE_DATA_DIR"] = str(data_dir)
        return env

    def eventcore(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "eventcore.entrypoints.cli", *argv]

    # setup and cleanup

    def create_database(self) -> None:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        done = subprocess.run(
            self.eventcore("migrate"),
            cwd=ROOT,
            env=self.env(distributed=True),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"eventcore migrate failed: {done.stdout}{done.stderr}")

    def cleanup(self) -> None:
        self.processes.stop_all()
        keep = self.reused or self.args.keep_database
        with contextlib.suppress(Exception):
            if keep:
                raise RuntimeError("kept")
            with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.database)
                    )
                )
        with contextlib.suppress(Exception):
            asyncio.run(self._delete_queues())
        with contextlib.suppress(Exception):
            asyncio.run(self._delete_redis_keys())
        shutil.rmtree(self.workdir / "embedded", ignore_errors=True)
        shutil.rmtree(self.workdir / "noop", ignore_errors=True)

    async def _delete_queues(self) -> None:
        import aiormq

        from eventcore.adapters.rabbitmq import QueueNames
        from eventcore.adapters.rabbitmq._topology import delete_topology

        connection = await aiormq.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            await delete_topology(channel, QueueNames(self.queue))
        finally:
            await connection.close()

    async def _delete_redis_keys(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            batch = []
            async for key in client.scan_iter(match=f"{self.redis_prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await client.delete(*batch)
                    batch = []
            if batch:
                await client.delete(*batch)
        finally:
            await client.aclose()

    # step 0: the data set

    def reuse_data(self) -> None:
        from bench.loader import tenants_of

        self.loaded = asyncio.run(tenants_of(self.dsn))
        self.results["load"] = {"events": self.loaded.events, "reused": self.database}
        log(f"reusing {self.database}: {self.loaded.events:,} events")

    def load_data(self) -> None:
        log(f"loading {self.args.events:,} events into {self.database} ...")
        loaded = asyncio.run(
            load(
                self.dsn,
                events=self.args.events,
                workspaces=self.args.workspaces,
                persons=self.args.persons,
                counts=False,
            )
        )
        log(f"loaded in {loaded.seconds['total']:.0f} s; eventcore rollup rebuild ...")
        # The count tables and the sketches are made by the production command, from the
        # events just loaded.
        began = time.perf_counter()
        done = subprocess.run(
            self.eventcore("rollup", "rebuild"),
            cwd=ROOT,
            env=self.env(distributed=True),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"eventcore rollup rebuild failed: {done.stdout}{done.stderr}")
        seconds = dict(loaded.seconds)
        seconds["rollup_rebuild"] = time.perf_counter() - began
        mark = time.perf_counter()
        asyncio.run(analyze(self.dsn))
        seconds["analyze_after_rebuild"] = time.perf_counter() - mark
        seconds["total"] = loaded.seconds["total"] + seconds["rollup_rebuild"]
        seconds["total"] += seconds["analyze_after_rebuild"]
        self.loaded = Loaded(loaded.tenants, loaded.events, seconds, loaded.newest)
        self.results["load"] = {
            "events": self.loaded.events,
            "workspaces": len(self.loaded.tenants),
            "persons": self.args.persons,
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
        }
        log(f"loaded and rebuilt in {seconds['total']:.0f} s {self.results['load']['seconds']}")

    def largest_tenant(self) -> LoadedTenant:
        """The loaded workspace with the most events (by its hour counts; the first of equals)."""
        assert self.loaded is not None
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT workspace_id FROM eventcore.counts_hour WHERE workspace_id = ANY(%s)"
                " GROUP BY workspace_id ORDER BY sum(count) DESC, workspace_id LIMIT 1",
                ([t.workspace_id for t in self.loaded.tenants],),
            ).fetchone()
        assert row is not None
        return next(t for t in self.loaded.tenants if t.workspace_id == row[0])

    # step 1: bare limits

    def bare_limits(self) -> None:
        log("bare PostgreSQL unnest insert ...")
        self.results["bare_insert"] = asyncio.run(
            bare.bare_insert(self.dsn, rows=self.args.bare_rows)
        )
        log(f"  {self.results['bare_insert']['rows_per_second']:,.0f} rows/s")
        log("bare RabbitMQ confirmed publish ...")
        self.results["bare_publish"] = asyncio.run(
            bare.bare_publish(AMQP_URL, messages=self.args.bare_messages)
        )
        log(f"  {self.results['bare_publish']['events_per_second']:,.0f} events/s")
        if self.loaded is not None:
            log("bare analytics SQL ...")
            tenants = [(t.workspace_id, t.project_id) for t in self.loaded.tenants]
            raw = asyncio.run(
                bare.bare_query(self.dsn, tenants, newest=self.loaded.newest, queries=300)
            )
            self.results["bare_query"] = {
                name: {
                    "p50_ms": percentile(r["timings_ms"], 0.5),
                    "p99_ms": percentile(r["timings_ms"], 0.99),
                    "rows": r["rows"],
                }
                for name, r in raw.items()
            }
            if "persons" in self.only:
                self.bare_persons(tenants)
            if "breakdown" in self.only:
                self.bare_breakdown(tenants)
        self.results["bare_sqlite"] = bare_sqlite(self.workdir / "bare.sqlite3", rows=100_000)
        log(f"  SQLite {self.results['bare_sqlite']['rows_per_second']:,.0f} rows/s")
        self.bare_http()

    def bare_persons(self, tenants: list[tuple[str, str]]) -> None:
        assert self.loaded is not None
        log("bare persons SQL (sketches; funnel events) ...")
        users = asyncio.run(
            bare.bare_users(self.dsn, tenants, newest=self.loaded.newest, queries=300)
        )
        largest = self.largest_tenant()
        funnel = asyncio.run(
            bare.bare_funnel(
                self.dsn,
                largest.workspace_id,
                largest.project_id,
                steps=FUNNEL_STEPS,
                newest=self.loaded.newest,
                window=timedelta(days=self.args.funnel_window_days),
                queries=20,
            )
        )
        self.results["bare_persons"] = {
            "users_sql": {
                "p50_ms": percentile(users["sql_ms"], 0.5),
                "p99_ms": percentile(users["sql_ms"], 0.99),
                "rows": users["rows"],
            },
            "users_sql_and_merge": {
                "p50_ms": percentile(users["sql_and_merge_ms"], 0.5),
                "p99_ms": percentile(users["sql_and_merge_ms"], 0.99),
            },
            "funnel_sql": {
                "p50_ms": percentile(funnel["timings_ms"], 0.5),
                "p99_ms": percentile(funnel["timings_ms"], 0.99),
                "rows": funnel["rows"],
                "queries": len(funnel["timings_ms"]),
            },
        }
        b = self.results["bare_persons"]
        log(
            f"  sketches p99 {b['users_sql']['p99_ms']:.2f} ms ({users['rows']} rows), with the"
            f" merge {b['users_sql_and_merge']['p99_ms']:.2f} ms; funnel events p99"
            f" {b['funnel_sql']['p99_ms']:.1f} ms ({funnel['rows']:,} rows)"
        )

    def bare_breakdown(self, tenants: list[tuple[str, str]]) -> None:
        assert self.loaded is not None
        log(f"bare breakdown SQL ({BREAKDOWN_DIMENSION}'s daily tallies summed) ...")
        raw = asyncio.run(
            bare.bare_breakdown(
                self.dsn,
                tenants,
                dimension=BREAKDOWN_DIMENSION,
                newest=self.loaded.newest,
                queries=300,
            )
        )
        self.results["bare_breakdown"] = {
            "sql": {
                "p50_ms": percentile(raw["timings_ms"], 0.5),
                "p99_ms": percentile(raw["timings_ms"], 0.99),
                "rows": raw["rows"],
                "queries": len(raw["timings_ms"]),
            }
        }
        b = self.results["bare_breakdown"]["sql"]
        log(f"  totals p50 {b['p50_ms']:.2f} p99 {b['p99_ms']:.2f} ms ({b['rows']:,} rows)")

    def bare_http(self) -> None:
        n = self.args.api_workers
        port = free_port()
        env = self.env(distributed=False, data_dir=self.workdir / "noop")
        proc = self.processes.start(
            "noop-http",
            [sys.executable, "-m", "bench.noop_app", "--port", str(port), "--workers", str(n)],
            env,
        )
        try:
            base = f"http://{HOST}:{port}"
            wait_ready(f"{base}/health/live", self.processes)
            seconds = self.args.seconds
            log(f"bare HTTP no-op ({n} processes) ...")
            single = wrk(
                f"{base}/v1/ingest", "k", 1, "noop", seconds=seconds / 2, connections=64, grace=2
            )
            batch = wrk(
                f"{base}/v1/ingest", "k", 100, "noop", seconds=seconds / 2, connections=64, grace=2
            )
            latency = self.in_child(
                scenarios.single_events, HOST, port, "k", "noop", self.args.rate, seconds / 2
            )
            get_latency = self.in_child(
                scenarios.fixed_requests,
                HOST,
                port,
                [http_request("GET", "/v1/analytics/counts", HOST, [])],
                200.0,
                seconds / 2,
                False,
            )
            proc.sample_rss()
            self.results["bare_http"] = {
                "single": single,
                "batch": batch,
                "latency": latency,
                "get_latency": get_latency,
                "processes": n,
            }
            log(
                f"  {single['requests_per_second']:,.0f} single req/s, "
                f"{batch['requests_per_second']:,.0f} batch req/s, "
                f"p99 {latency['p99_ms']:.2f} ms at {self.args.rate:.0f}/s"
            )
        finally:
            self.processes.stop(proc)

    def in_child(self, target: Any, *args: Any) -> Any:
        """A scenario in a process of its own (the generator never shares our CPU slice)."""
        with self.context.Pool(1) as pool:
            return pool.apply(target, args)

    # the distributed profile

    @contextlib.contextmanager
    def distributed(self, api_workers: int, workers: int) -> Iterator[str]:
        port = free_port()
        env = self.env(distributed=True)
        serve = self.eventcore("serve", "--port", str(port), "--workers", str(api_workers))
        if self.args.server == "granian":
            # The same app (the factory `eventcore serve` runs in each process) on granian.
            serve = [
                str(Path(sys.executable).with_name("granian")),
                *("--interface", "asgi", "--factory", "--loop", "uvloop", "--no-ws"),
                *("--host", HOST, "--port", str(port), "--workers", str(api_workers)),
                *("--log-level", "warning"),
                "eventcore.entrypoints.http.app:serve_app",
            ]
        procs = [self.processes.start(f"api-x{api_workers}", serve, env)]
        for number in range(workers):
            procs.append(
                self.processes.start(f"worker-{number + 1}", self.eventcore("worker"), env)
            )
        try:
            base = f"http://{HOST}:{port}"
            wait_ready(f"{base}/health/ready", self.processes)
            # Every API process must be serving, not just the first one to answer.
            time.sleep(1.0 if api_workers > 1 else 0.2)
            yield base
        finally:
            for proc in procs:
                self.processes.stop(proc)

    def tenant(self, base: str, name: str, scenarios_: list[str]) -> Tenant:
        with httpx.Client(base_url=base, timeout=30) as client:
            signup = client.post(
                "/v1/auth/signup",
                json={
                    "email": f"{name}-{self.run_id}@example.com",
                    "password": PASSWORD,
                    "workspace": name,
                },
            )
            signup.raise_for_status()
            token = signup.json()["access_token"]
            user = {"Authorization": f"Bearer {token}"}
            projects = {}
            for scenario in scenarios_:
                project = client.post("/v1/projects", json={"name": scenario}, headers=user)
                project.raise_for_status()
                project_id = project.json()["id"]
                key = client.post(
                    f"/v1/projects/{project_id}/api-keys", json={"name": scenario}, headers=user
                )
                key.raise_for_status()
                projects[scenario] = (project_id, key.json()["key"])
        return Tenant(token, signup.json()["workspace_id"], projects)

    def committed(self, base: str, tenant: Tenant, scenario: str) -> int:
        """Events of the scenario's project that the API counts (what the workers committed)."""
        start = (self.started - timedelta(hours=2)).strftime("%Y-%m-%dT%H:00:00Z")
        end = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:00:00Z")
        answer = httpx.get(
            f"{base}/v1/analytics/counts",
            params={
                "project_id": tenant.projects[scenario][0],
                "granularity": "hour",
                "start": start,
                "end": end,
            },
            headers={"Authorization": f"Bearer {tenant.token}"},
            timeout=30,
        )
        answer.raise_for_status()
        return int(answer.json()["total"])

    def wait_committed(
        self, base: str, tenant: Tenant, scenario: str, accepted: int, timeout: float = 240
    ) -> tuple[int, float]:
        """Poll until the committed count reaches ``accepted``; (count, time it was seen)."""
        deadline = time.monotonic() + timeout
        count = 0
        while time.monotonic() < deadline:
            count = self.committed(base, tenant, scenario)
            if count >= accepted:
                return count, time.monotonic()
            self.processes.sample()
            time.sleep(0.05)
        raise RuntimeError(
            f"{scenario}: only {count} of {accepted} accepted events committed in {timeout} s"
        )

    def server_cpu(self) -> dict[str, float]:
        """CPU seconds so far of this database's PostgreSQL backends, and of RabbitMQ and
        Redis as a whole (shared with whatever else uses them)."""
        out = {"postgres (this database)": 0.0, "rabbitmq (all)": 0.0, "redis (all)": 0.0}
        with contextlib.suppress(Exception), psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
            ).fetchall()
            for (pid,) in rows:
                self._pg_backends.add(pid)
        for pid in list(self._pg_backends):
            try:
                times = psutil.Process(pid).cpu_times()
                self._pg_cpu[pid] = times.user + times.system
            except psutil.Error:
                self._pg_backends.discard(pid)
        out["postgres (this database)"] = sum(self._pg_cpu.values())
        for process in psutil.process_iter(["name"]):
            name = process.info["name"] or ""
            key = (
                "rabbitmq (all)"
                if name == "beam.smp"
                else "redis (all)"
                if name.startswith("redis-server")
                else None
            )
            if key:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    out[key] += times.user + times.system
        return out

    def ingest_rate(
        self,
        base: str,
        tenant: Tenant,
        scenario: str,
        per_request: int,
        profile: bool = False,
        persons: bool = False,
    ) -> dict[str, Any]:
        """wrk flat out for --seconds, then until the last accepted event is committed."""
        key = tenant.projects[scenario][1]
        cpu_before = {p.name: p.cpu_seconds() for p in self.processes.running}
        cpu_before |= self.server_cpu()
        profiler = self.start_profilers(scenario) if profile else []
        outcome: dict[str, Any] = {}

        def flood() -> None:
            try:
                outcome["result"] = wrk(
                    f"{base}/v1/ingest",
                    key,
                    per_request,
                    f"{scenario}-{self.run_id}",
                    seconds=self.args.seconds,
                    connections=self.args.connections,
                    grace=3.0,
                    persons=persons,
                )
            except Exception as exc:
                outcome["error"] = exc

        flooding = threading.Thread(target=flood)
        flooding.start()
        # The committed count, polled while wrk runs: the last commit may come before it ends.
        seen: list[tuple[float, int]] = []
        while flooding.is_alive():
            seen.append((time.monotonic(), self.committed(base, tenant, scenario)))
            self.processes.sample()
            time.sleep(0.05)
        flooding.join()
        if "error" in outcome:
            raise outcome["error"]
        result: dict[str, Any] = outcome["result"]
        accepted = result["accepted"]
        reached = [at for at, count in seen if count >= accepted]
        if reached:
            committed_at = reached[0]
        else:
            _, committed_at = self.wait_committed(base, tenant, scenario, accepted)
        self.stop_profilers(profiler)
        cpu_after = {p.name: p.cpu_seconds() for p in self.processes.running}
        cpu_after |= self.server_cpu()
        # wrk's times are CLOCK_MONOTONIC, as time.monotonic() is.
        elapsed = committed_at - result["first"]
        # A last look: nothing more than was accepted may ever be committed.
        time.sleep(0.5)
        count = self.committed(base, tenant, scenario)
        result.update(
            {
                "committed": count,
                "accepted_equals_committed": count == accepted,
                "seconds_to_last_commit": elapsed,
                "committed_per_second": count / elapsed,
                "absorbed_per_second": accepted / result["seconds"],
                "cpu_seconds": {
                    name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2)
                    for name in cpu_after
                }
                | {"wrk": round(result["cpu_seconds"], 2)},
                "non_202": {k: v for k, v in result["statuses"].items() if k != "202"},
            }
        )
        return result

    # profiling (py-spy)

    def start_profilers(self, scenario: str) -> list[tuple[subprocess.Popen[bytes], Path]]:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        started = []
        for proc in self.processes.running:
            for number, pid in enumerate(proc.pids()):
                if proc.name.startswith("api") and number == 0 and len(proc.pids()) > 1:
                    continue  # uvicorn's supervisor only watches its workers
                out = self.workdir / "profiles" / f"{scenario}-{proc.name}-{number}.txt"
                out.parent.mkdir(parents=True, exist_ok=True)
                started.append(
                    (
                        subprocess.Popen(
                            [
                                spy,
                                "record",
                                "--pid",
                                str(pid),
                                "--rate",
                                "100",
                                "--format",
                                "raw",
                                "--output",
                                str(out),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        ),
                        out,
                    )
                )
        return started

    def stop_profilers(self, profilers: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
        for popen, _ in profilers:
            popen.send_signal(signal.SIGINT)
        for popen, _ in profilers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(20)

    # steps 2-5

    def distributed_steps(self) -> None:
        n, m = self.args.api_workers, self.args.workers
        with self.distributed(n, m) as base:
            tenant = self.tenant(
                base,
                "ingest",
                ["batch", "batch_persons", "batch_dims", "single", "latency", "background"],
            )
            if "batch" in self.only:
                log(f"batch ingest, 100-event requests, {n} API x {m} workers ...")
                batch = self.ingest_rate(base, tenant, "batch", 100, profile=self.args.profile)
                self.results["batch_ingest"] = batch
                log(
                    f"  {batch['absorbed_per_second']:,.0f} events/s answered 202, "
                    f"{batch['committed_per_second']:,.0f} events/s committed "
                    f"({batch['committed']:,} events, accepted == committed: "
                    f"{batch['accepted_equals_committed']})"
                )
                # The same flood, its events naming persons (and so adding to the sketches),
                # right after: the pair's ratio is the cost of persons at ingest.
                log("batch ingest with persons ...")
                with_persons = self.ingest_rate(
                    base, tenant, "batch_persons", 100, profile=self.args.profile, persons=True
                )
                self.results["batch_ingest_persons"] = with_persons
                log(
                    f"  {with_persons['absorbed_per_second']:,.0f} events/s answered 202, "
                    f"{with_persons['committed_per_second']:,.0f} events/s committed "
                    f"({with_persons['committed_per_second'] / batch['committed_per_second']:.2f}"
                    " x without persons)"
                )
                # The third: the same events as the second, into a project that declares the
                # two dimensions they carry (each append then adds to the day's tallies too).
                self.declare_dimensions(base, tenant, "batch_dims")
                log("batch ingest with persons and 2 declared dimensions ...")
                with_dims = self.ingest_rate(
                    base, tenant, "batch_dims", 100, profile=self.args.profile, persons=True
                )
                self.results["batch_ingest_dimensions"] = with_dims
                log(
                    f"  {with_dims['absorbed_per_second']:,.0f} events/s answered 202, "
                    f"{with_dims['committed_per_second']:,.0f} events/s committed "
                    f"({with_dims['committed_per_second'] / batch['committed_per_second']:.2f}"
                    " x without persons and dimensions)"
                )
            if "single" in self.only:
                log("single-event ingest ...")
                single = self.ingest_rate(base, tenant, "single", 1, profile=self.args.profile)
                self.results["single_ingest"] = single
                log(
                    f"  {single['requests'] / single['seconds']:,.0f} requests/s answered 202, "
                    f"{single['committed_per_second']:,.0f} requests/s committed"
                )
            if "latency" in self.only:
                self.latency(base, tenant)
            if self.loaded is not None and self.only & {"analytics", "persons", "breakdown"}:
                self.analytics(base, tenant)
            if self.loaded is not None and "export" in self.only:
                self.export(base)
            if self.loaded is not None and "deletion" in self.only:
                self.deletion(base)
            if self.loaded is not None and "retention" in self.only:
                self.retention(base)
            self.processes.sample()

    def deletion(self, base: str) -> None:
        """One person's events deleted through POST /v1/deletions, in the largest workspace (the
        person with the most events there): seconds from the request to `done`, and the
        workspace's counts checked against a recount of what remains. It changes the data set
        (run it last, or on a copy)."""
        from eventcore.adapters.security import JwtCodec
        from eventcore.tenancy import Principal, Role

        largest = self.largest_tenant()
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT coalesce(user_id, anonymous_id) AS person, count(*) FROM eventcore.events"
                " WHERE workspace_id = %s AND project_id = %s"
                " AND coalesce(user_id, anonymous_id) IS NOT NULL"
                " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
                (largest.workspace_id, largest.project_id),
            ).fetchone()
            assert row is not None
            person, events = row
            before = conn.execute(
                "SELECT count(*) FROM eventcore.events WHERE workspace_id = %s AND project_id = %s",
                (largest.workspace_id, largest.project_id),
            ).fetchone()
        log(f"deletion of one person ({events} events) in the largest workspace ...")
        token = JwtCodec(self.secret, lifetime_seconds=3600).issue(
            Principal(largest.user_id, largest.workspace_id, Role.OWNER), datetime.now(UTC)
        )[0]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=60) as client:
            began = time.perf_counter()
            asked = client.post(
                "/v1/deletions",
                json={"project_id": largest.project_id, "user_ids": [person]},
                headers=headers,
            )
            if asked.status_code != 202:
                raise RuntimeError(f"deletion answered {asked.status_code}: {asked.text}")
            deletion_id = asked.json()["id"]
            while True:
                state = client.get(f"/v1/deletions/{deletion_id}", headers=headers).json()
                if state["status"] in ("done", "failed"):
                    break
                time.sleep(0.02)
            seconds = time.perf_counter() - began
        with psycopg.connect(self.dsn) as conn:
            after = conn.execute(
                "SELECT count(*) FROM eventcore.events WHERE workspace_id = %s AND project_id = %s",
                (largest.workspace_id, largest.project_id),
            ).fetchone()
            counted = conn.execute(
                "SELECT sum(count) FROM eventcore.counts_hour"
                " WHERE workspace_id = %s AND project_id = %s",
                (largest.workspace_id, largest.project_id),
            ).fetchone()
        assert before is not None
        assert after is not None
        assert counted is not None
        result = {
            "person_events": events,
            "project_events_before": before[0],
            "status": state["status"],
            "events_deleted": state["events_deleted"],
            "seconds": round(seconds, 2),
            "counts_equal_remaining_events": int(counted[0]) == after[0],
        }
        self.results["deletion"] = result
        log(
            f"  {state['status']}: {state['events_deleted']:,} events deleted in"
            f" {seconds:.2f} s (project of {before[0]:,} events); counts == events left:"
            f" {result['counts_equal_remaining_events']}"
        )

    def retention(self, base: str) -> None:
        """A retention of RETENTION_DAYS on the largest workspace's project, given through
        PATCH /v1/projects/{id}, with --retention-events (1M) of its events past it (the loaded
        ones older than that, and as many more loaded into it, older still, as it takes);
        single-event ingest into a workspace of its own at a fixed rate (the latency step's, in
        an open loop) before and while `eventcore retention run` expires them: the P99 of the
        202s and of the time until an accepted event is visible, before and during, and the
        run's seconds; the project's counts checked against the events left. It changes the
        data set (run it last, or on a copy)."""
        from eventcore.adapters.security import JwtCodec
        from eventcore.tenancy import Principal, Role

        largest = self.largest_tenant()
        target = self.args.retention_events
        scope = (largest.workspace_id, largest.project_id)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            older = conn.execute(
                "SELECT count(*) FROM eventcore.events WHERE workspace_id = %s AND project_id = %s"
                " AND event_time < now() - %s * interval '1 day'",
                (*scope, RETENTION_DAYS),
            ).fetchone()
            assert older is not None
            extra = max(0, target - older[0])
            dead = conn.execute(
                "SELECT n_dead_tup FROM pg_stat_user_tables"
                " WHERE relid = 'eventcore.events'::regclass"
            ).fetchone()
            if extra and dead is not None and dead[0]:
                # A run on a kept data set again: the previous run's expired rows are dead
                # tuples still (and dead entries in events_newest, which every chunk would scan
                # past), unless vacuumed; the data set is put back as it was loaded.
                log(f"vacuuming the events table ({dead[0]:,} dead rows) ...")
                conn.execute("VACUUM eventcore.events")
            if extra:
                # The loaded project is smaller than that: old events of its own, spread over
                # the 10 days before the retention's edge (less an hour), then counted by the
                # production command.
                log(f"loading {extra:,} events older than {RETENTION_DAYS} days ...")
                conn.execute(
                    "INSERT INTO eventcore.events (workspace_id, project_id, event_id, event_time,"
                    " received_at, type, properties, user_id)"
                    " SELECT %s, %s, 'expiring-' || g, now() - %s * interval '1 day'"
                    " - interval '1 hour' - (g * 864000::bigint / %s) * interval '1 second',"
                    " now(), (ARRAY['page_view','signup','purchase'])[1 + g %% 3],"
                    ' \'{"path":"/pricing","plan":"pro"}\'::json,'
                    " 'expiring-' || (g %% 50000) FROM generate_series(1, %s) AS g",
                    (*scope, RETENTION_DAYS, extra, extra),
                )
                conn.execute("ANALYZE eventcore.events")
                rebuilt = subprocess.run(
                    self.eventcore("rollup", "rebuild", "--workspace", largest.workspace_id),
                    cwd=ROOT,
                    env=self.env(distributed=True),
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if rebuilt.returncode != 0:
                    raise RuntimeError(f"rollup rebuild failed: {rebuilt.stdout}{rebuilt.stderr}")
            total_row = conn.execute(
                "SELECT count(*) FROM eventcore.events WHERE workspace_id = %s AND project_id = %s",
                scope,
            ).fetchone()
        assert total_row is not None
        total, days = total_row[0], RETENTION_DAYS
        # What the load wrote is on disk before the "before" load starts (a checkpoint, with its
        # fsyncs), so that neither phase measures the writeback of the load.
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute("CHECKPOINT")
        log(
            f"retention of {days} days on the largest workspace's project ({total:,} events,"
            f" {older[0] + extra:,} past it) ..."
        )
        token = JwtCodec(self.secret, lifetime_seconds=3600).issue(
            Principal(largest.user_id, largest.workspace_id, Role.OWNER), datetime.now(UTC)
        )[0]
        port = int(base.rsplit(":", 1)[1])
        # A workspace of its own, a project per phase: each phase's probes (event types of
        # their own) are seen in its project's counts only.
        ingest = self.tenant(base, "retention", ["before", "during"])
        start = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:00Z")
        end = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:00Z")
        # The latency step's rate (the machine carries it), else a quarter of --rate.
        rate = self.results.get("latency", {}).get("rate", self.args.rate / 4)

        def load(phase: str) -> dict[str, Any]:
            project_id, key = ingest.projects[phase]
            poll_path = (
                f"/v1/analytics/counts?project_id={project_id}&granularity=minute"
                f"&start={start}&end={end}"
            )
            result: dict[str, Any] = self.in_child(
                scenarios.ingest_latency,
                HOST,
                port,
                key,
                f"ret-{phase}-{self.run_id}",
                rate,
                self.args.seconds,
                20,
                poll_path,
                ingest.token,
                0.02,
            )
            return result

        before = load("before")
        with httpx.Client(base_url=base, timeout=60) as client:
            changed = client.patch(
                f"/v1/projects/{largest.project_id}",
                json={"retention_days": days},
                headers={"Authorization": f"Bearer {token}"},
            )
            if changed.status_code != 200:
                raise RuntimeError(f"PATCH answered {changed.status_code}: {changed.text}")
        wal_before = _wal_and_checkpoints()
        began = time.perf_counter()
        running = subprocess.Popen(
            self.eventcore("retention", "run"),
            cwd=ROOT,
            env=self.env(distributed=True),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        finished: list[float] = []

        def wait_for_the_run() -> None:
            running.wait()
            finished.append(time.perf_counter())

        waiting = threading.Thread(target=wait_for_the_run)
        waiting.start()
        # The load starts once the run deletes (its statement is seen in pg_stat_activity), so
        # that it measures the expiry beside ingest, not a Python process starting up on the
        # same cores; a run that ends first is measured anyway (its overlap tells).
        deleting = None
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            while running.poll() is None and deleting is None:
                if admin.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = %s"
                    " AND query LIKE '%%DELETE FROM eventcore.events%%'",
                    (self.database,),
                ).fetchone():
                    deleting = time.perf_counter()
                time.sleep(0.01)
        load_began = time.perf_counter()
        during = load("during")
        out, err = running.communicate(timeout=600)
        waiting.join()
        ended = finished[0]
        seconds = ended - began
        if running.returncode != 0:
            raise RuntimeError(f"eventcore retention run failed: {out}{err}")
        wal_after = _wal_and_checkpoints()
        with psycopg.connect(self.dsn) as conn:
            left = conn.execute(
                "SELECT count(*) FROM eventcore.events WHERE workspace_id = %s AND project_id = %s",
                (largest.workspace_id, largest.project_id),
            ).fetchone()
            counted = conn.execute(
                "SELECT coalesce(sum(count), 0) FROM eventcore.counts_hour"
                " WHERE workspace_id = %s AND project_id = %s",
                (largest.workspace_id, largest.project_id),
            ).fetchone()
        assert left is not None
        assert counted is not None
        expired = total - left[0]
        result = {
            "retention_days": days,
            "project_events_before": total,
            "events_expired": expired,
            "seconds": round(seconds, 2),
            "said": out.strip().splitlines()[-1] if out.strip() else "",
            # From the process start to its first delete (imports, connecting, settings).
            "seconds_to_first_delete": round(deleting - began, 2) if deleting else None,
            # The share of the "during" load the run overlapped (1: it ran the whole time).
            "overlap": round(max(0.0, min(1.0, (ended - load_began) / self.args.seconds)), 2),
            "rate": rate,
            "before": before,
            "during": during,
            "counts_equal_remaining_events": int(counted[0]) == left[0],
            # The server's WAL and checkpoints from the run's start to its end (the whole
            # server's: other databases' writes included).
            "server": {name: wal_after[name] - wal_before[name] for name in wal_after},
        }
        self.results["retention"] = result
        log(
            f"  {expired:,} events expired in {seconds:.2f} s; ingest 202 p99 {before['p99_ms']:.2f}"
            f" -> {during['p99_ms']:.2f} ms, visible p99 {before['visible']['p99_ms']:.0f} ->"
            f" {during['visible']['p99_ms']:.0f} ms; counts == events left:"
            f" {result['counts_equal_remaining_events']}"
        )

    def export(self, base: str) -> None:
        """The largest workspace's project streamed through GET /v1/events/export, against the
        bare limit of reading the same rows in the same order with psycopg (a server-side
        cursor, as the database's owner); and how much the API processes' resident memory grew
        while they streamed it (each process's VmHWM, reset just before, minus its RSS)."""
        from eventcore.adapters.security import JwtCodec
        from eventcore.tenancy import Principal, Role

        largest = self.largest_tenant()
        log(f"export of the largest workspace ({largest.workspace_id}) ...")
        began = time.perf_counter()
        rows = 0
        with psycopg.connect(self.dsn) as conn, conn.cursor(name="bare_export") as cursor:
            cursor.itersize = 2000
            cursor.execute(
                "SELECT event_id, type, event_time, received_at, properties, seq, user_id,"
                " anonymous_id FROM eventcore.events WHERE workspace_id = %s AND project_id = %s"
                " ORDER BY event_time, seq",
                (largest.workspace_id, largest.project_id),
            )
            for _ in cursor:
                rows += 1
        bare_seconds = time.perf_counter() - began

        token = JwtCodec(self.secret, lifetime_seconds=3600).issue(
            Principal(largest.user_id, largest.workspace_id, Role.OWNER), datetime.now(UTC)
        )[0]
        self.processes.sample()  # the peaks so far, before the export's own are measured
        api = [
            p for proc in self.processes.running if proc.name.startswith("api") for p in proc.pids()
        ]
        before = {pid: _status_kib(pid, "VmRSS") for pid in api}
        for pid in api:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        lines = size = 0
        began = time.perf_counter()
        with (
            httpx.Client(base_url=base, timeout=600) as client,
            client.stream(
                "GET",
                "/v1/events/export",
                params={"project_id": largest.project_id},
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            if response.status_code != 200:
                raise RuntimeError(f"export answered {response.status_code}: {response.read()!r}")
            for chunk in response.iter_bytes():
                lines += chunk.count(b"\n")
                size += len(chunk)
        seconds = time.perf_counter() - began
        grown = max((_status_kib(pid, "VmHWM") - before[pid]) / 1024 for pid in api)
        result = {
            "events": lines,
            "bytes": size,
            "seconds": round(seconds, 2),
            "events_per_second": round(lines / seconds),
            "megabytes_per_second": round(size / seconds / 2**20, 1),
            "api_rss_growth_mb": round(grown, 1),
            "bare_rows": rows,
            "bare_seconds": round(bare_seconds, 2),
            "bare_rows_per_second": round(rows / bare_seconds),
            "ratio_to_bare": round((lines / seconds) / (rows / bare_seconds), 2),
        }
        if lines != rows:
            raise RuntimeError(f"export streamed {lines} events of the {rows} stored")
        self.results["export"] = result
        log(
            f"  {result['events_per_second']:,} events/s ({result['megabytes_per_second']} MB/s,"
            f" {lines:,} events), {result['ratio_to_bare']} x the bare read"
            f" ({result['bare_rows_per_second']:,} rows/s); API RSS grew"
            f" {result['api_rss_growth_mb']} MB"
        )

    def declare_dimensions(self, base: str, tenant: Tenant, scenario: str) -> None:
        """PUT the loader's two dimensions on the scenario's project (as a user would)."""
        from bench.loader import DIMENSIONS

        project_id = tenant.projects[scenario][0]
        answer = httpx.put(
            f"{base}/v1/projects/{project_id}/dimensions",
            json={"properties": list(DIMENSIONS)},
            headers={"Authorization": f"Bearer {tenant.token}"},
            timeout=30,
        )
        answer.raise_for_status()
        # The API processes cache a project for a second: let every one see the declaration.
        time.sleep(2.0)

    def latency(self, base: str, tenant: Tenant) -> None:
        port = int(base.rsplit(":", 1)[1])
        project_id, key = tenant.projects["latency"]
        start = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:00Z")
        end = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:00Z")
        poll_path = (
            f"/v1/analytics/counts?project_id={project_id}&granularity=minute"
            f"&start={start}&end={end}"
        )
        rate = self.args.rate
        # A fixed load must be one the machine can carry, or the figure is of a growing queue:
        # above half the single-event capacity just measured, it is scaled down to that half.
        capacity = self.results.get("single_ingest", {}).get("committed_per_second", 0.0)
        if capacity and rate > capacity / 2:
            self.results["notes"].append(
                f"This machine commits {capacity:,.0f} single-event requests/s at most (step 3), so"
                f" the fixed load was scaled down from {rate:,.0f} to {capacity / 2:,.0f}"
                " requests/s (half the capacity)."
            )
            rate = capacity / 2
        for attempt in range(3):
            log(f"latency at {rate:,.0f} single-event requests/s (open loop) ...")
            result = self.in_child(
                scenarios.ingest_latency,
                HOST,
                port,
                key,
                f"lat{attempt}-{self.run_id}",
                rate,
                self.args.seconds,
                20,
                poll_path,
                tenant.token,
                0.02,
            )
            result["rate"] = rate
            ok = result["statuses"].get("202", 0) >= 0.99 * result["requests"]
            if ok and result["p99_ms"] < 1000:
                break
            self.results["notes"].append(
                f"The machine could not serve {rate:,.0f} requests/s (p99 {result['p99_ms']:.0f} ms,"
                f" answers {result['statuses']}); the rate was halved."
            )
            rate /= 2
        self.results["latency"] = result
        log(
            f"  202 p50 {result['p50_ms']:.2f} p99 {result['p99_ms']:.2f} "
            f"p99.9 {result['p999_ms']:.2f} ms; visible p99 {result['visible']['p99_ms']:.0f} ms"
            f" (generator CPU {result['generator_cpu_share']:.0%})"
        )

    def analytics(self, base: str, tenant: Tenant) -> None:
        from eventcore.adapters.security import JwtCodec
        from eventcore.tenancy import Principal, Role

        assert self.loaded is not None
        port = int(base.rsplit(":", 1)[1])
        codec = JwtCodec(self.secret, lifetime_seconds=3600)
        now = datetime.now(UTC)
        tokens = [
            codec.issue(Principal(t.user_id, t.workspace_id, Role.OWNER), now)[0]
            for t in self.loaded.tenants
        ]
        end = self.loaded.newest.replace(minute=0) + timedelta(hours=1)

        def requests(path: str, shifts: range) -> list[bytes]:
            made = []
            for shift in shifts:
                for t, token in zip(self.loaded.tenants, tokens, strict=True):  # type: ignore[union-attr]
                    window_end = end - timedelta(hours=shift)
                    window_start = window_end - timedelta(days=30)
                    query = (
                        f"{path}?project_id={t.project_id}"
                        f"&start={window_start:%Y-%m-%dT%H:%M:%SZ}&end={window_end:%Y-%m-%dT%H:%M:%SZ}"
                    )
                    if path.endswith(("counts", "users")):
                        query += "&granularity=hour"
                    made.append(
                        http_request("GET", query, HOST, [("Authorization", f"Bearer {token}")])
                    )
            return made

        seconds = self.args.analytics_seconds
        uncached_rate = self.args.uncached_rate
        shifts = range(1, 2 + int(uncached_rate * seconds) // len(tokens))
        cached_rate = self.args.cached_rate
        # name: (requests, rate, seconds, warm)
        plans: dict[str, tuple[list[bytes], float, float, bool]] = {}
        if "analytics" in self.only:
            plans["counts_cached"] = (
                requests("/v1/analytics/counts", range(0, 1)),
                cached_rate,
                seconds,
                True,
            )
            plans["counts_uncached"] = (
                requests("/v1/analytics/counts", shifts),
                uncached_rate,
                seconds,
                False,
            )
            plans["event_types_cached"] = (
                requests("/v1/analytics/event-types", range(0, 1)),
                cached_rate,
                seconds,
                True,
            )
            plans["event_types_uncached"] = (
                requests("/v1/analytics/event-types", range(shifts.stop, 2 * shifts.stop)),
                uncached_rate,
                seconds,
                False,
            )
        largest = self.largest_tenant()
        if "persons" in self.only:
            # The counts' uncached windows (answers of their own in the cache): every request
            # a window never asked before, so each one merges its 720 hours' sketches.
            plans["users_uncached"] = (
                requests("/v1/analytics/users", shifts),
                uncached_rate,
                seconds,
                False,
            )
            # The funnel over the largest workspace, each request's window an hour earlier
            # than the one before (a funnel's answer is cached by its query).
            funnel_seconds = self.args.funnel_seconds
            asked = int(self.args.funnel_rate * funnel_seconds) + 2
            largest_token = tokens[self.loaded.tenants.index(largest)]
            plans["funnel_uncached"] = (
                [
                    self.funnel_request(largest, largest_token, end, shift)
                    for shift in range(1, 1 + 2 * asked)
                ],
                self.args.funnel_rate,
                funnel_seconds,
                False,
            )
        if "breakdown" in self.only:
            # A breakdown is by whole UTC days: each request's 30 days end a day earlier than
            # the last one asked of its workspace (answers of their own in the cache).
            day_end = end.replace(hour=0) + timedelta(days=1)
            made = []
            for shift in shifts:
                for t, token in zip(self.loaded.tenants, tokens, strict=True):
                    window_end = day_end - timedelta(days=shift)
                    window_start = window_end - timedelta(days=30)
                    made.append(
                        http_request(
                            "GET",
                            f"/v1/analytics/breakdown?project_id={t.project_id}"
                            f"&property={BREAKDOWN_DIMENSION}"
                            f"&start={window_start:%Y-%m-%dT%H:%M:%SZ}"
                            f"&end={window_end:%Y-%m-%dT%H:%M:%SZ}",
                            HOST,
                            [("Authorization", f"Bearer {token}")],
                        )
                    )
            plans["breakdown_uncached"] = (made, uncached_rate, seconds, False)
        key = tenant.projects["background"][1]
        total = sum(plan[2] for plan in plans.values()) + 30
        log(
            f"analytics over {self.loaded.events:,} events while ingest runs "
            f"({self.args.background_rate:.0f} batch requests/s in the background) ..."
        )
        with self.context.Pool(1) as background_pool:
            background = background_pool.apply_async(
                scenarios.background_ingest,
                (HOST, port, key, f"bg-{self.run_id}", self.args.background_rate, total, 100),
            )
            time.sleep(1.0)
            out: dict[str, Any] = {}
            for name, (reqs, rate, length, warm) in plans.items():
                out[name] = self.in_child(
                    scenarios.fixed_requests, HOST, port, reqs, rate, length, warm
                )
                out[name]["rate"] = rate
                log(
                    f"  {name}: p50 {out[name]['p50_ms']:.2f} ms p99 {out[name]['p99_ms']:.2f} ms"
                    f" ({out[name]['statuses']})"
                )
            background_pool.terminate()
            out["background"] = {"rate_requests": self.args.background_rate, "events": 100}
            with contextlib.suppress(Exception):
                out["background"] = background.get(0.1)
        self.results["analytics"] = out
        if "persons" in self.only:
            self.persons_accuracy(base, tokens, end, largest)
        if "breakdown" in self.only:
            # One answer, for the notes: the largest workspace's 30 whole days to today.
            day_end = end.replace(hour=0) + timedelta(days=1)
            with contextlib.suppress(Exception):
                answer = httpx.get(
                    f"{base}/v1/analytics/breakdown",
                    params={
                        "project_id": largest.project_id,
                        "property": BREAKDOWN_DIMENSION,
                        "start": f"{day_end - timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}",
                        "end": f"{day_end:%Y-%m-%dT%H:%M:%SZ}",
                    },
                    headers={
                        "Authorization": f"Bearer {tokens[self.loaded.tenants.index(largest)]}"
                    },
                    timeout=30,
                )
                self.results["breakdown_answer"] = answer.json()

    def funnel_request(self, tenant: LoadedTenant, token: str, end: datetime, shift: int) -> bytes:
        """POST /v1/analytics/funnel: FUNNEL_STEPS over the 30 days ending ``shift`` hours
        before ``end``, each step within --funnel-window-days of the first."""
        window_end = end - timedelta(hours=shift)
        body = json.dumps(
            {
                "project_id": tenant.project_id,
                "steps": [{"event_type": step} for step in FUNNEL_STEPS],
                "window_seconds": int(self.args.funnel_window_days * 86400),
                "start": f"{window_end - timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}",
                "end": f"{window_end:%Y-%m-%dT%H:%M:%SZ}",
            },
            separators=(",", ":"),
        ).encode()
        headers = [("Authorization", f"Bearer {token}"), ("Content-Type", "application/json")]
        return http_request("POST", "/v1/analytics/funnel", HOST, headers, body)

    def persons_accuracy(
        self, base: str, tokens: list[str], end: datetime, largest: LoadedTenant
    ) -> None:
        """Every workspace's unique-users total over 30 days (the window ending at ``end``)
        against the exact count of distinct persons in its raw events; and the funnel's answer
        over the largest workspace (its drop-off)."""
        assert self.loaded is not None
        start = end - timedelta(days=30)
        log("unique users: the API's totals against count(DISTINCT ...) of the raw events ...")
        began = time.perf_counter()
        exact = asyncio.run(
            bare.exact_users(
                self.dsn, [(t.workspace_id, t.project_id) for t in self.loaded.tenants], start, end
            )
        )
        exact_seconds = time.perf_counter() - began
        answers: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=base, timeout=30) as client:
            for t, token in zip(self.loaded.tenants, tokens, strict=True):
                answer = client.get(
                    "/v1/analytics/users",
                    params={
                        "project_id": t.project_id,
                        "granularity": "hour",
                        "start": f"{start:%Y-%m-%dT%H:%M:%SZ}",
                        "end": f"{end:%Y-%m-%dT%H:%M:%SZ}",
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
                answer.raise_for_status()
                answers[t.workspace_id] = answer.json()
            funnel = client.post(
                "/v1/analytics/funnel",
                content=http_body(self.funnel_request(largest, "", end, 0)),
                headers={
                    "Authorization": f"Bearer {tokens[self.loaded.tenants.index(largest)]}",
                    "Content-Type": "application/json",
                },
            )
            funnel.raise_for_status()
        errors = {
            workspace_id: (answers[workspace_id]["total"] - count) / count
            for workspace_id, count in exact.items()
            if count
        }
        magnitudes = sorted(abs(e) for e in errors.values())
        self.results["users_accuracy"] = {
            "window": [start.isoformat(), end.isoformat()],
            "workspaces": len(errors),
            "largest_workspace": largest.workspace_id,
            "largest_exact": exact[largest.workspace_id],
            "largest_total": answers[largest.workspace_id]["total"],
            "largest_error": errors.get(largest.workspace_id),
            "largest_reported_relative_error": answers[largest.workspace_id]["relative_error"],
            "max_abs_error": magnitudes[-1] if magnitudes else None,
            "mean_abs_error": sum(magnitudes) / len(magnitudes) if magnitudes else None,
            "p95_abs_error": percentile(magnitudes, 0.95),
            "over_2_percent": sum(1 for m in magnitudes if m > 0.02),
            "exact_persons_all_workspaces": sum(exact.values()),
            "exact_sql_seconds": round(exact_seconds, 2),
            "errors": {k: round(v, 5) for k, v in errors.items()},
        }
        self.results["funnel_answer"] = funnel.json()
        a = self.results["users_accuracy"]
        log(
            f"  largest workspace {a['largest_total']:,} vs exact {a['largest_exact']:,}"
            f" ({a['largest_error']:+.2%}); over {a['workspaces']} workspaces |error| mean"
            f" {a['mean_abs_error']:.2%}, max {a['max_abs_error']:.2%},"
            f" {a['over_2_percent']} over 2 % ({a['exact_persons_all_workspaces']:,} persons)"
        )
        log(
            "  funnel: "
            + " -> ".join(
                f"{step['event_type']} {step['users']:,} ({step['conversion']:.1%})"
                for step in funnel.json()["steps"]
            )
        )

    # step 6: the embedded profile

    def embedded(self) -> None:
        port = free_port()
        data_dir = self.workdir / "embedded"
        env = self.env(distributed=False, data_dir=data_dir)
        proc = self.processes.start(
            "embedded", self.eventcore("serve", "--port", str(port), "--workers", "1"), env
        )
        try:
            base = f"http://{HOST}:{port}"
            wait_ready(f"{base}/health/ready", self.processes)
            tenant = self.tenant(base, "embedded", ["batch"])
            log("embedded profile, batch ingest ...")
            result = self.ingest_rate(base, tenant, "batch", 100)
            self.results["embedded_batch"] = result
            log(f"  {result['committed_per_second']:,.0f} events/s committed")
        finally:
            self.processes.stop(proc)

    # the sweep of N and M

    def sweep(self) -> None:
        rows = []
        for spec in self.args.sweep.split(","):
            n, m = (int(x) for x in spec.lower().split("x"))
            with self.distributed(n, m) as base:
                tenant = self.tenant(base, f"sweep{n}x{m}", ["batch", "single"])
                log(f"sweep {n} API x {m} workers ...")
                batch = self.ingest_rate(base, tenant, "batch", 100, self.args.profile)
                single = self.ingest_rate(base, tenant, "single", 1, self.args.profile)
            rows.append(
                {
                    "api_workers": n,
                    "workers": m,
                    "batch_absorbed_per_second": batch["absorbed_per_second"],
                    "batch_committed_per_second": batch["committed_per_second"],
                    "single_committed_per_second": single["committed_per_second"],
                }
            )
            log(
                f"  {n}x{m}: batch {batch['committed_per_second']:,.0f} events/s committed, "
                f"single {single['committed_per_second']:,.0f} requests/s"
            )
        self.results["sweep"] = rows


def _wal_and_checkpoints() -> dict[str, int]:
    """The server's WAL written (bytes, full-page images, records, syncs), its checkpoints and
    the buffers written by checkpoints, the background writer and backends, so far."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        row = admin.execute(
            "SELECT w.wal_bytes::bigint, w.wal_fpi, w.wal_records, w.wal_sync,"
            " b.checkpoints_timed + b.checkpoints_req, b.buffers_checkpoint, b.buffers_clean,"
            " b.buffers_backend FROM pg_stat_wal AS w, pg_stat_bgwriter AS b"
        ).fetchone()
    assert row is not None
    names = (
        "wal_bytes",
        "wal_fpi",
        "wal_records",
        "wal_syncs",
        "checkpoints",
        "buffers_checkpoint",
        "buffers_clean",
        "buffers_backend",
    )
    return dict(zip(names, (int(value) for value in row), strict=True))


def _status_kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in KiB (VmRSS, VmHWM)."""
    match = re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    if match is None:
        raise RuntimeError(f"/proc/{pid}/status has no {field}")
    return int(match[1])


def http_body(request: bytes) -> bytes:
    """The body of an HTTP/1.1 request made by loadgen.http_request."""
    return request.split(b"\r\n\r\n", 1)[1]


def bare_sqlite(path: Path, *, rows: int) -> dict[str, Any]:
    """The embedded store's bare limit: the same 100-event requests inserted by sqlite3, one
    transaction each, in a WAL file with synchronous=NORMAL (the store's settings)."""
    import sqlite3

    from eventcore.adapters.sqlite.schema import migrate as migrate_sqlite

    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        migrate_sqlite(connection)
        columns = [row[1] for row in connection.execute("PRAGMA table_info(events)")]
        now = datetime.now(UTC)
        micros = int(now.timestamp() * 1_000_000)
        requests = rows // 100
        batches = [
            [
                {
                    "workspace_id": "bare",
                    "project_id": "bare",
                    "event_id": e.id,
                    "event_type": e.type,
                    "ts": micros,
                    "received_at": micros,
                    "properties": str(e.properties, "utf-8"),
                }
                for e in bare.request_events("sqlite", r, 100, now)
            ]
            for r in range(requests)
        ]
        names = [c for c in batches[0][0] if c in columns]
        statement = (
            f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            " ON CONFLICT (workspace_id, project_id, event_id) DO NOTHING"
        )
        began = time.perf_counter()
        for batch in batches:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(statement, [tuple(row[c] for c in names) for row in batch])
            connection.execute("COMMIT")
        elapsed = time.perf_counter() - began
    finally:
        connection.close()
    return {"rows": requests * 100, "seconds": elapsed, "rows_per_second": requests * 100 / elapsed}


def machine() -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        with contextlib.suppress(Exception):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        return "?"

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with psycopg.connect(ADMIN_DSN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        postgres = row[0] if row else "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "rabbitmq": version(["rabbitmq-diagnostics", "-q", "server_version"]),
        "redis": version(["redis-server", "--version"]),
        "wrk": version(["wrk", "--version"]),
        "load_average_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="analytics data set size")
    parser.add_argument("--workspaces", type=int, default=100)
    parser.add_argument(
        "--persons", type=int, default=1_000_000, help="distinct persons in the data set"
    )
    parser.add_argument("--api-workers", type=int, default=2, help="N: eventcore serve --workers N")
    parser.add_argument("--workers", type=int, default=2, help="M: eventcore worker processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load phase")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--rate", type=float, default=2000.0, help="fixed single-event rate")
    parser.add_argument("--analytics-seconds", type=float, default=5.0)
    parser.add_argument(
        "--cached-rate", type=float, default=50.0, help="analytics requests/s, cached answers"
    )
    parser.add_argument(
        "--uncached-rate", type=float, default=20.0, help="analytics requests/s, each one new"
    )
    parser.add_argument(
        "--background-rate",
        type=float,
        default=100.0,
        help="batch requests/s ingested while analytics are measured",
    )
    parser.add_argument(
        "--funnel-rate", type=float, default=2.0, help="funnel requests/s, each one new"
    )
    parser.add_argument("--funnel-seconds", type=float, default=10.0)
    parser.add_argument(
        "--funnel-window-days", type=float, default=7.0, help="the funnel's window_seconds, in days"
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"a comma-separated subset of {','.join(STEPS)} (the bare limits always run)",
    )
    parser.add_argument(
        "--retention-events",
        type=int,
        default=1_000_000,
        help="events the retention step expires (loaded into the largest project if need be)",
    )
    parser.add_argument("--bare-rows", type=int, default=200_000)
    parser.add_argument("--bare-messages", type=int, default=20_000)
    parser.add_argument("--log-level", default="info", help="EVENTCORE_LOG_LEVEL of the servers")
    parser.add_argument("--sweep", default="", help="e.g. 1x1,2x1,2x2: N x M ingest sweep only")
    parser.add_argument("--profile", action="store_true", help="py-spy every eventcore process")
    parser.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="the HTTP server of the API processes (granian: pip install granian)",
    )
    parser.add_argument("--skip-load", action="store_true", help="no data set, no analytics")
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument("--database", default="", help="reuse a kept eventcore_bench_* database")
    parser.add_argument("--output", default=str(RESULTS / "latest.json"))
    args = parser.parse_args(argv)
    ensure_wrk()

    bench = Bench(args)
    began = time.perf_counter()
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    log(f"eventcore benchmark {bench.run_id}: {command.strip()}")
    bench.results["machine"] = machine()
    try:
        if bench.reused:
            bench.reuse_data()
        else:
            bench.create_database()
        if args.sweep:
            bench.results["bare_insert"] = asyncio.run(
                bare.bare_insert(bench.dsn, rows=args.bare_rows)
            )
            bench.sweep()
        else:
            if not args.skip_load and args.events > 0 and not bench.reused:
                bench.load_data()
            bench.bare_limits()
            bench.distributed_steps()
            if "embedded" in bench.only:
                bench.embedded()
    finally:
        bench.cleanup()
    bench.results["rss_mb"] = {k: round(v, 1) for k, v in sorted(bench.processes.rss.items())}
    bench.results["config"] = {
        "api_workers": args.api_workers,
        "server": args.server,
        "workers": args.workers,
        "seconds": args.seconds,
        "connections": args.connections,
        "events": args.events,
        "run_id": bench.run_id,
    }
    bench.results["command"] = command.strip()
    bench.results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    bench.results["wall_seconds"] = round(time.perf_counter() - began, 1)
    from bench.report import figures, render

    if not args.sweep:
        bench.results["figures"] = figures(bench.results)
    if args.profile:
        from bench.profile_summary import render as render_profile

        summaries = [
            render_profile(path, 20) for path in sorted((bench.workdir / "profiles").glob("*.txt"))
        ]
        (RESULTS / "profile.md").write_text(
            f"# py-spy profiles, `{command.strip()}`\n\n```\n" + "\n\n".join(summaries) + "\n```\n"
        )
        log(f"profile summaries in {RESULTS / 'profile.md'}")
    print(render(bench.results))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(bench.results, indent=2, default=str) + "\n")
    log(f"wrote {output} ({bench.results['wall_seconds']:.0f} s)")
    # The servers' logs are kept only when something went wrong (they are named then).
    shutil.rmtree(bench.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
