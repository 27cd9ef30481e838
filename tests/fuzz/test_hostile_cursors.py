"""`GET /v1/events` cursors that the server never gave: mutated real ones, made-up bytes, text.

Whatever a client puts in `cursor`, the answer is the page its real cursor opens or 400
`invalid_cursor` (a NUL or a broken byte sequence is refused at the edge as `invalid_query`); the
client raises on a 500, no error is logged, and the listing is unchanged after.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import start_api
from tests.fuzz.support import examples, no_error_logged, refused
from tests.http.support import Api, Tenant


@dataclass
class Listing:
    api: Api
    tenant: Tenant
    cursor: str
    second_page: dict[str, Any]

    def get(self, cursor: str) -> httpx.Response:
        with no_error_logged():
            return self.api.events(
                self.tenant.owner, self.tenant.project_id, limit=2, cursor=cursor
            )


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listing]:
    api = start_api(tmp_path_factory.mktemp("cursors") / "eventcore-data")
    tenant = api.tenant()
    events = [{"id": f"e{i}", "type": "click", "timestamp": 1740823200 + i} for i in range(5)]
    assert api.ingest(tenant, {"events": events}).status_code == 202
    first = api.events(tenant.owner, tenant.project_id, limit=2).json()
    second = api.events(tenant.owner, tenant.project_id, limit=2, cursor=first["next_cursor"])
    yield Listing(api, tenant, first["next_cursor"], second.json())
    api.stop()


SETTINGS = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _xor_at(cursor: str, index: int, mask: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor))
    raw[index % len(raw)] ^= mask
    return base64.urlsafe_b64encode(bytes(raw)).decode()


def _splice(cursor: str, start: int, length: int, insert: str) -> str:
    start %= len(cursor) + 1
    return cursor[:start] + insert + cursor[start + length :]


MUTATIONS = st.one_of(
    st.tuples(st.integers(0, 32), st.integers(1, 255)).map(lambda m: ("xor", m)),
    st.tuples(st.integers(0, 44), st.integers(0, 44), st.text(max_size=60)).map(
        lambda m: ("splice", m)
    ),
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
    st.text(max_size=200).map(lambda t: ("text", t)),
)


def _mutated(cursor: str, mutation: tuple[str, Any]) -> str:
    kind, how = mutation
    if kind == "xor":
        return _xor_at(cursor, *how)
    if kind == "splice":
        return _splice(cursor, *how)
    if kind == "bytes":
        return base64.urlsafe_b64encode(how).decode().rstrip("=")
    return str(how)


@SETTINGS
@given(mutation=MUTATIONS)
def test_a_cursor_the_server_did_not_give_is_refused(
    listing: Listing, mutation: tuple[str, Any]
) -> None:
    """Any edit of a real cursor, any bytes, any text: the real page or a 400."""
    cursor = _mutated(listing.cursor, mutation)

    response = listing.get(cursor)

    if cursor == listing.cursor:
        assert response.json() == listing.second_page
    elif not cursor:
        # An empty cursor is no cursor: the first page.
        assert response.status_code == 200, response.text
    else:
        refused(response, 400, {"invalid_query" if "\x00" in cursor else "invalid_cursor"})
    assert listing.get(listing.cursor).json() == listing.second_page
