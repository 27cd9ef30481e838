"""`GET /v1/events` cursors over HTTP, on both profiles: opaque, bound to their listing, and
refused (400 `invalid_cursor`, nothing changed) when edited, forged, out of range or foreign."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventcore.cursors import CursorCodec, CursorScope
from tests.http.support import Api, ApiFactory, Tenant, assert_error

BASE = datetime(2025, 3, 1, tzinfo=UTC)
# A sealed position: microseconds since 1970 (signed), then the sequence number.
PACKED = struct.Struct(">qQ")
MESSAGE = "`cursor` is not a cursor this API returned."


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def flip_one_byte(text: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode()


def load(api: Api, tenant: Tenant, count: int = 9) -> None:
    events = [
        {"id": f"e{i}", "type": "click" if i % 3 else "view", "timestamp": _at(i)}
        for i in range(count)
    ]
    assert api.ingest(tenant, {"events": events}).status_code == 202


def _at(i: int) -> str:
    # Pairs share a timestamp, so that paging has to break ties.
    return (BASE + timedelta(minutes=i // 2)).isoformat()


def page(api: Api, tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = api.events(tenant.owner, tenant.project_id, **params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def refused(api: Api, tenant: Tenant, cursor: str, **params: Any) -> None:
    response = api.events(tenant.owner, tenant.project_id, cursor=cursor, **params)
    error = assert_error(response, 400, "invalid_cursor")
    assert error["message"] == MESSAGE


@pytest.fixture
def shop(either: Api) -> Tenant:
    tenant = either.tenant()
    load(either, tenant)
    return tenant


def test_paging_works_across_pages_and_cursors_are_opaque(either: Api, shop: Tenant) -> None:
    """Following next_cursor lists every event once, newest first; a cursor is 44 URL-safe
    characters that decode to no JSON and show no sequence number."""
    ids: list[str] = []
    cursors: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = page(either, shop, **params)
        ids += [e["id"] for e in body["events"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)
        assert len(cursors) < 10, "paging does not end"
    assert ids == ["e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1", "e0"]
    assert len(cursors) == 4
    for text in cursors:
        assert len(text) == 44
        raw = base64.urlsafe_b64decode(text)
        assert len(raw) == 33
        assert not raw.startswith(b"[")
        assert b"2025" not in raw
    # With a type filter too.
    views = page(either, shop, event_type="view", limit=2)
    rest = page(either, shop, event_type="view", limit=2, cursor=views["next_cursor"])
    assert [e["id"] for e in views["events"] + rest["events"]] == ["e6", "e3", "e0"]
    assert rest["next_cursor"] is None


def _sealed(api: Api, tenant: Tenant, micros: int, seq: int) -> str:
    """A position sealed with the server's own key: only the range check can refuse it."""
    codec = api.resolve(api.container.cursors)
    scope = CursorScope(tenant.owner.workspace_id, tenant.project_id, None)
    return codec.seal(scope, PACKED.pack(micros, seq))


def test_every_tampered_huge_or_garbage_cursor_is_a_400_and_changes_nothing(
    either: Api, shop: Tenant
) -> None:
    """Edited by a byte, truncated, extended, readable JSON of the old form (seq 2^63 or -1),
    sealed out of range, base64 garbage, 10 kB long: 400 `invalid_cursor`; after them the
    events and the real cursor's next page are as before."""
    events_before = either.all_events(shop.owner, shop.project_id)
    first = page(either, shop, limit=3)
    cursor = first["next_cursor"]
    second = page(either, shop, limit=3, cursor=cursor)
    micros = (BASE - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    bad = {
        "one byte edited": flip_one_byte(cursor),
        "last character edited": cursor[:-1] + ("A" if cursor[-1] != "A" else "B"),
        "truncated": cursor[:-1],
        "halved": cursor[:22],
        "extended": cursor + "A",
        "doubled": cursor + cursor,
        "old form, seq 2^63": b64(b'["2025-03-01T00:04:00Z",9223372036854775808]'),
        "old form, seq -1": b64(b'["2025-03-01T00:04:00Z",-1]'),
        "old form, seq 1": b64(b'["2025-03-01T00:04:00Z",1]'),
        "sealed, seq 2^63": _sealed(either, shop, micros, 2**63),
        "sealed, seq -1": _sealed(either, shop, micros, 2**64 - 1),
        "sealed, year 10000": _sealed(either, shop, 253402300800000000, 1),
        "base64 garbage": b64(b"\xff\xfe garbage \x00\x01" * 3),
        "not base64": "!" * 44,
        "10 kB": "A" * 10_000,
        "10 kB of cursors": (cursor * 230)[:10_240],
    }
    for name, text in bad.items():
        response = either.events(shop.owner, shop.project_id, limit=3, cursor=text)
        error = assert_error(response, 400, "invalid_cursor")
        assert error["message"] == MESSAGE, name
    assert either.all_events(shop.owner, shop.project_id) == events_before
    assert page(either, shop, limit=3, cursor=cursor) == second


def test_a_cursor_with_a_nul_is_refused_at_the_edge(either: Api, shop: Tenant) -> None:
    """A NUL inside a real cursor is refused before the listing (400 naming `cursor`)."""
    cursor = page(either, shop, limit=3)["next_cursor"]
    response = either.client.get(
        f"/v1/events?project_id={shop.project_id}&cursor={cursor[:20]}%00{cursor[20:]}",
        headers=shop.headers,
    )
    error = assert_error(response, 400)
    assert "`cursor`" in error["message"]


def test_a_cursor_of_another_project_workspace_or_filter_is_refused(
    either: Api, shop: Tenant
) -> None:
    """A cursor pages its own listing only: the same owner's other project, another tenant
    (even with the same position), another type filter or none refuse it."""
    sibling = either.create_project(shop.owner, "Sibling")
    sibling_key = either.create_key(shop.owner, sibling)
    sibling_tenant = Tenant(shop.owner, sibling, sibling_key["id"], sibling_key["key"])
    load(either, sibling_tenant)
    stranger = either.tenant(workspace="Other")
    load(either, stranger)

    unfiltered = page(either, shop, limit=2)["next_cursor"]
    views = page(either, shop, limit=1, event_type="view")["next_cursor"]
    for tenant, cursor, params in [
        (sibling_tenant, unfiltered, {}),
        (stranger, unfiltered, {}),
        (shop, unfiltered, {"event_type": "view"}),
        (shop, unfiltered, {"event_type": "click"}),
        (shop, views, {}),
        (shop, views, {"event_type": "click"}),
        (stranger, views, {"event_type": "view"}),
    ]:
        refused(either, tenant, cursor, limit=2, **params)
    # Each listing's own cursor still pages it.
    assert [e["id"] for e in page(either, shop, limit=2, cursor=unfiltered)["events"]] == [
        "e6",
        "e5",
    ]
    own = page(either, stranger, limit=2)["next_cursor"]
    assert own != unfiltered
    assert [e["id"] for e in page(either, stranger, limit=2, cursor=own)["events"]] == [
        "e6",
        "e5",
    ]


def test_a_cursor_outlives_a_restart_of_the_embedded_server(make_api: ApiFactory) -> None:
    """The embedded profile keys cursors from its secret on disk: paging resumes after a
    restart; the same position sealed with another deployment's key is refused."""
    first = make_api()
    tenant = first.tenant()
    load(first, tenant)
    cursor = page(first, tenant, limit=4)["next_cursor"]
    data_dir = first.data_dir
    first.stop()

    again = make_api(data_dir=data_dir)
    assert [e["id"] for e in page(again, tenant, limit=4, cursor=cursor)["events"]] == [
        "e4",
        "e3",
        "e2",
        "e1",
    ]
    codec = again.resolve(again.container.cursors)
    other = CursorCodec.from_secret("another deployment's secret, long enough")
    scope = CursorScope(tenant.owner.workspace_id, tenant.project_id, None)
    refused(again, tenant, other.encode(scope, codec.decode(scope, cursor)), limit=4)


def test_the_openapi_document_describes_the_cursor(api: Api) -> None:
    """The schema says what a cursor is and what answers any other: as the README does."""
    schema = api.client.get("/schema/openapi.json").json()
    (cursor,) = [
        p for p in schema["paths"]["/v1/events"]["get"]["parameters"] if p["name"] == "cursor"
    ]
    assert cursor["in"] == "query"
    assert cursor.get("required", False) is False
    for words in ("`next_cursor`", "opaque", "`event_type`", "400 `invalid_cursor`"):
        assert words in cursor["description"]
