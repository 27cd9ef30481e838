"""The results table: every figure beside its matching bare limit, the ratio and the target."""

from __future__ import annotations

from typing import Any


def _row(
    figure: str,
    value: float | None,
    unit: str,
    bare_name: str = "",
    bare_value: float | None = None,
    target: str = "",
    met: bool | None = None,
) -> dict[str, Any]:
    ratio = value / bare_value if value is not None and bare_value else None
    return {
        "figure": figure,
        "value": value,
        "unit": unit,
        "bare": bare_name,
        "bare_value": bare_value,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def figures(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the table, from the raw results of one run."""
    rows: list[dict[str, Any]] = []
    insert = r.get("bare_insert", {})
    publish = r.get("bare_publish", {})
    http = r.get("bare_http", {})
    query = r.get("bare_query", {})
    sqlite = r.get("bare_sqlite", {})
    rows_s = insert.get("rows_per_second")
    pub_s = publish.get("events_per_second")
    noop_single = http.get("single", {}).get("requests_per_second")
    noop_batch = http.get("batch", {}).get("requests_per_second")
    noop_lat = http.get("latency", {})
    noop_get = http.get("get_latency", {})

    # 1. bare limits
    rows.append(_row("bare: PostgreSQL unnest insert, 2,000 rows/statement", rows_s, "rows/s"))
    rows.append(_row("bare: RabbitMQ confirmed publish, 100-event messages", pub_s, "events/s"))
    rows.append(_row("bare: no-op HTTP, single-event POST", noop_single, "req/s"))
    rows.append(_row("bare: no-op HTTP, 100-event POST", noop_batch, "req/s"))
    rate = noop_lat.get("offered_per_second")
    for q in ("p50", "p99", "p999"):
        rows.append(
            _row(f"bare: no-op HTTP {q} at {rate or 0:,.0f} req/s", noop_lat.get(f"{q}_ms"), "ms")
        )
    for name in ("counts", "event_types"):
        for q in ("p50", "p99"):
            rows.append(
                _row(f"bare: analytics SQL {name} {q}", query.get(name, {}).get(f"{q}_ms"), "ms")
            )
    rows.append(
        _row("bare: SQLite insert, 100 rows/transaction", sqlite.get("rows_per_second"), "rows/s")
    )
    persons = r.get("bare_persons", {})
    if persons:
        sketches = persons["users_sql"]
        funnel_sql = persons["funnel_sql"]
        for q in ("p50", "p99"):
            rows.append(
                _row(
                    f"bare: unique users SQL ({sketches['rows']} day and hour rows) {q}",
                    sketches[f"{q}_ms"],
                    "ms",
                )
            )
        for q in ("p50", "p99"):
            rows.append(
                _row(
                    f"bare: unique users SQL + merge in process {q}",
                    persons["users_sql_and_merge"][f"{q}_ms"],
                    "ms",
                )
            )
        for q in ("p50", "p99"):
            rows.append(
                _row(
                    f"bare: funnel events SQL ({funnel_sql['rows']:,} rows) {q}",
                    funnel_sql[f"{q}_ms"],
                    "ms",
                )
            )

    tallies = r.get("bare_breakdown", {}).get("sql")
    if tallies:
        for q in ("p50", "p99"):
            rows.append(
                _row(
                    f"bare: breakdown SQL (30 days of tallies summed, the listed values' sketches,"
                    f" {tallies['rows']:,} rows) {q}",
                    tallies[f"{q}_ms"],
                    "ms",
                )
            )

    # 2. batch ingest
    batch = r.get("batch_ingest")
    if batch:
        committed = batch["committed_per_second"]
        rows.append(
            _row(
                "batch ingest: committed, first request to last commit",
                committed,
                "events/s",
                "PostgreSQL insert",
                rows_s,
                ">= 40,000 and >= 0.8 x bare",
                committed >= 40_000 and bool(rows_s) and committed >= 0.8 * rows_s,
            )
        )
        absorbed = batch["absorbed_per_second"]
        bare_absorb = (
            min(x for x in (pub_s, (noop_batch or 0) * 100 or None) if x) if pub_s else None
        )
        rows.append(
            _row(
                f"batch ingest: answered 202 during {batch['seconds']:.0f} s flood",
                absorbed,
                "events/s",
                "min(RabbitMQ, no-op x 100)",
                bare_absorb,
                ">= 100,000",
                absorbed >= 100_000,
            )
        )
        rows.append(
            _row(
                "batch ingest: accepted == committed (via the API)",
                float(batch["committed"]),
                "events",
                target="equal",
                met=batch["accepted_equals_committed"],
            )
        )
    with_persons = r.get("batch_ingest_persons")
    if with_persons and batch:
        value = with_persons["committed_per_second"]
        without = batch["committed_per_second"]
        rows.append(
            _row(
                "batch ingest with persons: committed, first request to last commit",
                value,
                "events/s",
                "batch ingest without persons",
                without,
                ">= 0.85 x without",
                value >= 0.85 * without,
            )
        )
        rows.append(
            _row(
                f"batch ingest with persons: answered 202 during {with_persons['seconds']:.0f} s"
                " flood",
                with_persons["absorbed_per_second"],
                "events/s",
                "batch ingest without persons",
                batch["absorbed_per_second"],
            )
        )
        # What bounds the pair once the 2 cores are saturated: CPU seconds of every process
        # (API, workers, this database's PostgreSQL, RabbitMQ, Redis, wrk) per committed event.
        cost = {
            name: sum(result["cpu_seconds"].values()) / result["committed"] * 1e6
            for name, result in (("without", batch), ("with", with_persons))
            if result["committed"]
        }
        if len(cost) == 2:
            rows.append(
                _row(
                    "batch ingest without persons: CPU per committed event, all processes",
                    cost["without"],
                    "us",
                )
            )
            rows.append(
                _row(
                    "batch ingest with persons: CPU per committed event, all processes"
                    f" (without / with = {cost['without'] / cost['with']:.2f})",
                    cost["with"],
                    "us",
                    "batch ingest without persons",
                    cost["without"],
                )
            )
        rows.append(
            _row(
                "batch ingest with persons: accepted == committed (via the API)",
                float(with_persons["committed"]),
                "events",
                target="equal",
                met=with_persons["accepted_equals_committed"],
            )
        )
    with_dims = r.get("batch_ingest_dimensions")
    if with_dims and batch:
        value = with_dims["committed_per_second"]
        without = batch["committed_per_second"]
        rows.append(
            _row(
                "batch ingest with persons and 2 dimensions: committed, first request to last"
                " commit",
                value,
                "events/s",
                "batch ingest without persons",
                without,
                ">= 0.85 x without",
                value >= 0.85 * without,
            )
        )
        if with_persons:
            rows.append(
                _row(
                    "batch ingest with persons and 2 dimensions: committed, against persons only",
                    value,
                    "events/s",
                    "batch ingest with persons",
                    with_persons["committed_per_second"],
                )
            )
        rows.append(
            _row(
                f"batch ingest with persons and 2 dimensions: answered 202 during"
                f" {with_dims['seconds']:.0f} s flood",
                with_dims["absorbed_per_second"],
                "events/s",
                "batch ingest without persons",
                batch["absorbed_per_second"],
            )
        )
        if with_dims["committed"] and batch["committed"]:
            cost = sum(with_dims["cpu_seconds"].values()) / with_dims["committed"] * 1e6
            base = sum(batch["cpu_seconds"].values()) / batch["committed"] * 1e6
            rows.append(
                _row(
                    "batch ingest with persons and 2 dimensions: CPU per committed event, all"
                    f" processes (without / with = {base / cost:.2f})",
                    cost,
                    "us",
                    "batch ingest without persons",
                    base,
                )
            )
        rows.append(
            _row(
                "batch ingest with persons and 2 dimensions: accepted == committed (via the API)",
                float(with_dims["committed"]),
                "events",
                target="equal",
                met=with_dims["accepted_equals_committed"],
            )
        )
    # 3. single-event ingest
    single = r.get("single_ingest")
    if single:
        rows.append(
            _row(
                "single-event ingest: committed, first request to last commit",
                single["committed_per_second"],
                "req/s",
                "no-op HTTP single",
                noop_single,
                ">= 5,000 and >= 0.3 x bare",
                single["committed_per_second"] >= 5_000
                and bool(noop_single)
                and single["committed_per_second"] >= 0.3 * noop_single,
            )
        )
        rows.append(
            _row(
                "single-event ingest: answered 202 during the flood",
                single["absorbed_per_second"],
                "req/s",
                "no-op HTTP single",
                noop_single,
            )
        )
        # Where a single-event request's CPU goes: every process's CPU seconds during the
        # flood divided by the requests answered.
        answered = single.get("accepted") or 0
        for name, seconds in sorted(single.get("cpu_seconds", {}).items()):
            if answered:
                rows.append(
                    _row(
                        f"single-event ingest: CPU per request, {name}",
                        seconds / answered * 1e6,
                        "us",
                    )
                )
    # 4. latency
    latency = r.get("latency")
    if latency:
        rate = latency["offered_per_second"]
        for q, label in (("p50", "P50"), ("p99", "P99"), ("p999", "P99.9")):
            rows.append(
                _row(
                    f"202 latency {label} at {rate:,.0f} req/s (open loop)",
                    latency[f"{q}_ms"],
                    "ms",
                    f"no-op HTTP {label}",
                    noop_lat.get(f"{q}_ms"),
                    {"p99": "< 10", "p999": "< 25"}.get(q, ""),
                    {"p99": 10, "p999": 25}.get(q, float("inf")) > latency[f"{q}_ms"]
                    if q != "p50"
                    else None,
                )
            )
        visible = latency["visible"]
        rows.append(
            _row(
                f"202 -> visible in counts P99 ({visible['seen']}/{visible['probes']} probes)",
                visible["p99_ms"],
                "ms",
                "one bare insert statement",
                insert.get("ms_per_statement"),
                "< 1000",
                visible["p99_ms"] < 1000 and visible["seen"] == visible["probes"],
            )
        )
    # 5. analytics
    analytics = r.get("analytics")
    if analytics:
        for name, path in (("counts", "counts (30 days, hourly)"), ("event_types", "event-types")):
            for cached in (False, True):
                result = analytics.get(f"{name}_{'cached' if cached else 'uncached'}")
                if result is None:  # --only without analytics
                    continue
                for q in ("p50", "p99"):
                    bare_value = (
                        noop_get.get(f"{q}_ms") if cached else query.get(name, {}).get(f"{q}_ms")
                    )
                    limit = 2 if cached else 10
                    rows.append(
                        _row(
                            f"analytics {path}, {'cached' if cached else 'uncached'},"
                            f" {q.upper()} at {result['rate']:.0f} req/s",
                            result[f"{q}_ms"],
                            "ms",
                            f"no-op HTTP GET {q}" if cached else f"analytics SQL {q}",
                            bare_value,
                            f"< {limit}" if q == "p99" else "",
                            result[f"{q}_ms"] < limit if q == "p99" else None,
                        )
                    )
    # 5b. persons: unique users and funnels
    if analytics and "users_uncached" in analytics:
        result = analytics["users_uncached"]
        sketches = persons.get("users_sql", {})
        for q in ("p50", "p99"):
            rows.append(
                _row(
                    f"unique users (30 days, hourly), uncached, {q.upper()} at"
                    f" {result['rate']:.0f} req/s",
                    result[f"{q}_ms"],
                    "ms",
                    f"unique users SQL {q}",
                    sketches.get(f"{q}_ms"),
                    "< 20" if q == "p99" else "",
                    result[f"{q}_ms"] < 20 if q == "p99" else None,
                )
            )
    accuracy = r.get("users_accuracy")
    if accuracy:
        rows.append(
            _row(
                "unique users: total vs exact count, largest workspace, absolute error"
                f" ({accuracy['largest_total']:,} vs {accuracy['largest_exact']:,})",
                abs(accuracy["largest_error"]) * 100,
                "%",
                target="<= 2",
                met=abs(accuracy["largest_error"]) <= 0.02,
            )
        )
        rows.append(
            _row(
                "unique users: total vs exact count, largest absolute error of"
                f" {accuracy['workspaces']}"
                f" workspaces (mean {accuracy['mean_abs_error']:.2%},"
                f" {accuracy['over_2_percent']} over 2 %)",
                accuracy["max_abs_error"] * 100,
                "%",
                target="<= 2",
                met=accuracy["max_abs_error"] <= 0.02,
            )
        )
    if analytics and "funnel_uncached" in analytics:
        result = analytics["funnel_uncached"]
        funnel_sql = persons.get("funnel_sql", {})
        for q in ("p50", "p99"):
            rows.append(
                _row(
                    f"funnel (3 steps, 30 days, largest workspace), uncached, {q.upper()} at"
                    f" {result['rate']:.0f} req/s ({result['requests']} requests)",
                    result[f"{q}_ms"],
                    "ms",
                    f"funnel events SQL {q}",
                    funnel_sql.get(f"{q}_ms"),
                    "< 500" if q == "p99" else "",
                    result[f"{q}_ms"] < 500 if q == "p99" else None,
                )
            )
    if analytics and "breakdown_uncached" in analytics:
        result = analytics["breakdown_uncached"]
        tallies = r.get("bare_breakdown", {}).get("sql", {})
        for q in ("p50", "p99"):
            rows.append(
                _row(
                    f"breakdown by context.page.path (30 days), uncached, {q.upper()} at"
                    f" {result['rate']:.0f} req/s",
                    result[f"{q}_ms"],
                    "ms",
                    f"breakdown SQL {q}",
                    tallies.get(f"{q}_ms"),
                    "< 20" if q == "p99" else "",
                    result[f"{q}_ms"] < 20 if q == "p99" else None,
                )
            )
    retention = r.get("retention")
    if retention:
        before, during = retention["before"], retention["during"]
        rows.append(
            _row(
                f"retention run: {retention['events_expired']:,} events of the largest workspace"
                f" expired ({retention['retention_days']} days)",
                retention["seconds"],
                "s",
                target="< 60 for 1M",
                met=retention["seconds"] < 60 and retention["counts_equal_remaining_events"],
            )
        )
        for label, key in (("202", None), ("visible", "visible")):
            then = before[key] if key else before
            now = during[key] if key else during
            rows.append(
                _row(
                    f"ingest {label} P99 while the retention run runs, at {retention['rate']:.0f}"
                    f" req/s (overlap {retention['overlap']:.0%})",
                    now["p99_ms"],
                    "ms",
                    f"{label} P99 before the run",
                    then["p99_ms"],
                    "<= 2 x before",
                    bool(then["p99_ms"]) and now["p99_ms"] <= 2 * then["p99_ms"],
                )
            )
    # 6. embedded profile, memory
    embedded = r.get("embedded_batch")
    if embedded:
        rows.append(
            _row(
                "embedded profile: batch ingest, committed",
                embedded["committed_per_second"],
                "events/s",
                "SQLite insert",
                sqlite.get("rows_per_second"),
                ">= 0.4 x bare",
                bool(sqlite.get("rows_per_second"))
                and embedded["committed_per_second"] >= 0.4 * sqlite["rows_per_second"],
            )
        )
    rss = r.get("rss_mb", {})
    noop_rss = max((v for k, v in rss.items() if k.startswith("noop")), default=None)
    for label, prefix in (
        ("API process", "api"),
        ("worker process", "worker"),
        ("embedded process", "embedded"),
    ):
        values = [v for k, v in rss.items() if k.startswith(prefix)]
        if prefix == "api":
            # uvicorn's supervisor (the first) only watches its workers.
            values = [v for k, v in rss.items() if k.startswith("api") and "[" in k] or values
        if values:
            rows.append(
                _row(
                    f"peak RSS, largest {label}",
                    max(values),
                    "MB",
                    "no-op HTTP process",
                    noop_rss,
                    "< 200",
                    max(values) < 200,
                )
            )
    return rows


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("ms", "%"):
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def render(r: dict[str, Any]) -> str:
    """A Markdown table of the figures (also printed as is)."""
    lines = []
    config = r.get("config", {})
    lines.append(
        f"eventcore benchmark: {config.get('api_workers')} API x {config.get('workers')} worker"
        f" processes, {r.get('machine', {}).get('cores')} cores; `{r.get('command', '')}`"
    )
    lines.append("")
    if r.get("sweep"):
        lines.append(
            "| N API | M workers | batch 202 events/s | batch committed events/s | single committed req/s |"
        )
        lines.append("| ---: | ---: | ---: | ---: | ---: |")
        for s in r["sweep"]:
            lines.append(
                f"| {s['api_workers']} | {s['workers']} | {s['batch_absorbed_per_second']:,.0f}"
                f" | {s['batch_committed_per_second']:,.0f} | {s['single_committed_per_second']:,.0f} |"
            )
        return "\n".join(lines)
    lines.append("| figure | value | unit | bare limit | bare | ratio | target | met |")
    lines.append("| --- | ---: | --- | --- | ---: | ---: | --- | --- |")
    for f in r.get("figures", []):
        ratio = f"{f['ratio']:.2f}" if f["ratio"] is not None else ""
        met = {True: "yes", False: "NO", None: ""}[f["met"]]
        bare_value = _number(f["bare_value"], f["unit"]) if f["bare_value"] is not None else ""
        lines.append(
            f"| {f['figure']} | {_number(f['value'], f['unit'])} | {f['unit']} | {f['bare']} |"
            f" {bare_value} | {ratio} | {f['target']} | {met} |"
        )
    extra = []
    for name in (
        "batch_ingest",
        "batch_ingest_persons",
        "batch_ingest_dimensions",
        "single_ingest",
    ):
        if name in r:
            extra.append(
                f"{name}: wrk CPU {r[name]['cpu_share']:.0%} of a core; process CPU seconds "
                f"{r[name]['cpu_seconds']}; non-202 answers {r[name]['non_202'] or 'none'}"
            )
    if "latency" in r:
        extra.append(f"open-loop generator CPU {r['latency']['generator_cpu_share']:.0%} of a core")
    if r.get("rss_mb"):
        extra.append(f"peak RSS MB: {r['rss_mb']}")
    funnel = r.get("funnel_answer")
    if funnel:
        extra.append(
            "funnel answer (largest workspace, 30 days): "
            + " -> ".join(
                f"{step['event_type']} {step['users']:,} ({step['conversion']:.1%})"
                for step in funnel["steps"]
            )
        )
    for note in r.get("notes", []):
        extra.append(f"note: {note}")
    if extra:
        lines.append("")
        lines += [f"- {e}" for e in extra]
    return "\n".join(lines)
