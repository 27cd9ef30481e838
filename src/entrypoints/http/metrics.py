"""Application metrics beside the request metrics of the Prometheus middleware."""

from __future__ import annotations

from prometheus_client import Counter

from eventcore.usecases.ingest import IngestReceipt

EVENTS = Counter(
    "eventcore_ingest_events_total",
    "Events received by the ingest API, by outcome (accepted, duplicate, rejected).",
    ["outcome", "reason"],
)


def record_receipt(receipt: IngestReceipt) -> None:
    if receipt.accepted:
        EVENTS.labels("accepted", "").inc(receipt.accepted)
    if receipt.duplicates:
        EVENTS.labels("duplicate", "").inc(receipt.duplicates)
    for rejected in receipt.rejected:
        EVENTS.labels("rejected", rejected.code).inc()
