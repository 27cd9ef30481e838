"""The Segment routes take the native input rules: unreadable numbers, repeated fields, codings.

Each message is its event's properties, so the core's number rule holds for the whole message;
a message giving one of its own fields twice is rejected alone; the content codings are exactly
the native ones. On both profiles.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import httpx
import pytest

from tests.http.conftest import either
from tests.http.support import Api, Tenant
from tests.segment.support import assert_protocol_error, basic, batch, message, stored

__all__ = ["either"]


@pytest.fixture
def tenant(either: Api) -> Tenant:
    return either.tenant()


def post_batch(api: Api, tenant: Tenant, body: bytes, **headers: str) -> httpx.Response:
    sent = {"Content-Type": "application/json", **basic(tenant.api_key), **headers}
    return api.client.post("/v1/batch", content=body, headers=sent)


def text(value: Any) -> bytes:
    return json.dumps(value).encode()


def with_raw(template: dict[str, Any], marker: str, raw: bytes) -> bytes:
    """The JSON of ``template`` with the string ``marker`` replaced by the raw JSON ``raw``."""
    return text(template).replace(json.dumps(marker).encode(), raw)


@pytest.mark.parametrize("number", [b"1" + b"0" * 5000, b"1e999", b"-9223372036854775809"])
def test_a_message_with_an_unreadable_number_is_rejected_alone(
    either: Api, tenant: Tenant, number: bytes
) -> None:
    """A number readers cannot read back, anywhere in a message, rejects that message alone."""
    hostile = message(messageId="hostile", properties={"total": "NUMBER"})
    body = with_raw(batch(hostile, message(messageId="beside")), "NUMBER", number)
    response = post_batch(either, tenant, body)
    assert response.status_code == 200, response.text
    rejected = response.json()["rejected"]
    assert [(r["index"], r["code"]) for r in rejected] == [(0, "invalid_number")]
    assert set(stored(either, tenant)) == {"beside"}


REPEATS = {
    "messageId": (b'"messageId": "first"', b'"messageId": "first", "messageId": "second"'),
    "type": (b'"type": "track"', b'"type": "track", "type": "identify"'),
    "userId": (b'"userId": "user-1"', b'"userId": "user-1", "userId": "user-2"'),
    "event": (b'"event": "Order Completed"', b'"event": "A", "event": "B"'),
    "timestamp": (b'"timestamp": ', b'"timestamp": "2026-01-01T00:00:00Z", "timestamp": '),
    "properties": (b'"properties": {', b'"properties": {"a": 1}, "properties": {'),
}


@pytest.mark.parametrize("field", sorted(REPEATS))
def test_a_message_giving_a_field_twice_is_rejected_alone(
    either: Api, tenant: Tenant, field: str
) -> None:
    """A message that gives one of its top-level fields twice is rejected with `duplicate_key`."""
    plain, repeated = REPEATS[field]
    hostile = text(message(messageId="first"))
    assert plain in hostile
    hostile = hostile.replace(plain, repeated, 1)
    body = b'{"batch": [' + hostile + b", " + text(message(messageId="beside")) + b"]}"
    response = post_batch(either, tenant, body)
    assert response.status_code == 200, response.text
    rejected = response.json()["rejected"]
    assert [(r["index"], r["code"]) for r in rejected] == [(0, "duplicate_key")]
    assert f"`{field}`" in rejected[0]["message"]
    assert set(stored(either, tenant)) == {"beside"}


def test_a_single_message_route_refuses_a_repeated_field(either: Api, tenant: Tenant) -> None:
    """POST /v1/track with a message giving `messageId` twice: 400 `duplicate_key`, nothing stored."""
    body = b'{"messageId": "a", "messageId": "b", "event": "x", "userId": "u"}'
    response = either.client.post(
        "/v1/track",
        content=body,
        headers={"Content-Type": "application/json", **basic(tenant.api_key)},
    )
    assert_protocol_error(response, 400, "duplicate_key")
    assert stored(either, tenant) == {}


def test_nested_names_are_not_repeats(either: Api, tenant: Tenant) -> None:
    """`type`, `name` and repeated keys inside a message's objects are stored as sent."""
    sent = message(
        messageId="nested",
        properties={"type": "x", "timestamp": 1, "messageId": "y"},
        context={"library": {"name": "n"}, "device": {"type": "ios"}},
    )
    response = post_batch(either, tenant, text(batch(sent)))
    assert response.json()["rejected"] == []
    assert set(stored(either, tenant)) == {"nested"}


def members(*texts: bytes) -> bytes:
    return b"".join(gzip.compress(part) for part in texts)


def test_a_multi_member_gzip_batch_is_read_whole(either: Api, tenant: Tenant) -> None:
    body = text(batch(message(messageId="one"), message(messageId="two")))
    cut = len(body) // 3
    response = post_batch(
        either, tenant, members(body[:cut], body[cut:]), **{"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.text
    assert set(stored(either, tenant)) == {"one", "two"}


def test_data_after_the_last_gzip_member_is_refused(either: Api, tenant: Tenant) -> None:
    body = gzip.compress(text(batch(message(messageId="trailed")))) + b"garbage"
    response = post_batch(either, tenant, body, **{"Content-Encoding": "gzip"})
    assert_protocol_error(response, 400, "malformed_body")
    assert stored(either, tenant) == {}


@pytest.mark.parametrize("encoding", ["br", "deflate", "gzip, gzip", "zstd", "made-up"])
@pytest.mark.parametrize("path", ["/v1/batch", "/v1/track"])
def test_any_other_content_encoding_is_unsupported(
    either: Api, tenant: Tenant, encoding: str, path: str
) -> None:
    """On every Segment route a coding other than gzip or identity is a 415, nothing stored."""
    plain = text(batch(message()) if path == "/v1/batch" else message())
    body = zlib.compress(plain) if encoding == "deflate" else plain
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    response = either.client.post(path, content=body, headers={**headers, **basic(tenant.api_key)})
    assert_protocol_error(response, 415, "unsupported_encoding")
    assert stored(either, tenant) == {}


def test_a_gzip_bomb_is_bounded_by_the_request_limit(either: Api, tenant: Tenant) -> None:
    limit = either.settings.limits.max_request_bytes
    bomb = gzip.compress(b" " * (limit + 1))
    response = post_batch(either, tenant, bomb, **{"Content-Encoding": "gzip"})
    assert_protocol_error(response, 413, "request_too_large")
