"""One tenant floods ingest while another sends at a steady pace: does the quiet one suffer?

Starts `eventcore serve` (embedded profile, a temporary directory), creates two workspaces, then
measures the quiet tenant's single-event latency alone and again while the flooding tenant sends
100-event batches from many connections as fast as it can. Prints a table and writes
bench/results/tenant_flood.json.

    python bench/tenant_flood.py [--seconds 10] [--flood-connections 16] [--rate 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(base_url: str, seconds: float) -> None:
    """Until the server answers /health/ready with 200 (or ``seconds`` have passed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def write_results(name: str, summary: dict[str, Any]) -> None:
    out = ROOT / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def tenant(client: httpx.AsyncClient, name: str) -> str:
    signup = await client.post(
        "/v1/auth/signup",
        json={"email": f"{name}@example.com", "password": PASSWORD, "workspace": name},
    )
    user = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    project = (await client.post("/v1/projects", json={"name": name}, headers=user)).json()["id"]
    key = await client.post(f"/v1/projects/{project}/api-keys", json={"name": "k"}, headers=user)
    return str(key.json()["key"])


async def steady(client: httpx.AsyncClient, key: str, seconds: float, every: float) -> list[float]:
    """Single-event requests at a fixed pace; each latency in ms (non-202 answers raise)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        response = await client.post(
            "/v1/ingest",
            json={"type": "quiet", "id": f"q{time.time_ns()}-{n}"},
            headers={"X-API-Key": key},
        )
        if response.status_code != 202:
            raise RuntimeError(f"the quiet tenant got {response.status_code}: {response.text}")
        latencies.append((time.perf_counter() - started) * 1000)
        n += 1
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))
    return latencies


async def flood(
    client: httpx.AsyncClient, key: str, stop: asyncio.Event, statuses: dict[int, int]
) -> None:
    batch = {"events": [{"type": "flood"} for _ in range(100)]}
    body = json.dumps(batch).encode()
    while not stop.is_set():
        response = await client.post(
            "/v1/ingest",
            content=body,
            headers={"X-API-Key": key, "Content-Type": "application/json"},
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1


def flood_process(base_url: str, key: str, connections: int, seconds: float, out: Any) -> None:
    """The flooding tenant, in its own process so that its client work never delays the quiet one."""

    async def run() -> dict[int, int]:
        limits = httpx.Limits(max_connections=connections)
        statuses: dict[int, int] = {}
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
            tasks = [
                asyncio.create_task(flood(client, key, stop, statuses)) for _ in range(connections)
            ]
            await asyncio.sleep(seconds)
            stop.set()
            await asyncio.gather(*tasks)
        return statuses

    out.put(asyncio.run(run()))


async def measure(base_url: str, seconds: float, connections: int) -> dict[str, Any]:
    import multiprocessing

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        quiet_key = await tenant(client, "quiet")
        flood_key = await tenant(client, "flood")
        await steady(client, quiet_key, 1.0, 0.01)  # warm-up
        alone = await steady(client, quiet_key, seconds, 0.01)
        results: Any = multiprocessing.Queue()
        flooder = multiprocessing.Process(
            target=flood_process, args=(base_url, flood_key, connections, seconds + 1.0, results)
        )
        flooder.start()
        await asyncio.sleep(0.5)
        loaded = await steady(client, quiet_key, seconds, 0.01)
        statuses = results.get(timeout=60)
        flooder.join(30)
    return {"alone": alone, "loaded": loaded, "flood_statuses": statuses}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood-connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=5000.0, help="events/s per workspace")
    args = parser.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTCORE_")}
        env.update(
            {
                "EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": str(args.rate),
                "EVENTCORE_LOG_LEVEL": "warning",
                "PYTHONPATH": str(ROOT / "src"),
            }
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "eventcore.entrypoints.cli", "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_ready(base_url, 30)
            started_cpu = resource.getrusage(resource.RUSAGE_SELF)
            result = asyncio.run(measure(base_url, args.seconds, args.flood_connections))
            used_cpu = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            server.terminate()
            server.wait(15)

    alone, loaded = result["alone"], result["loaded"]
    statuses = result["flood_statuses"]
    summary = {
        "command": " ".join(["python", "bench/tenant_flood.py", *sys.argv[1:]]),
        "seconds": args.seconds,
        "flood_connections": args.flood_connections,
        "rate_limit_events_per_second": args.rate,
        "quiet_alone_ms": {
            "p50": statistics.median(alone),
            "p99": percentile(alone, 0.99),
            "n": len(alone),
        },
        "quiet_loaded_ms": {
            "p50": statistics.median(loaded),
            "p99": percentile(loaded, 0.99),
            "n": len(loaded),
        },
        "flood_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "load_generator_cpu_seconds": round(
            (used_cpu.ru_utime + used_cpu.ru_stime) - (started_cpu.ru_utime + started_cpu.ru_stime),
            2,
        ),
    }
    summary["p50_ratio_loaded_to_alone"] = round(
        summary["quiet_loaded_ms"]["p50"] / summary["quiet_alone_ms"]["p50"], 2
    )
    summary["p99_ratio_loaded_to_alone"] = round(
        summary["quiet_loaded_ms"]["p99"] / summary["quiet_alone_ms"]["p99"], 2
    )
    print(
        f"quiet tenant alone:   p50 {summary['quiet_alone_ms']['p50']:.2f} ms  p99 {summary['quiet_alone_ms']['p99']:.2f} ms"
    )
    print(
        f"quiet tenant flooded: p50 {summary['quiet_loaded_ms']['p50']:.2f} ms  p99 {summary['quiet_loaded_ms']['p99']:.2f} ms"
    )
    print(
        f"ratios loaded/alone:  p50 {summary['p50_ratio_loaded_to_alone']}x  p99 {summary['p99_ratio_loaded_to_alone']}x"
    )
    print(f"flooding tenant answers: {summary['flood_statuses']}")
    print(f"load generator CPU: {summary['load_generator_cpu_seconds']} s")
    write_results("tenant_flood.json", summary)


if __name__ == "__main__":
    main()
