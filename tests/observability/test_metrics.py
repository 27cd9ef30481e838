"""The API's /metrics, scraped and parsed with the Prometheus client's own parser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from tests.http.support import Api, ApiFactory

from eventcore.entrypoints.http.metrics import QUEUE_MESSAGES, refresh_queue_gauges


class Scrape:
    """One scrape's samples, looked up by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = [sample for family in self.families.values() for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and _matches(sample.labels, labels)
        )

    def has(self, name: str, **labels: str) -> bool:
        return any(
            sample.name == name and _matches(sample.labels, labels) for sample in self.samples
        )


def _matches(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


def scrape(api: Api) -> Scrape:
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def events(*types: str) -> dict[str, Any]:
    return {"events": [{"id": f"e-{n}", "type": kind} for n, kind in enumerate(types)]}


def test_ingested_events_are_counted_by_outcome_and_reason(api: Api) -> None:
    """Accepted, duplicate and rejected events (by reason) add up to what the receipts said,
    including a request whose events were all invalid (400)."""
    tenant = api.tenant()
    before = scrape(api)

    first = api.ingest(tenant, events("a", "b", ""))
    again = api.ingest(tenant, events("a", "b"))
    invalid = api.ingest(tenant, {"events": [{"type": ""}, {"id": "x"}]})

    assert first.json()["accepted"] == 2
    assert again.json()["duplicates"] == 2
    assert invalid.status_code == 400
    after = scrape(api)

    def delta(**labels: str) -> float:
        name = "eventcore_ingest_events_total"
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta(outcome="accepted") == 2
    assert delta(outcome="duplicate") == 2
    assert delta(outcome="rejected", reason="invalid_event") == 3


def test_rate_limited_events_are_counted(make_api: ApiFactory) -> None:
    """Every event of a request refused with 429 counts as rate-limited."""
    api = make_api(
        {"EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "0.001", "EVENTCORE_RATE_LIMIT_BURST": "1"}
    )
    tenant = api.tenant()
    before = scrape(api).value("eventcore_rate_limited_events_total")

    statuses = [api.ingest(tenant, events("a", "b", "c")).status_code for _ in range(2)]

    assert statuses[-1] == 429
    refused = statuses.count(429)
    after = scrape(api).value("eventcore_rate_limited_events_total")
    assert after - before == 3 * refused


def test_requests_are_counted_by_route_and_status_with_latency_histograms(api: Api) -> None:
    """Requests are counted per route template and status, and timed in a histogram."""
    account = api.signup()
    project_id = api.create_project(account)
    for _ in range(3):
        assert api.events(account, project_id).status_code == 200
    assert api.client.get("/v1/events", headers=account.headers).status_code == 400

    after = scrape(api)

    route = {"path": "/v1/events", "method": "GET"}
    assert after.value("eventcore_requests_total", status_code="200", **route) >= 3
    assert after.value("eventcore_requests_total", status_code="400", **route) >= 1
    assert after.families["eventcore_request_duration_seconds"].type == "histogram"
    count = after.value("eventcore_request_duration_seconds_count", status_code="200", **route)
    infinite = after.value(
        "eventcore_request_duration_seconds_bucket", status_code="200", le="+Inf", **route
    )
    assert count == infinite >= 3


def test_the_embedded_profile_reports_no_queue_length(api: Api) -> None:
    """Without RabbitMQ there is no queue, and /metrics says nothing about one."""
    after = scrape(api)

    assert not after.has("eventcore_queue_messages")


async def test_a_queue_length_that_cannot_be_read_is_not_reported() -> None:
    """When RabbitMQ cannot say how long the queue is, the gauge is cleared, not left stale."""

    class Length:
        messages, consumers = 7, 1

    async def answers() -> dict[str, Any]:
        return {"main": Length()}

    async def fails() -> dict[str, Any]:
        raise ConnectionError("broker gone")

    await refresh_queue_gauges(answers)
    assert QUEUE_MESSAGES.labels("main")._value.get() == 7
    await refresh_queue_gauges(fails)

    assert [s for m in QUEUE_MESSAGES.collect() for s in m.samples] == []
