"""One tenant floods the distributed profile's one ingest queue: how long until another tenant's
accepted events are visible?

Starts `eventcore serve` and `eventcore worker` processes on the distributed profile (a fresh
PostgreSQL database, unique queue names on the RabbitMQ of 127.0.0.1:5672, Redis database 15
under a unique prefix; rate limiting off, so the flood runs at the API's full speed), creates two
workspaces, and measures the quiet tenant's 202 -> visible time (its event id found in
eventcore.events, polled every 20 ms) for single events sent every 50 ms: alone, then while the
flooding tenant sends 100-event batches from many connections. Prints the figures and writes
bench/results/queue_flood.json. Everything it created is removed at the end.

    python -m bench.queue_flood [--seconds 20] [--flood-connections 16] [--api-workers 1]
        [--workers 1] [--worker-batch-events N] [--partitions N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiormq
import httpx
import psycopg

from bench.tenant_flood import (
    flood_process,
    free_port,
    percentile,
    tenant,
    wait_ready,
    write_results,
)
from eventcore.adapters.rabbitmq import QueueNames, delete_topology, queue_depth

ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


async def quiet(
    client: httpx.AsyncClient, key: str, dsn: str, seconds: float, every: float, settle: float
) -> dict[str, Any]:
    """Single events every ``every`` s for ``seconds``; each one's 202 -> visible seconds (events
    not visible ``settle`` s after the last 202 are reported as missing)."""
    acknowledged: dict[str, float] = {}
    visible: dict[str, float] = {}
    done = asyncio.Event()

    async def poll() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as owner:
            while True:
                pending = [i for i in acknowledged if i not in visible]
                if pending:
                    rows = await owner.execute(
                        "SELECT event_id FROM eventcore.events WHERE event_id = ANY(%s)",
                        (pending,),
                    )
                    now = time.perf_counter()
                    for (event_id,) in await rows.fetchall():
                        visible.setdefault(event_id, now)
                elif done.is_set():
                    return
                await asyncio.sleep(0.02)

    poller = asyncio.create_task(poll())
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        event_id = f"quiet-{time.time_ns()}-{n}"
        response = await client.post(
            "/v1/ingest", json={"type": "quiet", "id": event_id}, headers={"X-API-Key": key}
        )
        if response.status_code == 202:
            acknowledged[event_id] = time.perf_counter()
        n += 1
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))
    done.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(poller, settle)
    delays = [visible[i] - at for i, at in acknowledged.items() if i in visible]
    return {
        "sent": n,
        "acknowledged": len(acknowledged),
        "missing_after_settle": len(acknowledged) - len(delays),
        "p50_s": percentile(delays, 0.5) if delays else None,
        "p99_s": percentile(delays, 0.99) if delays else None,
        "max_s": max(delays, default=None),
    }


async def delete_queues(names: QueueNames) -> None:
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await delete_topology(channel, names)
    finally:
        await connection.close()


def start(args: list[str], env: dict[str, str], workdir: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "eventcore.entrypoints.cli", *args],
            cwd=workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def measure(
    base_url: str, dsn: str, names: QueueNames, seconds: float, connections: int
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        quiet_key = await tenant(client, "quiet")
        flood_key = await tenant(client, "flood")
        await quiet(client, quiet_key, dsn, 1.0, 0.05, 10)  # warm-up
        alone = await quiet(client, quiet_key, dsn, seconds, 0.05, 30)
        results: Any = multiprocessing.Queue()
        flooder = multiprocessing.Process(
            target=flood_process, args=(base_url, flood_key, connections, seconds + 1.0, results)
        )
        flooder.start()
        await asyncio.sleep(0.5)
        flooded = await quiet(client, quiet_key, dsn, seconds, 0.05, 120)
        statuses = results.get(timeout=120)
        flooder.join(30)
        backlog = await queue_depth(AMQP_URL, names)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as owner:
            rows = await owner.execute("SELECT workspace_id, name FROM eventcore.workspaces")
            partitions = {name: names.partition(ws) for ws, name in await rows.fetchall()}
    return {
        "alone": alone,
        "flooded": flooded,
        "flood_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "flood_events_accepted_per_s": round(statuses.get(202, 0) * 100 / (seconds + 1.0)),
        "main_queue_ready_after_quiet_settled": backlog,
        "partitions_of_the_tenants": partitions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flood-connections", type=int, default=16)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--partitions", type=int, default=1, help="EVENTCORE_QUEUE_PARTITIONS (1: one queue)"
    )
    parser.add_argument(
        "--worker-batch-events",
        type=int,
        default=0,
        help="EVENTCORE_WORKER_BATCH_EVENTS for the workers (0: the default); a small value "
        "slows them below the API's rate, so that a backlog forms",
    )
    args = parser.parse_args()

    token = secrets.token_hex(4)
    database = f"eventcore_qflood_{token}"
    dsn = f"postgresql://postgres@127.0.0.1:5432/{database}"
    queue = f"eventcore.bench.qflood.{token}"
    names = QueueNames(queue, partitions=args.partitions)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as workdir:
            env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTCORE_")}
            env.update(
                {
                    "EVENTCORE_DATABASE_URL": dsn,
                    "EVENTCORE_REDIS_URL": "redis://127.0.0.1:6379/15",
                    "EVENTCORE_REDIS_PREFIX": f"ecbenchq{token}",
                    "EVENTCORE_AMQP_URL": AMQP_URL,
                    "EVENTCORE_QUEUE_NAME": queue,
                    "EVENTCORE_JWT_SECRET": secrets.token_urlsafe(40),
                    "EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "0",
                    "EVENTCORE_WORKER_METRICS_PORT": "0",
                    "EVENTCORE_LOG_LEVEL": "warning",
                    "PYTHONPATH": str(ROOT / "src"),
                }
            )
            env["EVENTCORE_QUEUE_PARTITIONS"] = str(args.partitions)
            if args.worker_batch_events:
                env["EVENTCORE_WORKER_BATCH_EVENTS"] = str(args.worker_batch_events)
            logs = Path(workdir)
            migrated = subprocess.run(
                [sys.executable, "-m", "eventcore.entrypoints.cli", "migrate"],
                cwd=workdir,
                env=env,
                capture_output=True,
                check=False,
            )
            if migrated.returncode != 0:
                raise SystemExit(migrated.stderr.decode())
            port = free_port()
            processes.append(
                start(
                    ["serve", "--port", str(port), "--workers", str(args.api_workers)],
                    env,
                    workdir,
                    logs / "api.log",
                )
            )
            for number in range(args.workers):
                processes.append(start(["worker"], env, workdir, logs / f"worker-{number}.log"))
            base_url = f"http://127.0.0.1:{port}"
            wait_ready(base_url, 60)
            result = asyncio.run(
                measure(base_url, dsn, names, args.seconds, args.flood_connections)
            )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(delete_queues(names))
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    summary = {
        "command": " ".join(["python -m bench.queue_flood", *sys.argv[1:]]),
        "seconds": args.seconds,
        "flood_connections": args.flood_connections,
        "api_workers": args.api_workers,
        "workers": args.workers,
        "partitions": args.partitions,
        "worker_batch_events": args.worker_batch_events or "default",
        **result,
    }
    for phase in ("alone", "flooded"):
        figures = result[phase]
        print(
            f"quiet tenant 202 -> visible, {phase:7}: p50 {figures['p50_s']} s, "
            f"p99 {figures['p99_s']} s, max {figures['max_s']} s "
            f"({figures['acknowledged']} acknowledged, {figures['missing_after_settle']} not "
            "visible in time)"
        )
    print(f"flooding tenant: {result['flood_events_accepted_per_s']} events/s accepted")
    print(f"main queue ready messages afterwards: {result['main_queue_ready_after_quiet_settled']}")
    print(f"the tenants' main queues: {result['partitions_of_the_tenants']}")
    write_results("queue_flood.json", summary)


if __name__ == "__main__":
    main()
