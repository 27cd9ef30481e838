"""POST /v1/ingest refuses what readers cannot read back or what the server would have to guess.

Numbers outside what every JSON reader reads back exactly, an event giving one of its fields
twice, and a body in a content coding other than gzip or none: each is refused as documented,
with nothing of it stored, on both profiles.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import httpx
import msgspec
import pytest

from tests.http.support import Api, Tenant, assert_error


def post(api: Api, tenant: Tenant, body: bytes, **headers: str) -> httpx.Response:
    sent = {"X-API-Key": tenant.api_key, "Content-Type": "application/json", **headers}
    return api.client.post("/v1/ingest", content=body, headers=sent)


def good(event_id: str) -> bytes:
    return b'{"id":"%s","type":"click","properties":{"n":1}}' % event_id.encode()


def batch(*events: bytes) -> bytes:
    return b'{"events":[' + b",".join(events) + b"]}"


def stored(api: Api, tenant: Tenant) -> dict[str, Any]:
    return {e["id"]: e for e in api.all_events(tenant.owner, tenant.project_id)}


@pytest.fixture
def tenant(either: Api) -> Tenant:
    return either.tenant()


# --- numbers -----------------------------------------------------------------------------------

UNREADABLE = [
    b"1" + b"0" * 4999,
    b"-" + b"9" * 400,
    b"9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"1e999",
    b"-1E+400",
    b"1" * 400 + b".5",
    b"0.1e310",
]
READABLE = [
    b"9223372036854775807",
    b"-9223372036854775808",
    b"1.7976931348623157e308",
    b"1e-400",
    b"0." + b"0" * 400 + b"1",
    b"3.14159265358979323846264338327950288",
    b'"1e999"',
    b'"' + b"1" * 40 + b'"',
]


@pytest.mark.parametrize("number", UNREADABLE, ids=lambda n: n[:24].decode())
@pytest.mark.parametrize("batched", [False, True], ids=["alone", "in a batch"])
def test_a_number_readers_cannot_read_back_rejects_its_event(
    either: Api, tenant: Tenant, number: bytes, batched: bool
) -> None:
    """An integer outside -2^63..2^63-1, or a number that overflows a float, rejects its event."""
    hostile = b'{"id":"hostile","type":"click","properties":{"a":{"b":[' + number + b"]}}}"
    if batched:
        response = post(either, tenant, batch(hostile, good("beside")))
        assert response.status_code == 202, response.text
        rejected = response.json()["rejected"]
    else:
        rejected = assert_error(post(either, tenant, hostile), 400, "invalid_events")["rejected"]
    assert [(r["index"], r["code"]) for r in rejected] == [(0, "invalid_number")]
    assert number[:20].decode() in rejected[0]["message"]
    assert "`properties`" in rejected[0]["message"]
    assert set(stored(either, tenant)) == ({"beside"} if batched else set())


@pytest.mark.parametrize("number", READABLE, ids=lambda n: n[:24].decode())
def test_numbers_readers_read_back_are_stored_as_sent(
    either: Api, tenant: Tenant, number: bytes
) -> None:
    """The 64-bit extremes, tiny floats and number-like strings are stored, their text as sent."""
    body = b'{"id":"kept","type":"click","properties":{"n":' + number + b"}}"
    response = post(either, tenant, batch(body, good("beside")))
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    answer = either.events(tenant.owner, tenant.project_id)
    # Every reader reads the page back: msgspec, and Python's json, which httpx uses.
    assert msgspec.json.decode(answer.content)
    kept = next(e for e in json.loads(answer.content)["events"] if e["id"] == "kept")
    assert kept["properties"] == {"n": json.loads(number)}
    assert b'"n":' + number in answer.content


def test_a_number_check_is_not_fooled_by_strings(either: Api, tenant: Tenant) -> None:
    """Exponents and digit runs inside strings (hex ids) are text: the event is stored."""
    props = b'{"id":"3e4f9a","phone":"12345678901234567890123","s":"\\"1e999"}'
    body = b'{"id":"text","type":"click","properties":' + props + b"}"
    response = post(either, tenant, batch(body, good("beside")))
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}


# --- duplicate keys ----------------------------------------------------------------------------

REPEATED = {
    "id": b'{"id":"first","id":"second","type":"click"}',
    "type": b'{"id":"first","type":"a","type":"b"}',
    "timestamp": b'{"id":"first","type":"a","timestamp":1700000000,"timestamp":1700000001}',
    "properties": b'{"id":"first","type":"a","properties":{"x":1},"properties":{"y":2}}',
    "id, escaped": b'{"id":"first","\\u0069d":"second","type":"click"}',
    "id, then null": b'{"id":"first","type":"click","id":null}',
    "type, in spaced JSON": b'{"id": "first", "type": "a",\n "type" : "b"}',
}


@pytest.mark.parametrize("case", sorted(REPEATED))
@pytest.mark.parametrize("batched", [False, True], ids=["alone", "in a batch"])
def test_an_event_giving_a_field_twice_is_rejected(
    either: Api, tenant: Tenant, case: str, batched: bool
) -> None:
    """An event that gives `id`, `type`, `timestamp` or `properties` twice is rejected alone."""
    if batched:
        response = post(either, tenant, batch(REPEATED[case], good("beside")))
        assert response.status_code == 202, response.text
        rejected = response.json()["rejected"]
    else:
        rejected = assert_error(post(either, tenant, REPEATED[case]), 400, "invalid_events")[
            "rejected"
        ]
    assert [(r["index"], r["code"]) for r in rejected] == [(0, "duplicate_key")]
    field = case.split(",")[0]
    assert f"`{field}`" in rejected[0]["message"]
    assert set(stored(either, tenant)) == ({"beside"} if batched else set())


def test_field_names_inside_properties_are_not_repeats(either: Api, tenant: Tenant) -> None:
    """`id`, `type` and other names inside properties, repeated or not, are stored as sent."""
    props = b'{"id":1,"type":"x","items":[{"id":2,"type":"y"}],"k":1,"k":2}'
    body = b'{"id":"nested","type":"id","timestamp":1700000000,"properties":' + props + b"}"
    response = post(either, tenant, batch(body, good("beside")))
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert props in either.events(tenant.owner, tenant.project_id).content


# --- content codings ---------------------------------------------------------------------------


def members(*texts: bytes) -> bytes:
    return b"".join(gzip.compress(text) for text in texts)


def test_a_multi_member_gzip_body_is_read_whole(either: Api, tenant: Tenant) -> None:
    """A gzip body of several members (RFC 1952) is their concatenation."""
    body = batch(good("one"), good("two"))
    cut = len(body) // 2
    response = post(
        either, tenant, members(body[:cut], b"", body[cut:]), **{"Content-Encoding": "gzip"}
    )
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert set(stored(either, tenant)) == {"one", "two"}


@pytest.mark.parametrize(
    "trailer",
    [b"x", b"\x00" * 8, b"\x1f", b'{"type":"extra"}'],
    ids=["x", "zeros", "half magic", "json"],
)
def test_data_after_the_last_gzip_member_is_refused(
    either: Api, tenant: Tenant, trailer: bytes
) -> None:
    """Anything after the last gzip member but another member is a 400, nothing stored."""
    body = gzip.compress(good("trailed")) + trailer
    error = assert_error(post(either, tenant, body, **{"Content-Encoding": "gzip"}), 400)
    assert error["code"] == "malformed_body"
    assert stored(either, tenant) == {}


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", " gzip ", "x-gzip"])
def test_gzip_is_accepted_in_any_case(either: Api, tenant: Tenant, encoding: str) -> None:
    response = post(either, tenant, gzip.compress(good("g")), **{"Content-Encoding": encoding})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("encoding", ["", "identity", "Identity"])
def test_identity_is_the_plain_body(either: Api, tenant: Tenant, encoding: str) -> None:
    response = post(either, tenant, good("plain"), **{"Content-Encoding": encoding})
    assert response.status_code == 202, response.text


UNSUPPORTED = {
    "br": (b"", "br"),
    "deflate": (zlib.compress(good("x")), "deflate"),
    "gzip, gzip": (gzip.compress(gzip.compress(good("x"))), "gzip, gzip"),
    "gzip, identity": (gzip.compress(good("x")), "gzip, identity"),
    "compress": (good("x"), "compress"),
    "zstd": (good("x"), "zstd"),
    "unknown": (good("x"), "made-up"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_any_other_content_encoding_is_unsupported(either: Api, tenant: Tenant, case: str) -> None:
    """A coding other than gzip or identity, or more than one, is a 415 with nothing stored."""
    body, encoding = UNSUPPORTED[case]
    response = post(either, tenant, body, **{"Content-Encoding": encoding})
    assert_error(response, 415, "unsupported_encoding")
    assert stored(either, tenant) == {}


def test_two_content_encoding_headers_are_two_codings(either: Api, tenant: Tenant) -> None:
    """Two `Content-Encoding: gzip` header fields mean gzip twice: 415."""
    headers = [
        ("X-API-Key", tenant.api_key),
        ("Content-Type", "application/json"),
        ("Content-Encoding", "gzip"),
        ("Content-Encoding", "gzip"),
    ]
    body = gzip.compress(gzip.compress(good("twice")))
    response = either.client.post("/v1/ingest", content=body, headers=headers)
    assert_error(response, 415, "unsupported_encoding")


def test_a_multi_member_gzip_bomb_is_too_large(either: Api, tenant: Tenant) -> None:
    """Members that inflate past the request limit together are a 413, like one member."""
    limit = either.settings.limits.max_request_bytes
    member = gzip.compress(b" " * (limit // 3))
    response = post(
        either, tenant, member * 4 + gzip.compress(good("bomb")), **{"Content-Encoding": "gzip"}
    )
    assert_error(response, 413, "request_too_large")
    assert stored(either, tenant) == {}
