"""GET /v1/events/live and POST /v1/events/live/tickets over real HTTP, on both profiles.

The embedded profile commits each batch before its 202 and feeds the process's own hub; the
shared profile (PostgreSQL and Redis, batches committed inline) publishes every commit through
Redis pub/sub and hears it back on the API's listener, as the workers' commits are heard."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.live_support import LiveServer, live_server
from tests.http.support import PASSWORD, assert_error, bearer, profile_settings


@pytest.fixture(params=["embedded", pytest.param("shared", marks=pytest.mark.integration)])
def profile(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    with profile_settings(request.param) as env:
        yield env


@pytest.fixture
def server(tmp_path: Path, profile: dict[str, str]) -> Iterator[LiveServer]:
    with live_server(tmp_path / "data", profile) as live:
        yield live


def test_a_stream_sends_each_stored_event_as_the_list_shows_it_in_order(
    server: LiveServer,
) -> None:
    """Stored events arrive in commit order, each `event: event` with its id and the object
    `/v1/events` lists; duplicates, resends and rejected events are not sent."""
    tenant = server.tenant()
    server.ingest(tenant, [{"id": "before", "type": "a"}])
    stream = server.stream({"project_id": tenant.project_id}, tenant.headers)

    first = server.ingest(
        tenant,
        [
            {"id": "e1", "type": "view", "properties": {"path": "/", "n": [1, 2.5]}},
            {"id": "before", "type": "a"},
            {"id": "e1", "type": "view"},
            {"type": ""},
            {"id": "e2", "type": "click", "user_id": "u1"},
        ],
    )
    assert (first["accepted"], first["duplicates"], len(first["rejected"])) == (2, 2, 1)
    server.ingest(tenant, [{"id": "e3", "type": "view"}, {"id": "e2", "type": "click"}])

    frames = stream.events(3)
    assert [(f.event, f.id) for f in frames] == [("event", "e1"), ("event", "e2"), ("event", "e3")]
    listed = {e["id"]: e for e in server.listed(tenant.owner, tenant.project_id)}
    assert [f.json() for f in frames] == [listed["e1"], listed["e2"], listed["e3"]]
    assert stream.quiet()
    assert stream.headers["content-type"].startswith("text/event-stream")


def test_an_event_type_filter_sends_only_that_type(server: LiveServer) -> None:
    """With `event_type`, only events of that type come."""
    tenant = server.tenant()
    stream = server.stream({"project_id": tenant.project_id, "event_type": "click"}, tenant.headers)
    server.ingest(tenant, [{"id": "v", "type": "view"}, {"id": "c", "type": "click"}])

    assert [f.id for f in stream.events(1)] == ["c"]
    assert stream.quiet()


def test_another_workspace_never_reaches_a_stream(server: LiveServer) -> None:
    """Workspace B's events (even of a project id like A's, or through B's own stream) never
    reach A's stream; A's token cannot open B's project (404, as the other routes answer)."""
    a, b = server.tenant("A"), server.tenant("B")
    mine = server.stream({"project_id": a.project_id}, a.headers)
    theirs = server.stream({"project_id": b.project_id}, b.headers)

    server.ingest(b, [{"id": "b1", "type": "secret"}])
    server.ingest(a, [{"id": "a1", "type": "view"}])

    assert [f.id for f in mine.events(1)] == ["a1"]
    assert [f.id for f in theirs.events(1)] == ["b1"]
    assert mine.quiet()
    assert theirs.quiet()
    refused = server.stream({"project_id": b.project_id}, a.headers)
    assert_error(refused.response, 404, "not_found")


def test_a_viewer_may_watch(server: LiveServer) -> None:
    """Every role reads events: a viewer's stream gets them."""
    tenant = server.tenant()
    viewer = server.member(tenant.owner, "viewer")
    stream = server.stream({"project_id": tenant.project_id}, viewer.headers)
    server.ingest(tenant, [{"id": "e1", "type": "view"}])

    assert [f.id for f in stream.events(1)] == ["e1"]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("", 400, None),
        ("project_id=P&unknown=1", 400, "invalid_query"),
        ("project_id=P&event_type=", 400, "invalid_query"),
        ("project_id=P&project_id=P", 400, "invalid_query"),
        ("project_id=no-such-project", 404, "not_found"),
        ("project_id=%00", 400, "invalid_query"),
    ],
)
def test_bad_input_is_a_json_error_and_no_stream(
    server: LiveServer, query: str, status: int, code: str | None
) -> None:
    """A missing, unknown, repeated or empty parameter, or a project that is not the caller's,
    answers a JSON error, never a stream."""
    tenant = server.tenant()
    response = server.client.get(
        "/v1/events/live?" + query.replace("=P", f"={tenant.project_id}"), headers=tenant.headers
    )
    assert_error(response, status, code)


def test_a_stream_needs_credentials(server: LiveServer) -> None:
    """No token, a bad token, a bad ticket: 401 JSON, no stream."""
    tenant = server.tenant()
    params = {"project_id": tenant.project_id}
    assert_error(server.stream(params).response, 401)
    assert_error(server.stream(params, bearer("not-a-token")).response, 401, "invalid_token")
    assert_error(server.stream({**params, "ticket": "x" * 43}).response, 401, "invalid_ticket")
    assert_error(server.stream({**params, "ticket": ""}).response, 401, "invalid_ticket")


def test_a_ticket_opens_one_stream_of_its_project(server: LiveServer) -> None:
    """A viewer's ticket opens its project's stream without a header, once; reused it is 401,
    for another project 403, and a ticket for another workspace's project is not issued."""
    tenant = server.tenant()
    other = server.tenant("Other")
    viewer = server.member(tenant.owner, "viewer")
    issued = server.client.post(
        "/v1/events/live/tickets",
        json={"project_id": tenant.project_id, "event_type": "view"},
        headers=viewer.headers,
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert set(body) == {"ticket", "expires_at", "url"}
    assert len(body["ticket"]) >= 22

    stream = server.stream_url(body["url"])
    server.ingest(tenant, [{"id": "c", "type": "click"}, {"id": "v", "type": "view"}])
    assert [f.id for f in stream.events(1)] == ["v"]

    assert_error(server.stream_url(body["url"]).response, 401, "invalid_ticket")
    mismatch = server.client.post(
        "/v1/events/live/tickets", json={"project_id": tenant.project_id}, headers=viewer.headers
    ).json()["ticket"]
    assert_error(
        server.stream({"project_id": other.project_id, "ticket": mismatch}).response,
        403,
        "ticket_mismatch",
    )
    for bad in (
        {"project_id": other.project_id},
        {},
        {"project_id": 5},
        {"project_id": "p", "x": 1},
    ):
        response = server.client.post("/v1/events/live/tickets", json=bad, headers=viewer.headers)
        assert response.status_code in (400, 404), response.text
        assert_error(response, response.status_code)
    assert_error(
        server.client.post("/v1/events/live/tickets", json={"project_id": tenant.project_id}),
        401,
    )


def test_a_workspace_has_at_most_its_streams(tmp_path: Path, profile: dict[str, str]) -> None:
    """Past EVENTCORE_LIVE_STREAMS_PER_WORKSPACE open streams a workspace is refused 429
    `too_many_streams` (another workspace is not); a stream its client closed makes room."""
    env = {**profile, "EVENTCORE_LIVE_STREAMS_PER_WORKSPACE": "2"}
    with live_server(tmp_path / "data", env) as server:
        tenant, other = server.tenant(), server.tenant("Other")
        params = {"project_id": tenant.project_id}
        first = server.stream(params, tenant.headers)
        server.stream(params, tenant.headers)

        refused = server.stream(params, tenant.headers)
        assert_error(refused.response, 429, "too_many_streams")
        assert "Retry-After" in refused.headers
        server.stream({"project_id": other.project_id}, other.headers)

        first.close()
        deadline = time.monotonic() + 5
        while True:
            again = server.stream(params, tenant.headers)
            if again.status == 200:
                break
            assert time.monotonic() < deadline, "the closed stream was never released"
            time.sleep(0.1)


def test_a_slow_reader_loses_events_with_a_notice_and_slows_nothing(
    tmp_path: Path, profile: dict[str, str]
) -> None:
    """A stream whose client reads nothing drops what its buffer cannot hold and, once read
    again, says how many it lost where they were; every ingest is still accepted and a reading
    stream of the same project receives every event."""
    env = {**profile, "EVENTCORE_LIVE_BUFFER_EVENTS": "100"}
    with live_server(tmp_path / "data", env) as server:
        tenant = server.tenant()
        params = {"project_id": tenant.project_id}
        quick = server.stream(params, tenant.headers)
        slow = server.stream(params, tenant.headers, paused=True)
        # 3,000 events of 10 KB: far more than the sockets between server and reader hold.
        padding = "x" * 10_000
        sent = []
        for request in range(150):
            batch = [
                {"id": f"e{request}-{n}", "type": "view", "properties": {"p": padding}}
                for n in range(20)
            ]
            assert server.ingest(tenant, batch)["accepted"] == 20
            sent += [e["id"] for e in batch]
            got = quick.events(20, within=5)
            assert [f.id for f in got] == sent[-20:]

        slow.resume()
        received, dropped = [], 0
        while len(received) + dropped < len(sent):
            frame = slow.next(5)
            assert frame is not None
            if frame.event == "dropped":
                dropped += frame.json()["dropped"]
            else:
                received.append(frame.id)
        assert dropped > 0
        assert received == [i for i in sent if i in set(received)]
        assert received[:100] == sent[:100]


def test_a_removed_member_s_stream_ends(server: LiveServer) -> None:
    """Once a member is removed, their open stream sends `event: error` and ends, within the
    membership's one second (and its re-check's)."""
    tenant = server.tenant()
    viewer = server.member(tenant.owner, "viewer")
    stream = server.stream({"project_id": tenant.project_id}, viewer.headers)
    removed = server.client.delete(f"/v1/members/{viewer.user_id}", headers=tenant.headers)
    assert removed.status_code == 204, removed.text

    frame = stream.next(4)
    assert frame is not None
    assert frame.event == "error", frame
    assert frame.json()["error"]["code"] == "invalid_token"
    assert stream.next(2) is None


def test_a_ticket_asked_for_by_the_console_s_session_ends_with_its_token(
    tmp_path: Path,
) -> None:
    """A ticket issued to a request signed in by the session cookie (no Authorization header)
    opens a stream that ends when the cookie's access token expires, as a bearer token's does,
    not a token's lifetime after the ticket was issued."""
    with live_server(tmp_path / "data", {"EVENTCORE_TOKEN_LIFETIME_SECONDS": "6"}) as server:
        tenant = server.tenant()
        session = server.client.post(
            "/v1/auth/session", json={"email": tenant.owner.email, "password": PASSWORD}
        )
        assert session.status_code in (200, 201), session.text
        time.sleep(3)  # half the token's life gone before the ticket is asked for
        issued = server.client.post(
            "/v1/events/live/tickets",
            json={"project_id": tenant.project_id},
            headers={"x-csrf-token": server.client.cookies["eventcore_csrf"]},
        )
        assert issued.status_code == 201, issued.text
        server.client.cookies.clear()
        stream = server.stream_url(issued.json()["url"])

        frame = stream.next(4.5)  # the token ends 3 s from here; a new lifetime would be 6 s
        assert frame is not None
        assert frame.event == "error", frame
        assert frame.json()["error"]["code"] == "token_expired"
        assert stream.next(2) is None
