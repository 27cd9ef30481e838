"""The Segment-compatible routes over HTTP: write keys, bodies, mapping, clock skew and every error."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dependency_injector import providers
from openapi_spec_validator import validate

from eventcore.adapters.memory import MemoryQueue
from eventcore.entrypoints.bootstrap import ApiContainer as Container
from eventcore.entrypoints.http.segment.protocol import (
    MESSAGE_TYPES,
    PROTOCOL_BATCH_BYTES,
    PROTOCOL_MESSAGE_BYTES,
)
from tests.http.support import Api, ApiFactory, Tenant, assert_error
from tests.segment.support import (
    assert_protocol_error,
    basic,
    batch,
    message,
    moment,
    post,
    send,
    stored,
    total,
)

# --- write keys --------------------------------------------------------------------------------


def key_forms(tenant: Tenant) -> dict[str, tuple[dict[str, str], dict[str, Any]]]:
    """Each way a client may send the write key: (headers, extra body fields)."""
    key = tenant.api_key
    return {
        "writeKey in the body": ({}, {"writeKey": key}),
        "Authorization: Basic": (basic(key), {}),
        "X-Write-Key": ({"X-Write-Key": key}, {}),
        "X-API-Key": ({"X-API-Key": key}, {}),
        "Authorization: Bearer": ({"Authorization": f"Bearer {key}"}, {}),
    }


FORMS = [
    "writeKey in the body",
    "Authorization: Basic",
    "X-Write-Key",
    "X-API-Key",
    "Authorization: Bearer",
]


@pytest.mark.parametrize("form", FORMS)
def test_each_write_key_form_is_accepted(api: Api, tenant: Tenant, form: str) -> None:
    """The write key is accepted in the body, as Basic credentials, or in a key header."""
    headers, fields = key_forms(tenant)[form]
    sent = message("identify")

    response = post(api, batch(sent, **fields), headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "accepted": 1, "duplicates": 0, "rejected": []}
    assert list(stored(api, tenant)) == [sent["messageId"]]


def test_the_write_key_of_the_body_is_never_stored(api: Api, tenant: Tenant) -> None:
    """Neither a batch's nor a single message's writeKey ends up in a stored event."""
    post(api, batch(message("identify"), writeKey=tenant.api_key))
    post(api, {**message("page"), "writeKey": tenant.api_key}, path="/v1/page")

    events = stored(api, tenant)

    assert len(events) == 2
    assert tenant.api_key not in json.dumps(list(events.values()))


@pytest.mark.parametrize("form", FORMS)
def test_an_unknown_write_key_is_refused_in_the_protocols_shape(
    api: Api, tenant: Tenant, form: str
) -> None:
    """A key no project has answers 401 with `code` and `message`, and stores nothing."""
    other = Tenant(tenant.owner, tenant.project_id, tenant.key_id, "ek_not-a-key")
    headers, fields = key_forms(other)[form]

    response = post(api, batch(message("identify"), **fields), headers=headers)

    assert_protocol_error(response, 401, "invalid_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert stored(api, tenant) == {}


def test_a_missing_write_key_is_refused(api: Api) -> None:
    """No key anywhere answers 401 in the protocol's shape."""
    assert_protocol_error(post(api, batch(message("identify"))), 401)


def test_a_revoked_write_key_is_refused(api: Api, tenant: Tenant) -> None:
    """A revoked API key stops working on the Segment routes too."""
    revoked = api.client.delete(f"/v1/api-keys/{tenant.key_id}", headers=tenant.headers)
    assert revoked.status_code == 204, revoked.text

    response = post(api, batch(message("identify")), headers=basic(tenant.api_key))

    assert_protocol_error(response, 401, "revoked_api_key")


def test_malformed_basic_credentials_are_refused(api: Api) -> None:
    """Basic credentials that are not base64 answer 401, not 400 or 500."""
    response = post(api, batch(message()), headers={"Authorization": "Basic %%%"})

    assert_protocol_error(response, 401, "invalid_api_key")


# --- bodies and mapping ------------------------------------------------------------------------


def test_every_message_type_is_stored_whole_with_the_documented_mapping(
    api: Api, tenant: Tenant
) -> None:
    """messageId is the id; the type is `event` for track, the message type otherwise."""
    sent = [message(kind) for kind in MESSAGE_TYPES]

    response = send(api, tenant, *sent)

    assert response.json()["accepted"] == 6
    events = stored(api, tenant)
    for original in sent:
        event = events[original["messageId"]]
        expected = original["event"] if original["type"] == "track" else original["type"]
        assert event["type"] == expected
        assert event["properties"] == original


@pytest.mark.parametrize("kind", MESSAGE_TYPES)
def test_each_single_message_route_stores_its_message(api: Api, tenant: Tenant, kind: str) -> None:
    """POST /v1/<type> takes one message, its type implied by the path, its key in the body."""
    sent = message(kind)
    del sent["type"]

    response = post(api, {**sent, "writeKey": tenant.api_key}, path=f"/v1/{kind}")

    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    event = stored(api, tenant)[sent["messageId"]]
    assert event["properties"] == {"type": kind, **sent}


def test_a_single_message_of_another_type_is_a_bad_request(api: Api, tenant: Tenant) -> None:
    """An identify message sent to /v1/track answers 400."""
    response = post(api, message("identify"), path="/v1/track", headers=basic(tenant.api_key))

    assert_protocol_error(response, 400, "type_mismatch")


def test_a_gzip_batch_is_accepted(api: Api, tenant: Tenant) -> None:
    """A gzip-compressed batch, as rudder-sdk-python sends by default, is accepted."""
    sent = message("track")

    response = post(api, batch(sent), headers=basic(tenant.api_key), compress=True)

    assert response.status_code == 200, response.text
    assert stored(api, tenant)[sent["messageId"]]["properties"] == sent


def test_a_corrupt_gzip_body_is_a_bad_request(api: Api, tenant: Tenant) -> None:
    """A body that says gzip but is not answers 400 in the protocol's shape."""
    response = post(
        api,
        b"not gzip at all",
        headers={**basic(tenant.api_key), "Content-Encoding": "gzip"},
    )

    assert_protocol_error(response, 400, "malformed_body")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"batch": [', "malformed_json"),
        (b"[]", "invalid_body"),
        (b'{"events": [{"type": "t"}]}', "invalid_body"),
        (b'{"batch": []}', "invalid_body"),
        (b'{"batch": [{}], "sentAt": "last tuesday"}', "invalid_sent_at"),
    ],
)
def test_a_body_that_is_not_a_batch_is_a_bad_request(
    api: Api, tenant: Tenant, body: bytes, code: str
) -> None:
    """Malformed JSON or a body that is not a non-empty batch answers 400."""
    response = post(api, body, headers=basic(tenant.api_key))

    assert_protocol_error(response, 400, code)


def test_invalid_messages_are_rejected_alone(api: Api, tenant: Tenant) -> None:
    """A message without userId and anonymousId is reported by index; the others are stored."""
    good = message("track")
    anonymous = message("identify", userId=None)
    other = message("page")

    response = send(api, tenant, good, anonymous, other)

    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "missing_identity")]
    assert sorted(stored(api, tenant)) == sorted([good["messageId"], other["messageId"]])


def test_a_batch_with_no_valid_message_is_a_bad_request(api: Api, tenant: Tenant) -> None:
    """When every message is rejected the answer is 400, still listing each by index."""
    response = post(
        api,
        batch(message("identify", userId=None), message("track", event="")),
        headers=basic(tenant.api_key),
    )

    body = assert_protocol_error(response, 400, "invalid_events")
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (0, "missing_identity"),
        (1, "invalid_event_name"),
    ]
    assert stored(api, tenant) == {}


def test_eventcores_own_rules_reject_by_the_messages_index(api: Api, tenant: Tenant) -> None:
    """A message eventcore refuses (a time days ahead) is reported at its index in the batch."""
    late = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    first, second = message("identify"), message("identify", timestamp=late)

    response = post(api, batch(first, second), headers=basic(tenant.api_key))

    assert response.status_code == 200, response.text
    assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [
        (1, "timestamp_in_future")
    ]


# --- idempotency -------------------------------------------------------------------------------


def test_a_resent_batch_is_stored_and_counted_once(api: Api, tenant: Tenant) -> None:
    """An SDK retry (same messageIds) is reported as duplicates and counted once."""
    sent = [message(kind) for kind in MESSAGE_TYPES]

    first = send(api, tenant, *sent)
    again = send(api, tenant, *sent)

    assert (first.json()["accepted"], first.json()["duplicates"]) == (6, 0)
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 6)
    assert len(stored(api, tenant)) == 6
    assert total(api, tenant) == 6


def test_a_message_id_repeated_within_a_batch_is_stored_once(api: Api, tenant: Tenant) -> None:
    """Two messages with one messageId in a batch are one event."""
    sent = message("track")

    response = send(api, tenant, sent, sent)

    assert (response.json()["accepted"], response.json()["duplicates"]) == (1, 1)
    assert total(api, tenant) == 1


# --- clock skew --------------------------------------------------------------------------------


def test_the_senders_clock_skew_is_corrected(api: Api, tenant: Tenant) -> None:
    """With sentAt, the stored time is timestamp + (received_at - sentAt)."""
    # The sender's clock is three hours behind; it sends a message five minutes after it happened.
    sender_now = datetime.now(UTC) - timedelta(hours=3)
    sent = message("track", timestamp=(sender_now - timedelta(minutes=5)).isoformat())

    before = datetime.now(UTC)
    post(api, batch(sent, sentAt=sender_now.isoformat()), headers=basic(tenant.api_key))
    after = datetime.now(UTC)

    stored_at = moment(stored(api, tenant)[sent["messageId"]]["timestamp"])
    received_at_least = before - (sender_now - moment(sent["timestamp"]))
    received_at_most = after - (sender_now - moment(sent["timestamp"]))
    assert received_at_least - timedelta(microseconds=1) <= stored_at <= received_at_most


def test_without_sent_at_the_timestamp_is_stored_as_sent(api: Api, tenant: Tenant) -> None:
    """A batch without sentAt keeps each message's timestamp unchanged."""
    sent = message("identify", timestamp="2026-01-10T12:59:00.250+02:00")

    post(api, {"batch": [sent]}, headers=basic(tenant.api_key))

    assert stored(api, tenant)[sent["messageId"]]["timestamp"] == "2026-01-10T10:59:00.250000Z"


def test_without_timestamp_the_time_is_when_it_was_received(api: Api, tenant: Tenant) -> None:
    """A message without timestamp happened, as far as eventcore knows, when it arrived."""
    sent = message("identify", timestamp=None)

    before = datetime.now(UTC)
    send(api, tenant, sent)
    after = datetime.now(UTC)

    stored_at = moment(stored(api, tenant)[sent["messageId"]]["timestamp"])
    assert before - timedelta(microseconds=1) <= stored_at <= after


# --- limits ------------------------------------------------------------------------------------


def sized(size: int, kind: str = "track") -> dict[str, Any]:
    """A message whose JSON, as the Python SDKs serialise it (json.dumps), is ``size`` bytes."""
    sent = message(kind, properties={"blob": ""})
    sent["properties"]["blob"] = "x" * (size - len(json.dumps(sent).encode()))
    assert len(json.dumps(sent).encode()) == size
    return sent


def test_the_protocols_largest_message_and_batch_are_accepted(api: Api, tenant: Tenant) -> None:
    """Messages of 32 KB (the SDKs' own limit) in a batch of over 500 KB are all stored whole."""
    count = PROTOCOL_BATCH_BYTES // PROTOCOL_MESSAGE_BYTES + 1
    sent = [sized(PROTOCOL_MESSAGE_BYTES) for _ in range(count)]
    assert len(json.dumps(batch(*sent)).encode()) > PROTOCOL_BATCH_BYTES

    response = send(api, tenant, *sent)

    assert response.json()["accepted"] == count
    events = stored(api, tenant)
    assert all(events[m["messageId"]]["properties"] == m for m in sent)


def test_a_message_over_the_event_limit_is_rejected_alone(api: Api, tenant: Tenant) -> None:
    """A message one byte over EVENTCORE_MAX_EVENT_BYTES is rejected; the rest go through."""
    too_big = sized(api.settings.max_event_bytes + 1)

    response = send(api, tenant, message("identify"), too_big)

    assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [
        (1, "message_too_large")
    ]


def test_a_body_over_the_request_limit_is_too_large(make_api: ApiFactory) -> None:
    """A body over EVENTCORE_MAX_REQUEST_BYTES answers 413, plain or once inflated."""
    api = make_api(env={"EVENTCORE_MAX_REQUEST_BYTES": "4000"})
    tenant = api.tenant()
    big = batch(*(message("identify") for _ in range(20)))
    assert len(json.dumps(big).encode()) > 4000

    plain = post(api, big, headers=basic(tenant.api_key))
    inflated = post(api, big, headers=basic(tenant.api_key), compress=True)

    assert_protocol_error(plain, 413)
    assert_protocol_error(inflated, 413, "request_too_large")
    assert len(gzip.compress(json.dumps(big).encode())) < 4000
    assert stored(api, tenant) == {}


def test_more_messages_than_the_batch_limit_is_too_large(make_api: ApiFactory) -> None:
    """More messages than EVENTCORE_MAX_BATCH_EVENTS answers 413 and stores none of them."""
    api = make_api(env={"EVENTCORE_MAX_BATCH_EVENTS": "3"})
    tenant = api.tenant()

    response = post(
        api, batch(*(message("identify") for _ in range(4))), headers=basic(tenant.api_key)
    )

    assert_protocol_error(response, 413, "too_many_events")
    assert stored(api, tenant) == {}


# --- back-pressure -----------------------------------------------------------------------------


def test_a_workspace_over_its_rate_is_told_to_retry_later(make_api: ApiFactory) -> None:
    """Over the events-per-second limit answers 429 with Retry-After in the protocol's shape."""
    api = make_api(
        env={"EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "5", "EVENTCORE_RATE_LIMIT_BURST": "5"}
    )
    tenant = api.tenant()
    within = [message("identify") for _ in range(5)]

    send(api, tenant, *within)
    over = post(api, batch(*(message("identify") for _ in range(5))), headers=basic(tenant.api_key))

    assert_protocol_error(over, 429, "rate_limited")
    assert int(over.headers["Retry-After"]) >= 1
    assert sorted(stored(api, tenant)) == sorted(m["messageId"] for m in within)


def unavailable_queue(container: Container) -> None:
    queue = MemoryQueue()
    queue.available = False
    container.gateways.queue.override(providers.Object(queue))


def test_an_unavailable_queue_accepts_nothing(make_api: ApiFactory) -> None:
    """With the queue down the answer is 503 with Retry-After, so the SDK keeps the batch."""
    api = make_api(configure=unavailable_queue)
    tenant = api.tenant()

    response = post(api, batch(message("track"), message("page")), headers=basic(tenant.api_key))

    assert_protocol_error(response, 503)
    assert int(response.headers["Retry-After"]) >= 1
    assert stored(api, tenant) == {}
    assert total(api, tenant) == 0


# --- beside the native API ---------------------------------------------------------------------


def test_the_native_routes_keep_their_error_shape(api: Api, tenant: Tenant) -> None:
    """/v1/ingest still answers errors as {"error": {...}} and 202 on success."""
    assert_error(api.client.post("/v1/ingest", json={"type": "t"}), 401)
    accepted = api.ingest(tenant, {"id": "native-1", "type": "t"})
    assert accepted.status_code == 202, accepted.text


def test_the_segment_routes_are_in_the_openapi_document(api: Api) -> None:
    """Every Segment route is documented as a POST, and the document stays valid."""
    response = api.client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document = response.json()

    validate(document)
    for path in ["/v1/batch", *(f"/v1/{kind}" for kind in MESSAGE_TYPES)]:
        assert "post" in document["paths"][path], path
        assert "200" in document["paths"][path]["post"]["responses"], path
