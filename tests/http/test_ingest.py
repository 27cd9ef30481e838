"""POST /v1/ingest over HTTP: keys, bodies, per-event errors, limits, idempotency and back-pressure."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dependency_injector import providers

from eventcore.adapters.memory import MemoryQueue
from eventcore.entrypoints.bootstrap import ApiContainer as Container
from tests.http.support import Api, ApiFactory, Tenant, assert_error

RECEIPT = {"accepted", "duplicates", "rejected"}


def post_raw(api: Api, tenant: Tenant, body: bytes, **headers: str) -> Any:
    return api.client.post(
        "/v1/ingest",
        content=body,
        headers={"X-API-Key": tenant.api_key, "Content-Type": "application/json", **headers},
    )


def stored_ids(api: Api, tenant: Tenant) -> list[str]:
    return sorted(e["id"] for e in api.all_events(tenant.owner, tenant.project_id))


def event_days(timestamps: Iterable[str]) -> list[datetime]:
    """The UTC days holding these timestamps, and today (the day the server stamps events on)."""
    moments = [datetime.fromisoformat(text) for text in timestamps] + [datetime.now(UTC)]
    return sorted(
        {m.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) for m in moments}
    )


def total(api: Api, tenant: Tenant) -> int:
    """Every counted event of the project: the day counts of each day its stored events fall on.

    The windows come from the data the test sent (never from a fixed start), so each spans one
    day at any date and never nears the bucket limit.
    """
    counted = 0
    for day in event_days(e["timestamp"] for e in api.all_events(tenant.owner, tenant.project_id)):
        response = api.counts(
            tenant.owner,
            tenant.project_id,
            granularity="day",
            start=day.isoformat(),
            end=(day + timedelta(days=1)).isoformat(),
        )
        assert response.status_code == 200, response.text
        counted += int(response.json()["total"])
    return counted


# --- accepted bodies ---------------------------------------------------------------------------


def test_a_single_event_object_is_accepted_and_stored(api: Api, tenant: Tenant) -> None:
    """One event object answers 202 with a receipt, and the event is stored as sent."""
    response = api.ingest(
        tenant,
        {
            "id": "evt-1",
            "type": "signup",
            "timestamp": "2025-03-01T10:15:30Z",
            "properties": {"plan": "pro", "seats": 3, "tags": ["a", "b"]},
        },
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    (event,) = api.all_events(tenant.owner, tenant.project_id)
    assert event["id"] == "evt-1"
    assert event["type"] == "signup"
    assert event["timestamp"] == "2025-03-01T10:15:30Z"
    assert event["properties"] == {"plan": "pro", "seats": 3, "tags": ["a", "b"]}
    assert event["received_at"].endswith("Z")


def test_a_batch_is_accepted_and_stored(api: Api, tenant: Tenant) -> None:
    """A batch answers 202 and stores every event."""
    batch = {"events": [{"id": f"b{i}", "type": "view"} for i in range(10)]}

    response = api.ingest(tenant, batch)

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 10, "duplicates": 0, "rejected": []}
    assert stored_ids(api, tenant) == sorted(f"b{i}" for i in range(10))


def test_an_event_without_id_or_timestamp_gets_both(api: Api, tenant: Tenant) -> None:
    """The server gives an id and the receipt time to an event sent without them."""
    before = datetime.now(UTC) - timedelta(seconds=5)

    api.ingest(tenant, {"type": "ping"})

    (event,) = api.all_events(tenant.owner, tenant.project_id)
    assert event["id"]
    assert event["properties"] == {}
    moment = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert before <= moment <= datetime.now(UTC) + timedelta(seconds=5)


def test_epoch_second_timestamps_are_accepted(api: Api, tenant: Tenant) -> None:
    """A timestamp in epoch seconds is stored as that UTC time."""
    api.ingest(tenant, {"id": "e", "type": "t", "timestamp": 1740824130})

    (event,) = api.all_events(tenant.owner, tenant.project_id)
    assert event["timestamp"] == "2025-03-01T10:15:30Z"


@pytest.mark.parametrize("form", ["x-api-key", "bearer"])
def test_both_key_header_forms_are_accepted(api: Api, tenant: Tenant, form: str) -> None:
    """The key is accepted as `X-API-Key` and as `Authorization: Bearer`."""
    headers = (
        {"X-API-Key": tenant.api_key}
        if form == "x-api-key"
        else {"Authorization": f"Bearer {tenant.api_key}"}
    )

    response = api.client.post("/v1/ingest", json={"type": form}, headers=headers)

    assert response.status_code == 202, response.text
    assert [e["type"] for e in api.all_events(tenant.owner, tenant.project_id)] == [form]


def test_a_gzip_body_is_accepted(api: Api, tenant: Tenant) -> None:
    """A body sent with `Content-Encoding: gzip` is decompressed and stored."""
    batch = {"events": [{"id": f"g{i}", "type": "zipped"} for i in range(50)]}

    response = post_raw(
        api, tenant, gzip.compress(json.dumps(batch).encode()), **{"Content-Encoding": "gzip"}
    )

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 50
    assert len(stored_ids(api, tenant)) == 50


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"X-API-Key": ""}],
    ids=["none", "empty-bearer", "basic", "empty-header"],
)
def test_a_missing_key_is_refused(api: Api, tenant: Tenant, headers: dict[str, str]) -> None:
    """Ingest without an API key answers 401 and stores nothing."""
    response = api.client.post("/v1/ingest", json={"type": "x"}, headers=headers)

    assert_error(response, 401)
    assert stored_ids(api, tenant) == []


@pytest.mark.parametrize("form", ["x-api-key", "bearer"])
def test_an_unknown_key_is_refused(api: Api, tenant: Tenant, form: str) -> None:
    """An API key that was never issued answers 401, whichever header carries it."""
    fake = "ek_" + "x" * 43
    headers = {"X-API-Key": fake} if form == "x-api-key" else {"Authorization": f"Bearer {fake}"}

    assert_error(api.client.post("/v1/ingest", json={"type": "x"}, headers=headers), 401)
    assert stored_ids(api, tenant) == []


def test_an_access_token_is_not_an_api_key(api: Api, tenant: Tenant) -> None:
    """A user's access token does not work as an ingest key."""
    response = api.client.post("/v1/ingest", json={"type": "x"}, headers=tenant.headers)
    assert_error(response, 401)


# --- per-event and whole-request errors --------------------------------------------------------


def test_invalid_events_are_reported_by_index_and_valid_ones_stored(
    api: Api, tenant: Tenant
) -> None:
    """Each invalid event is rejected by its index; the valid ones still go through."""
    future = (datetime.now(UTC) + timedelta(hours=25)).isoformat()
    batch = {
        "events": [
            {"id": "ok-0", "type": "view"},
            {"id": "bad-1"},
            {"id": "bad-2", "type": ""},
            {"id": "ok-3", "type": "view", "properties": {"a": 1}},
            {"id": "bad-4", "type": "view", "timestamp": future},
            {"id": "bad-5", "type": "view", "properties": [1, 2]},
            {"id": "x" * 129, "type": "view"},
            {"id": "bad-7", "type": "view", "timestamp": "yesterday"},
            {"id": "bad-8", "type": "view", "properties": {"big": "x" * 40_000}},
            "not an object",
        ]
    }

    response = api.ingest(tenant, batch)

    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["accepted"] == 2
    assert receipt["duplicates"] == 0
    assert [r["index"] for r in receipt["rejected"]] == [1, 2, 4, 5, 6, 7, 8, 9]
    for rejection in receipt["rejected"]:
        assert rejection["code"]
        assert rejection["message"]
    by_index = {r["index"]: r["code"] for r in receipt["rejected"]}
    assert by_index[4] == "timestamp_in_future"
    assert stored_ids(api, tenant) == ["ok-0", "ok-3"]


def test_a_timestamp_within_24_hours_ahead_is_accepted(api: Api, tenant: Tenant) -> None:
    """A timestamp 23 h ahead is accepted; 25 h ahead is rejected."""
    now = datetime.now(UTC)
    batch = {
        "events": [
            {"id": "soon", "type": "t", "timestamp": (now + timedelta(hours=23)).isoformat()},
            {"id": "late", "type": "t", "timestamp": (now + timedelta(hours=25)).isoformat()},
            {"id": "late-epoch", "type": "t", "timestamp": (now + timedelta(hours=25)).timestamp()},
        ]
    }

    receipt = api.ingest(tenant, batch).json()

    assert receipt["accepted"] == 1
    assert [r["index"] for r in receipt["rejected"]] == [1, 2]
    assert stored_ids(api, tenant) == ["soon"]


def test_a_request_whose_every_event_is_invalid_is_a_bad_request(api: Api, tenant: Tenant) -> None:
    """Every event invalid answers 400, with the rejected list inside the error."""
    response = api.ingest(tenant, {"events": [{"id": "a"}, {"type": ""}]})

    error = assert_error(response, 400)
    assert [r["index"] for r in error["rejected"]] == [0, 1]
    for rejection in error["rejected"]:
        assert set(rejection) == {"index", "code", "message"}
    assert stored_ids(api, tenant) == []


def test_a_single_invalid_event_is_a_bad_request(api: Api, tenant: Tenant) -> None:
    """One invalid event object answers 400 with its rejection."""
    error = assert_error(api.ingest(tenant, {"type": 42}), 400)
    assert [r["index"] for r in error["rejected"]] == [0]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"type": "x"', b"", b"\xff\xfe", b'{"type": "x"} trailing'],
    ids=["broken", "unterminated", "empty", "not-utf8", "trailing"],
)
def test_malformed_json_is_a_bad_request(api: Api, tenant: Tenant, body: bytes) -> None:
    """A body that is not well-formed JSON answers 400 and stores nothing."""
    assert_error(post_raw(api, tenant, body), 400)
    assert stored_ids(api, tenant) == []


@pytest.mark.parametrize(
    "body",
    [
        b'[{"type": "x"}]',
        b'"a string"',
        b"42",
        b"null",
        b"true",
        b'{"events": []}',
        b'{"events": "x"}',
        b'{"events": {"type": "x"}}',
    ],
    ids=["array", "string", "number", "null", "bool", "empty-batch", "events-string", "events-obj"],
)
def test_a_body_that_is_not_an_event_or_a_batch_is_a_bad_request(
    api: Api, tenant: Tenant, body: bytes
) -> None:
    """A JSON body that is neither an event object nor a batch answers 400."""
    assert_error(post_raw(api, tenant, body), 400)
    assert stored_ids(api, tenant) == []


@pytest.mark.parametrize(
    "body",
    [b"this is not gzip at all", gzip.compress(b'{"type": "x"}')[:-12], b"\x1f\x8b\x08\x00garbage"],
    ids=["not-gzip", "truncated", "bad-stream"],
)
def test_a_corrupt_gzip_body_is_a_bad_request(api: Api, tenant: Tenant, body: bytes) -> None:
    """A body that claims gzip but is not valid gzip answers 400."""
    assert_error(post_raw(api, tenant, body, **{"Content-Encoding": "gzip"}), 400)
    assert stored_ids(api, tenant) == []


def test_an_unsupported_content_encoding_is_unsupported(api: Api, tenant: Tenant) -> None:
    """A Content-Encoding other than gzip or identity is refused with a 415, not guessed at."""
    response = post_raw(api, tenant, b'{"type": "x"}', **{"Content-Encoding": "br"})
    assert_error(response, 415, "unsupported_encoding")


# --- limits ------------------------------------------------------------------------------------


def gzip_bomb(megabytes: int) -> bytes:
    """``megabytes`` MB of zeros, gzip-compressed without ever holding them in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(megabytes)]
    parts.append(compressor.flush())
    return b"".join(parts)


def test_a_gzip_bomb_is_too_large_without_being_inflated(api: Api, tenant: Tenant) -> None:
    """50 MB of zeros gzipped answer 413, and decompression stops near the limit."""
    bomb = gzip_bomb(50)
    assert len(bomb) < api.settings.max_request_bytes
    tracemalloc.start()
    try:
        response = post_raw(api, tenant, bomb, **{"Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert_error(response, 413)
    # The whole bomb would be 50 MB; a few times the 1 MB limit is what reading it may cost.
    assert peak < 10 * 1024 * 1024, f"peak {peak} bytes"
    assert stored_ids(api, tenant) == []


def test_a_body_over_the_byte_limit_is_too_large(api: Api, tenant: Tenant) -> None:
    """A plain body over the request byte limit answers 413."""
    limit = api.settings.max_request_bytes
    events = [
        {"type": "big", "properties": {"pad": "x" * 30_000}} for _ in range(limit // 30_000 + 2)
    ]
    body = json.dumps({"events": events}).encode()
    assert len(body) > limit

    assert_error(post_raw(api, tenant, body), 413)
    assert stored_ids(api, tenant) == []


def test_a_gzip_body_inflating_over_the_byte_limit_is_too_large(api: Api, tenant: Tenant) -> None:
    """A gzip body that is small but inflates past the byte limit answers 413."""
    limit = api.settings.max_request_bytes
    events = [
        {"type": "big", "properties": {"pad": "y" * 30_000}} for _ in range(limit // 30_000 + 2)
    ]
    body = gzip.compress(json.dumps({"events": events}).encode())
    assert len(body) < limit

    assert_error(post_raw(api, tenant, body, **{"Content-Encoding": "gzip"}), 413)


def test_more_events_than_the_batch_limit_is_too_large(api: Api, tenant: Tenant) -> None:
    """A batch with one event more than the limit answers 413 and stores nothing."""
    limit = api.settings.max_batch_events
    batch = {"events": [{"id": str(i), "type": "t"} for i in range(limit + 1)]}

    assert_error(api.ingest(tenant, batch), 413)
    assert stored_ids(api, tenant) == []
    full = {"events": [{"id": str(i), "type": "t"} for i in range(limit)]}
    assert api.ingest(tenant, full).json()["accepted"] == limit


# --- idempotency -------------------------------------------------------------------------------


def test_resent_ids_are_stored_and_counted_once(api: Api, tenant: Tenant) -> None:
    """Ids sent again in another request are reported as duplicates and counted once."""
    first = api.ingest(tenant, {"events": [{"id": i, "type": "t"} for i in ("a", "b", "c")]})
    again = api.ingest(tenant, {"events": [{"id": i, "type": "t"} for i in ("b", "c", "d")]})
    single = api.ingest(tenant, {"id": "a", "type": "t"})

    assert first.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert again.json() == {"accepted": 1, "duplicates": 2, "rejected": []}
    assert single.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert stored_ids(api, tenant) == ["a", "b", "c", "d"]
    assert total(api, tenant) == 4


def test_an_id_repeated_within_one_batch_is_stored_once(api: Api, tenant: Tenant) -> None:
    """The same id twice in one batch is one event and one duplicate."""
    response = api.ingest(
        tenant, {"events": [{"id": "same", "type": "t"}, {"id": "same", "type": "t"}]}
    )

    assert response.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert stored_ids(api, tenant) == ["same"]
    assert total(api, tenant) == 1


def test_resent_ids_are_counted_once_after_a_restart(make_api: ApiFactory) -> None:
    """A resend after the app restarted on the same data dir is still counted once."""
    api = make_api()
    tenant = api.tenant()
    api.ingest(tenant, {"events": [{"id": "r1", "type": "t"}, {"id": "r2", "type": "t"}]})
    api.stop()

    restarted = make_api(data_dir=api.data_dir)
    response = restarted.ingest(
        tenant, {"events": [{"id": "r2", "type": "t"}, {"id": "r3", "type": "t"}]}
    )

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] + response.json()["duplicates"] == 2
    assert stored_ids(restarted, tenant) == ["r1", "r2", "r3"]
    assert total(restarted, tenant) == 3


# --- back-pressure -----------------------------------------------------------------------------


def test_a_workspace_over_its_rate_is_told_to_retry_later(make_api: ApiFactory) -> None:
    """Over the events-per-second limit answers 429 with Retry-After, and stores nothing of it."""
    api = make_api(
        env={
            "EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "5",
            "EVENTCORE_RATE_LIMIT_BURST": "5",
        }
    )
    tenant = api.tenant()
    other = api.tenant("Other")

    within = api.ingest(tenant, {"events": [{"id": f"in{i}", "type": "t"} for i in range(5)]})
    over = api.ingest(tenant, {"events": [{"id": f"over{i}", "type": "t"} for i in range(5)]})
    elsewhere = api.ingest(other, {"events": [{"id": f"o{i}", "type": "t"} for i in range(5)]})

    assert within.status_code == 202, within.text
    assert_error(over, 429)
    assert int(over.headers["Retry-After"]) >= 1
    assert elsewhere.status_code == 202, "the limit is per workspace"
    assert stored_ids(api, tenant) == [f"in{i}" for i in range(5)]


def unavailable_queue(container: Container) -> None:
    queue = MemoryQueue()
    queue.available = False
    container.gateways.queue.override(providers.Object(queue))


def test_an_unavailable_queue_accepts_nothing(make_api: ApiFactory) -> None:
    """With the queue down, ingest answers 503 with Retry-After and nothing is stored."""
    api = make_api(configure=unavailable_queue)
    tenant = api.tenant()

    response = api.ingest(
        tenant, {"events": [{"id": "q1", "type": "t"}, {"id": "q2", "type": "t"}]}
    )

    assert_error(response, 503)
    assert int(response.headers["Retry-After"]) >= 1
    assert stored_ids(api, tenant) == []
    assert total(api, tenant) == 0
