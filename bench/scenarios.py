"""The open-loop scenarios, each run in a process of its own by ``bench.run`` (see loadgen)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import msgspec

from bench.loadgen import LoadResult, Sample, _Connection, http_request, open_loop, percentile

_Series = msgspec.json.Decoder(dict[str, Any])


def _summary(result: LoadResult, ok: int) -> dict[str, Any]:
    good = [(s.done - s.due) * 1000 for s in result.samples if s.status == ok]
    statuses = Counter(str(s.status) for s in result.samples)
    # The slowest answers, by request number: whether they are the first ones or spread out.
    slowest = sorted(
        ((round((s.done - s.due) * 1000, 1), i) for i, s in enumerate(result.samples)),
        reverse=True,
    )[:5]
    return {
        "requests": len(result.samples),
        "statuses": dict(statuses),
        "errors": result.errors,
        "offered_per_second": len(result.samples) / result.wall_seconds,
        "p50_ms": percentile(good, 0.50),
        "p99_ms": percentile(good, 0.99),
        "p999_ms": percentile(good, 0.999),
        "max_ms": max(good, default=0.0),
        "slowest_ms_by_request": [[i, ms] for ms, i in slowest],
        "generator_cpu_seconds": result.cpu_seconds,
        "generator_cpu_share": result.cpu_seconds / result.wall_seconds,
        "connections": result.connections,
    }


def single_events(
    host: str, port: int, key: str, run_id: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Single-event ingest requests at a fixed rate (the bare no-op server answers them too)."""
    headers = [("X-API-Key", key), ("Content-Type", "application/json")]

    def make(i: int) -> bytes:
        body = (
            b'{"id":"%s-%d","type":"page_view","properties":{"path":"/pricing","plan":"pro","n":%d}}'
            % (run_id.encode(), i, i)
        )
        return http_request("POST", "/v1/ingest", host, headers, body)

    result = asyncio.run(open_loop(host, port, make, rate=rate, seconds=seconds))
    return _summary(result, 202)


def ingest_latency(
    host: str,
    port: int,
    key: str,
    run_id: str,
    rate: float,
    seconds: float,
    probe_every: int,
    poll_path: str,
    token: str,
    poll_interval: float,
) -> dict[str, Any]:
    """Single-event requests at ``rate``; every ``probe_every``-th has a type of its own, and a
    poller reads ``poll_path`` (counts by minute) every ``poll_interval`` s to see when each
    probe becomes visible there. The delay runs from the probe's 202 to the first poll answer
    that shows it: an upper bound, by at most one poll interval and one poll."""
    headers = [("X-API-Key", key), ("Content-Type", "application/json")]

    def make(i: int) -> bytes:
        kind = f"probe-{i}" if i % probe_every == 0 else "page_view"
        body = b'{"id":"%s-%d","type":"%s","properties":{"path":"/pricing","n":%d}}' % (
            run_id.encode(),
            i,
            kind.encode(),
            i,
        )
        return http_request("POST", "/v1/ingest", host, headers, body)

    accepted_at: dict[int, float] = {}
    seen_at: dict[int, float] = {}

    def on_answer(i: int, sample: Sample) -> None:
        if i % probe_every == 0 and sample.status == 202:
            accepted_at[i] = sample.done

    poll_request = http_request("GET", poll_path, host, [("Authorization", f"Bearer {token}")])

    async def poll(stop: asyncio.Event) -> int:
        _, connection = await asyncio.get_running_loop().create_connection(_Connection, host, port)
        polls = 0
        try:
            while True:
                status, body = await connection.request(poll_request)
                now = time.perf_counter()
                polls += 1
                if status == 200:
                    for point in _Series.decode(body).get("series", []):
                        kind = point["event_type"]
                        if kind.startswith("probe-"):
                            seen_at.setdefault(int(kind[6:]), now)
                if stop.is_set() and accepted_at.keys() <= seen_at.keys():
                    return polls
                await asyncio.sleep(poll_interval)
        finally:
            assert connection.transport is not None
            connection.transport.close()

    async def run() -> tuple[LoadResult, int]:
        stop = asyncio.Event()
        poller = asyncio.create_task(poll(stop))
        result = await open_loop(host, port, make, rate=rate, seconds=seconds, on_answer=on_answer)
        stop.set()
        try:
            polls = await asyncio.wait_for(poller, 60)
        except TimeoutError:
            polls = -1
        return result, polls

    result, polls = asyncio.run(run())
    summary = _summary(result, 202)
    # A probe may show before its 202 arrives (the answer was on its way): no delay then.
    delays = [max(0.0, seen_at[i] - accepted_at[i]) * 1000 for i in accepted_at if i in seen_at]
    # The 202s' P99 second by second (UTC), to set beside what the machine did at the time.
    wall = time.time() - time.perf_counter()
    by_second: dict[int, list[float]] = {}
    for s in result.samples:
        if s.status == 202:
            by_second.setdefault(int(wall + s.due), []).append((s.done - s.due) * 1000)
    summary["p99_ms_by_second"] = [
        [
            time.strftime("%H:%M:%S", time.gmtime(second)),
            len(ms),
            round(percentile(ms, 0.99), 1),
            round(max(ms), 1),
        ]
        for second, ms in sorted(by_second.items())
    ]
    summary["visible"] = {
        "probes": len(accepted_at),
        "seen": len(delays),
        "p50_ms": percentile(delays, 0.50),
        "p99_ms": percentile(delays, 0.99),
        "max_ms": max(delays, default=0.0),
        "poll_interval_ms": poll_interval * 1000,
        "polls": polls,
    }
    return summary


def fixed_requests(
    host: str, port: int, requests: list[bytes], rate: float, seconds: float, warm: bool
) -> dict[str, Any]:
    """``requests`` in turn at ``rate`` (each sent once first when ``warm``: a cache fills)."""

    async def run() -> LoadResult:
        if warm:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, host, port
            )
            for raw in requests:
                await connection.request(raw)
            assert connection.transport is not None
            connection.transport.close()
        return await open_loop(
            host,
            port,
            lambda i: requests[i % len(requests)],
            rate=rate,
            seconds=seconds,
        )

    return _summary(asyncio.run(run()), 200)


def background_ingest(
    host: str, port: int, key: str, run_id: str, rate: float, seconds: float, per_request: int
) -> dict[str, Any]:
    """Batches at a steady rate: the ingest that runs while analytics are measured."""
    headers = [("X-API-Key", key), ("Content-Type", "application/json")]

    def make(i: int) -> bytes:
        events = b",".join(
            b'{"id":"%s-%d-%d","type":"page_view","properties":{"n":%d}}'
            % (run_id.encode(), i, n, n)
            for n in range(per_request)
        )
        return http_request("POST", "/v1/ingest", host, headers, b'{"events":[' + events + b"]}")

    return _summary(asyncio.run(open_loop(host, port, make, rate=rate, seconds=seconds)), 202)
