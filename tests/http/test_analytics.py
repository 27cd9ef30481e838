"""Analytics and the event list over HTTP: windows, buckets, filters, paging and authentication."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from eventcore.aggregation import CountSeries, EventTypeTotals
from tests.fuzz.support import write
from tests.http.support import (
    Account,
    Api,
    ApiFactory,
    Tenant,
    assert_error,
    bearer,
    profile_settings,
)
from tests.support.tokens import JSON_VALUES, good_claims, sign, with_claim

# Events at fixed past moments, so that every bucket below is known exactly.
FIXTURE_EVENTS = [
    {"id": "e1", "type": "click", "timestamp": "2025-03-01T10:15:30Z"},
    {"id": "e2", "type": "click", "timestamp": "2025-03-01T10:15:45Z"},
    {"id": "e3", "type": "view", "timestamp": "2025-03-01T10:47:00Z"},
    {"id": "e4", "type": "click", "timestamp": "2025-03-01T11:05:00Z"},
    {"id": "e5", "type": "click", "timestamp": "2025-03-02T09:00:00Z"},
    {"id": "e6", "type": "view", "timestamp": "2025-03-01T12:20:00+02:00"},
    {"id": "e7", "type": "buy", "timestamp": "2025-03-02T23:59:59Z"},
]
DAY_START = "2025-03-01T00:00:00Z"
DAY_END = "2025-03-03T00:00:00Z"


@pytest.fixture
def loaded(api: Api, tenant: Tenant) -> Tenant:
    response = api.ingest(tenant, {"events": FIXTURE_EVENTS})
    assert response.json()["accepted"] == len(FIXTURE_EVENTS), response.text
    return tenant


def series(body: dict[str, Any]) -> list[tuple[str, str, int]]:
    return sorted((p["bucket"], p["event_type"], p["count"]) for p in body["series"])


def check_shape(body: dict[str, Any]) -> None:
    """The counts answer's fields, UTC buckets with Z, and a total equal to the series sum."""
    assert {"project_id", "granularity", "start", "end", "total", "series"} <= set(body)
    assert body["start"].endswith("Z")
    assert body["end"].endswith("Z")
    for point in body["series"]:
        assert set(point) >= {"bucket", "event_type", "count"}
        assert point["bucket"].endswith("Z"), point
    assert body["total"] == sum(p["count"] for p in body["series"])


# --- counts ------------------------------------------------------------------------------------


def test_counts_per_minute(api: Api, loaded: Tenant) -> None:
    """Minute buckets hold exactly the events of each minute, by type."""
    response = api.counts(
        loaded.owner,
        loaded.project_id,
        granularity="minute",
        start="2025-03-01T10:00:00Z",
        end="2025-03-01T11:00:00Z",
    )

    assert response.status_code == 200, response.text
    body = response.json()
    check_shape(body)
    assert body["project_id"] == loaded.project_id
    assert body["granularity"] == "minute"
    assert series(body) == [
        ("2025-03-01T10:15:00Z", "click", 2),
        ("2025-03-01T10:20:00Z", "view", 1),
        ("2025-03-01T10:47:00Z", "view", 1),
    ]
    assert body["total"] == 4


def test_counts_per_hour(api: Api, loaded: Tenant) -> None:
    """Hour buckets hold exactly the events of each hour, by type."""
    body = api.counts(
        loaded.owner, loaded.project_id, granularity="hour", start=DAY_START, end=DAY_END
    ).json()

    check_shape(body)
    assert body["granularity"] == "hour"
    assert series(body) == [
        ("2025-03-01T10:00:00Z", "click", 2),
        ("2025-03-01T10:00:00Z", "view", 2),
        ("2025-03-01T11:00:00Z", "click", 1),
        ("2025-03-02T09:00:00Z", "click", 1),
        ("2025-03-02T23:00:00Z", "buy", 1),
    ]
    assert body["total"] == 7


def test_counts_per_day(api: Api, loaded: Tenant) -> None:
    """Day buckets start at UTC midnight and sum the day's events, by type."""
    body = api.counts(
        loaded.owner, loaded.project_id, granularity="day", start=DAY_START, end=DAY_END
    ).json()

    check_shape(body)
    assert body["granularity"] == "day"
    assert series(body) == [
        ("2025-03-01T00:00:00Z", "click", 3),
        ("2025-03-01T00:00:00Z", "view", 2),
        ("2025-03-02T00:00:00Z", "buy", 1),
        ("2025-03-02T00:00:00Z", "click", 1),
    ]


def test_the_window_selects_buckets_from_start_to_end(api: Api, loaded: Tenant) -> None:
    """Only buckets inside [start, end) are counted."""
    body = api.counts(
        loaded.owner,
        loaded.project_id,
        granularity="hour",
        start="2025-03-01T11:00:00Z",
        end="2025-03-02T10:00:00Z",
    ).json()

    assert series(body) == [
        ("2025-03-01T11:00:00Z", "click", 1),
        ("2025-03-02T09:00:00Z", "click", 1),
    ]


def test_counts_filter_by_event_type(api: Api, loaded: Tenant) -> None:
    """`event_type` keeps that type only."""
    body = api.counts(
        loaded.owner,
        loaded.project_id,
        granularity="hour",
        start=DAY_START,
        end=DAY_END,
        event_type="click",
    ).json()

    check_shape(body)
    assert {p["event_type"] for p in body["series"]} == {"click"}
    assert body["total"] == 4


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2025-03-01T10:00:00Z", "2025-03-01T11:00:00Z"),
        ("2025-03-01T10:00:00+00:00", "2025-03-01T11:00:00+00:00"),
        ("2025-03-01T12:00:00+02:00", "2025-03-01T06:00:00-05:00"),
    ],
    ids=["z", "plus-zero", "other-offsets"],
)
def test_times_with_any_offset_name_the_same_window(
    api: Api, loaded: Tenant, start: str, end: str
) -> None:
    """RFC 3339 times with Z, +00:00 or any other offset select the same UTC window."""
    body = api.counts(
        loaded.owner, loaded.project_id, granularity="minute", start=start, end=end
    ).json()

    assert body["start"] == "2025-03-01T10:00:00Z"
    assert body["end"] == "2025-03-01T11:00:00Z"
    assert body["total"] == 4


def test_a_plus_sent_unescaped_is_read_as_an_offset(api: Api, loaded: Tenant) -> None:
    """An offset whose '+' arrived as a space (unescaped in the query string) still works."""
    url = (
        f"/v1/analytics/counts?project_id={loaded.project_id}&granularity=minute"
        "&start=2025-03-01T10:00:00+00:00&end=2025-03-01T11:00:00+00:00"
    )

    response = api.client.get(url, headers=loaded.headers)

    assert response.status_code == 200, response.text
    assert response.json()["total"] == 4
    assert response.json()["start"] == "2025-03-01T10:00:00Z"


def test_the_default_window_is_the_last_24_hours(api: Api, tenant: Tenant) -> None:
    """Without start and end, counts cover the last 24 hours in hour buckets."""
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    api.ingest(tenant, {"events": [{"type": "now"}, {"type": "old", "timestamp": old}]})

    response = api.counts(tenant.owner, tenant.project_id)

    assert response.status_code == 200, response.text
    body = response.json()
    check_shape(body)
    assert body["granularity"] == "hour"
    assert [(p["event_type"], p["count"]) for p in body["series"]] == [("now", 1)]
    start = datetime.fromisoformat(body["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(body["end"].replace("Z", "+00:00"))
    assert timedelta(hours=24) <= end - start <= timedelta(hours=26)
    assert end >= datetime.now(UTC) - timedelta(minutes=5)


def test_counts_follow_new_events_at_once(api: Api, tenant: Tenant) -> None:
    """An answer already read is never served stale after more events are stored."""
    window = {"granularity": "day", "start": DAY_START, "end": DAY_END}
    api.ingest(tenant, {"id": "a", "type": "t", "timestamp": "2025-03-01T01:00:00Z"})
    first = api.counts(tenant.owner, tenant.project_id, **window).json()

    api.ingest(tenant, {"id": "b", "type": "t", "timestamp": "2025-03-01T02:00:00Z"})
    second = api.counts(tenant.owner, tenant.project_id, **window).json()

    assert first["total"] == 1
    assert second["total"] == 2


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"granularity": "week"}, "invalid_request"),
        ({"granularity": ""}, "invalid_request"),
        ({"start": "2025-03-01T11:00:00Z", "end": "2025-03-01T10:00:00Z"}, "invalid_query"),
        ({"start": "2025-03-01T10:00:00Z", "end": "2025-03-01T10:00:00Z"}, "invalid_query"),
        ({"start": "yesterday"}, "invalid_query"),
        ({"end": ""}, "invalid_query"),
        ({"start": ""}, "invalid_query"),
        ({"start": "2025-13-01T00:00:00Z"}, "invalid_query"),
        (
            {
                "granularity": "minute",
                "start": "2025-03-01T00:00:00Z",
                "end": "2025-03-09T00:00:00Z",
            },
            "window_too_large",
        ),
        (
            {"granularity": "hour", "start": "1990-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"},
            "window_too_large",
        ),
    ],
    ids=[
        "bad-granularity",
        "empty-granularity",
        "start-after-end",
        "start-equals-end",
        "not-a-time",
        "empty-end",
        "empty-start",
        "impossible-date",
        "too-many-minutes",
        "too-many-hours",
    ],
)
def test_bad_count_queries_are_bad_requests(
    api: Api, tenant: Tenant, params: dict[str, str], code: str
) -> None:
    """A bad granularity, start >= end, an invalid time, or too many buckets is 400 with its code."""
    assert_error(api.counts(tenant.owner, tenant.project_id, **params), 400, code)


@pytest.mark.parametrize(
    ("params", "naive"),
    [
        ({"start": "2025-03-01T10:00:00", "end": "2025-03-01T12:00:00Z"}, "start"),
        ({"start": "2025-03-01T10:00:00Z", "end": "2025-03-01T12:00:00"}, "end"),
        ({"start": "2025-03-01T10:00:00"}, "start"),
        ({"end": "2025-03-01T10:00:00"}, "end"),
    ],
    ids=["naive-start", "naive-end", "naive-start-alone", "naive-end-alone"],
)
def test_a_time_without_an_offset_is_refused_for_that_reason(
    api: Api, tenant: Tenant, params: dict[str, str], naive: str
) -> None:
    """A `start` or `end` without a time zone offset is 400 invalid_query naming that time."""
    error = assert_error(
        api.counts(tenant.owner, tenant.project_id, **params), 400, "invalid_query"
    )
    assert error["message"] == f"`{naive}` needs a time zone offset (RFC 3339)."


@pytest.mark.parametrize(
    "path", ["/v1/analytics/counts", "/v1/analytics/event-types", "/v1/events"]
)
def test_a_missing_project_id_is_a_bad_request(api: Api, tenant: Tenant, path: str) -> None:
    """Every read without `project_id` answers 400."""
    assert_error(api.client.get(path, headers=tenant.headers), 400)


# --- event types -------------------------------------------------------------------------------


def test_event_types_are_largest_first(api: Api, loaded: Tenant) -> None:
    """Event-type totals come largest first, within the window."""
    response = api.client.get(
        "/v1/analytics/event-types",
        params={"project_id": loaded.project_id, "start": DAY_START, "end": DAY_END},
        headers=loaded.headers,
    )
    narrow = api.client.get(
        "/v1/analytics/event-types",
        params={
            "project_id": loaded.project_id,
            "start": "2025-03-02T00:00:00Z",
            "end": "2025-03-02T10:00:00Z",
        },
        headers=loaded.headers,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "event_types": [
            {"event_type": "click", "count": 4},
            {"event_type": "view", "count": 2},
            {"event_type": "buy", "count": 1},
        ]
    }
    assert narrow.json() == {"event_types": [{"event_type": "click", "count": 1}]}


def test_bad_event_type_windows_are_bad_requests(api: Api, tenant: Tenant) -> None:
    """Event types with start >= end or a naive time answer 400 invalid_query for that reason."""
    for params, message in (
        (
            {"start": "2025-03-02T00:00:00Z", "end": "2025-03-01T00:00:00Z"},
            "`start` must be before `end`.",
        ),
        (
            {"start": "2025-03-01T00:00:00", "end": "2025-03-02T00:00:00Z"},
            "`start` needs a time zone offset (RFC 3339).",
        ),
    ):
        response = api.client.get(
            "/v1/analytics/event-types",
            params={"project_id": tenant.project_id, **params},
            headers=tenant.headers,
        )
        assert assert_error(response, 400, "invalid_query")["message"] == message


# --- the event list ----------------------------------------------------------------------------


def test_events_are_newest_first(api: Api, loaded: Tenant) -> None:
    """The event list comes newest first, with every documented field."""
    response = api.events(loaded.owner, loaded.project_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [e["id"] for e in body["events"]] == ["e7", "e5", "e4", "e3", "e6", "e2", "e1"]
    for event in body["events"]:
        assert {"id", "type", "timestamp", "received_at", "properties"} <= set(event)
        assert event["timestamp"].endswith("Z")
    assert body["events"][4]["timestamp"] == "2025-03-01T10:20:00Z"


def test_events_filter_by_type(api: Api, loaded: Tenant) -> None:
    """`event_type` lists that type only."""
    body = api.events(loaded.owner, loaded.project_id, event_type="view").json()
    assert [e["id"] for e in body["events"]] == ["e3", "e6"]


def test_cursor_paging_visits_every_event_once(api: Api, tenant: Tenant) -> None:
    """Following next_cursor visits every event exactly once, newest first, ties included."""
    base = datetime(2025, 3, 1, tzinfo=UTC)
    events = [
        # Pairs share a timestamp, so that paging has to break ties.
        {"id": f"p{i:02}", "type": "t", "timestamp": (base + timedelta(minutes=i // 2)).isoformat()}
        for i in range(25)
    ]
    api.ingest(tenant, {"events": events})

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = api.events(tenant.owner, tenant.project_id, **params).json()
        pages += 1
        assert len(page["events"]) <= 4
        seen.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 20, "paging does not end"

    ids = [e["id"] for e in seen]
    assert sorted(ids) == sorted(e["id"] for e in events)
    assert len(set(ids)) == len(ids)
    assert pages == 7
    stamps = [e["timestamp"] for e in seen]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize("limit", ["1001", "0", "-1", "many"])
def test_a_limit_outside_1_to_1000_is_a_bad_request(api: Api, tenant: Tenant, limit: str) -> None:
    """`limit` over 1000, under 1 or not a number answers 400."""
    assert_error(api.events(tenant.owner, tenant.project_id, limit=limit), 400)


def test_a_limit_of_1000_is_accepted(api: Api, tenant: Tenant) -> None:
    """`limit=1000` is the largest page and is accepted."""
    assert api.events(tenant.owner, tenant.project_id, limit=1000).status_code == 200


@pytest.mark.parametrize(
    "cursor", ["not a cursor!", "AAAA", "eyJhIjoxfQ", "W10", "WyJ4IiwxXQ"], ids=str
)
def test_a_cursor_the_api_did_not_give_is_a_bad_request(
    api: Api, tenant: Tenant, cursor: str
) -> None:
    """A cursor that is not one the API returned answers 400."""
    assert_error(api.events(tenant.owner, tenant.project_id, cursor=cursor), 400)


# --- authentication ----------------------------------------------------------------------------

READS = ["/v1/analytics/counts", "/v1/analytics/event-types", "/v1/events"]


def forged_token(secret: str, tenant: Tenant, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "eventcore",
        "sub": tenant.owner.user_id,
        "ws": tenant.owner.workspace_id,
        "role": "owner",
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.mark.parametrize("path", READS)
def test_reads_need_an_access_token(api: Api, tenant: Tenant, path: str) -> None:
    """Analytics and events without an access token answer 401."""
    assert_error(api.client.get(path, params={"project_id": tenant.project_id}), 401)


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(
    "kind", ["garbage", "api-key", "other-secret", "expired", "unknown-role", "no-workspace"]
)
def test_reads_refuse_bad_tokens(api: Api, tenant: Tenant, path: str, kind: str) -> None:
    """A malformed, foreign-secret, expired or incomplete token answers 401."""
    secret = (api.data_dir / "jwt-secret").read_text().strip()
    token = {
        "garbage": "not.a.token",
        "api-key": tenant.api_key,
        "other-secret": forged_token("another-secret-that-is-long-enough-for-hs256", tenant),
        "expired": forged_token(secret, tenant, iat=1_700_000_000, exp=1_700_003_600),
        "unknown-role": forged_token(secret, tenant, role="emperor"),
        "no-workspace": jwt.encode(
            {"iss": "eventcore", "sub": "u", "role": "owner", "iat": 1, "exp": 2**40},
            secret,
            algorithm="HS256",
        ),
    }[kind]

    response = api.client.get(
        path, params={"project_id": tenant.project_id}, headers={"Authorization": f"Bearer {token}"}
    )

    assert_error(response, 401)
    # A token forged with the real secret does work: the refusals above are about the token.
    good = forged_token(secret, tenant)
    ok = api.client.get(
        path, params={"project_id": tenant.project_id}, headers={"Authorization": f"Bearer {good}"}
    )
    assert ok.status_code == 200, ok.text


ODD_CLAIMS = [
    ("exp", "string"),
    ("exp", "nan"),
    ("exp", "infinity"),
    ("exp", "float"),
    ("exp", "list"),
    ("exp", "object"),
    ("exp", "null"),
    ("exp", "true"),
    ("iat", "list"),
    ("sub", "list"),
    ("sub", "integer"),
    ("ws", "list"),
    ("ws", "object"),
    ("ws", "null"),
    ("role", "list"),
    ("role", "false"),
    ("iss", "object"),
]


@pytest.mark.parametrize("path", ["/v1/projects", *READS])
@pytest.mark.parametrize(("claim", "kind"), ODD_CLAIMS)
def test_a_signed_token_with_a_claim_of_the_wrong_type_answers_401(
    api: Api, tenant: Tenant, path: str, claim: str, kind: str
) -> None:
    """A token signed with the server's secret but holding a claim of another JSON type than
    the server issues is refused like any invalid token: 401 `invalid_token`, never a 500."""
    secret = (api.data_dir / "jwt-secret").read_text().strip()
    claims = good_claims(tenant.owner.user_id, tenant.owner.workspace_id, time.time())
    odd = with_claim(claims, claim, JSON_VALUES[kind], secret)

    # /v1/projects takes no query parameter; the reads take their project's id.
    params = {} if path == "/v1/projects" else {"project_id": tenant.project_id}
    response = api.client.get(path, params=params, headers=bearer(odd))

    assert_error(response, 401, "invalid_token")
    ok = api.client.get(path, params=params, headers=bearer(sign(write(claims), secret)))
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(("claim", "kind"), [("ws", "list"), ("sub", "object"), ("exp", "nan")])
def test_a_token_with_odd_claims_creates_nothing(
    api: Api, tenant: Tenant, claim: str, kind: str
) -> None:
    """Such a token cannot create a project either."""
    secret = (api.data_dir / "jwt-secret").read_text().strip()
    claims = good_claims(tenant.owner.user_id, tenant.owner.workspace_id, time.time())
    odd = with_claim(claims, claim, JSON_VALUES[kind], secret)

    response = api.client.post("/v1/projects", json={"name": "Orphan"}, headers=bearer(odd))

    assert_error(response, 401, "invalid_token")
    projects = api.client.get("/v1/projects", headers=tenant.headers).json()["projects"]
    assert [p["id"] for p in projects] == [tenant.project_id]


def test_a_query_parameter_given_twice_is_refused(api: Api, tenant: Tenant) -> None:
    """`?event_type=a&event_type=b` is an error, not a silent choice of one value."""
    response = api.client.get(
        f"/v1/events?project_id={tenant.project_id}&event_type=a&event_type=b",
        headers=tenant.headers,
    )
    assert_error(response, 400, "invalid_query")


# --- entity tags and 304 -----------------------------------------------------------------------

ANSWERS = ["/v1/analytics/counts", "/v1/analytics/event-types"]
WINDOW = {"start": DAY_START, "end": DAY_END}
STRONG_TAG = re.compile(r'"[0-9a-f]{24}"')


@pytest.fixture
def shop(either: Api) -> Tenant:
    tenant = either.tenant()
    response = either.ingest(tenant, {"events": FIXTURE_EVENTS})
    assert response.json()["accepted"] == len(FIXTURE_EVENTS), response.text
    return tenant


def read(
    api: Api, path: str, account: Account, project_id: str, *headers: tuple[str, str | bytes]
) -> httpx.Response:
    return api.client.get(
        path,
        params={"project_id": project_id, **WINDOW},
        headers=[("Authorization", f"Bearer {account.token}"), *headers],
    )


def assert_not_modified(response: httpx.Response, tag: str) -> None:
    assert response.status_code == 304, response.text
    assert response.content == b""
    assert response.headers["etag"] == tag


@pytest.mark.parametrize(
    ("path", "schema"),
    [("/v1/analytics/counts", "CountSeries"), ("/v1/analytics/event-types", "EventTypeTotals")],
)
def test_the_answers_are_documented_as_their_structs(api: Api, path: str, schema: str) -> None:
    """Sent as bytes, the answers are still documented as the structs they encode."""
    document = api.client.get("/schema/openapi.json").json()
    ok = document["paths"][path]["get"]["responses"]["200"]

    assert ok["content"] == {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    }
    properties = document["components"]["schemas"][schema]["properties"]
    fields = {"CountSeries": CountSeries, "EventTypeTotals": EventTypeTotals}[
        schema
    ].__struct_fields__
    assert set(properties) == set(fields)


@pytest.mark.parametrize("path", ANSWERS)
def test_every_answer_carries_a_strong_tag_of_its_bytes(
    either: Api, shop: Tenant, path: str
) -> None:
    """A 200 has an ETag, the same for the computed and the cached answer, and is revalidated."""
    computed = read(either, path, shop.owner, shop.project_id)
    cached = read(either, path, shop.owner, shop.project_id)

    assert computed.status_code == cached.status_code == 200, computed.text
    assert computed.headers["content-type"] == "application/json"
    assert STRONG_TAG.fullmatch(computed.headers["etag"]), computed.headers
    assert computed.headers["etag"] == f'"{hashlib.sha256(computed.content).hexdigest()[:24]}"'
    assert cached.headers["etag"] == computed.headers["etag"]
    assert cached.content == computed.content
    assert computed.headers["cache-control"] == "private, no-cache"
    other = either.tenant()
    assert (
        read(either, path, other.owner, other.project_id).headers["etag"]
        != computed.headers["etag"]
    ), "two different answers share a tag"


@pytest.mark.parametrize("path", ANSWERS)
@pytest.mark.parametrize(
    "condition",
    ["{tag}", "W/{tag}", "*", ' "0123", {tag} ', 'W/"x", ,{tag},', '"a,b", {tag}'],
    ids=["exact", "weak", "any", "list", "empty-members", "comma-in-a-tag"],
)
def test_a_matching_if_none_match_answers_304(
    either: Api, shop: Tenant, path: str, condition: str
) -> None:
    """If-None-Match naming the answer's tag (strong, weak, in a list, or `*`) is a 304 with
    the tag and no body."""
    tag = read(either, path, shop.owner, shop.project_id).headers["etag"]

    response = read(
        either, path, shop.owner, shop.project_id, ("If-None-Match", condition.format(tag=tag))
    )

    assert_not_modified(response, tag)


@pytest.mark.parametrize("path", ANSWERS)
def test_a_tag_in_a_second_if_none_match_field_matches(
    either: Api, shop: Tenant, path: str
) -> None:
    """If-None-Match sent as two header fields is read as one list."""
    tag = read(either, path, shop.owner, shop.project_id).headers["etag"]

    response = read(
        either,
        path,
        shop.owner,
        shop.project_id,
        ("If-None-Match", '"other"'),
        ("If-None-Match", tag),
    )

    assert_not_modified(response, tag)


@pytest.mark.parametrize("path", ANSWERS)
def test_a_tag_that_does_not_match_gets_the_whole_answer(
    either: Api, shop: Tenant, path: str
) -> None:
    """An If-None-Match naming other tags is answered 200 with the body and the current tag."""
    first = read(either, path, shop.owner, shop.project_id)

    response = read(either, path, shop.owner, shop.project_id, ("If-None-Match", '"0", W/"1"'))

    assert response.status_code == 200, response.text
    assert response.content == first.content
    assert response.headers["etag"] == first.headers["etag"]


@pytest.mark.parametrize("path", ANSWERS)
def test_new_events_change_the_tag(either: Api, shop: Tenant, path: str) -> None:
    """Once more events are counted, the old tag no longer matches: 200, new body, new tag."""
    before = read(either, path, shop.owner, shop.project_id)
    either.ingest(shop, {"id": "late", "type": "late", "timestamp": "2025-03-01T10:30:00Z"})

    after = read(
        either, path, shop.owner, shop.project_id, ("If-None-Match", before.headers["etag"])
    )

    assert after.status_code == 200, after.text
    assert after.headers["etag"] != before.headers["etag"]
    assert b'"late"' in after.content


@pytest.mark.parametrize("path", ANSWERS)
@pytest.mark.parametrize("role", ["owner", "admin", "viewer"])
def test_no_304_for_a_project_of_another_workspace(
    either: Api, shop: Tenant, path: str, role: str
) -> None:
    """Any member of another workspace asking with `*` or the project's own tag gets 404."""
    tag = read(either, path, shop.owner, shop.project_id).headers["etag"]
    other = either.tenant()
    outsider = other.owner if role == "owner" else either.member(other.owner, role)

    for condition in ("*", tag):
        response = read(either, path, outsider, shop.project_id, ("If-None-Match", condition))
        assert_error(response, 404, "not_found")
        assert "etag" not in response.headers


@pytest.mark.parametrize("path", ANSWERS)
@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_members_revalidate_the_same_answer(
    either: Api, shop: Tenant, path: str, role: str
) -> None:
    """Every role may read analytics: a member gets the owner's tag and its 304."""
    tag = read(either, path, shop.owner, shop.project_id).headers["etag"]
    member = either.member(shop.owner, role)

    assert read(either, path, member, shop.project_id).headers["etag"] == tag
    assert_not_modified(read(either, path, member, shop.project_id, ("If-None-Match", tag)), tag)


@pytest.mark.parametrize("path", ANSWERS)
@pytest.mark.parametrize("token", [None, "not.a.token"], ids=["no-token", "bad-token"])
def test_no_304_without_authentication(
    either: Api, shop: Tenant, path: str, token: str | None
) -> None:
    """Without a valid access token, If-None-Match changes nothing: 401."""
    tag = read(either, path, shop.owner, shop.project_id).headers["etag"]
    for condition in ("*", tag):
        headers = {"If-None-Match": condition}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = either.client.get(
            path, params={"project_id": shop.project_id, **WINDOW}, headers=headers
        )
        assert_error(response, 401)


@pytest.mark.parametrize("path", ANSWERS)
def test_a_bad_query_is_refused_before_any_304(either: Api, shop: Tenant, path: str) -> None:
    """A query that is not valid answers 400 even when If-None-Match is `*`."""
    response = either.client.get(
        path,
        params={"project_id": shop.project_id, "start": DAY_END, "end": DAY_START},
        headers={**shop.headers, "If-None-Match": "*"},
    )
    assert_error(response, 400, "invalid_query")


@pytest.mark.parametrize("path", ANSWERS)
@pytest.mark.parametrize(
    "condition",
    [
        b"",
        b"   ",
        b"garbage",
        b'"unterminated',
        b"W/",
        b'W/"',
        b",,,",
        b'"a" "b"',
        b'*, "a"',
        b"**",
        b'"\xff\xfe"',
        b"\xe2\x82\xac",
        b'"' + b"a" * 4000 + b'"',
        b'"a",' * 500,
    ],
    ids=lambda value: repr(value[:12]),
)
def test_if_none_match_that_is_not_a_list_of_tags_gets_the_whole_answer(
    either: Api, shop: Tenant, path: str, condition: bytes
) -> None:
    """A malformed If-None-Match is ignored: 200 with the answer, never an error."""
    expected = read(either, path, shop.owner, shop.project_id)

    response = read(either, path, shop.owner, shop.project_id, ("If-None-Match", condition))

    assert response.status_code == 200, response.text
    assert response.content == expected.content


@pytest.mark.integration
def test_both_profiles_answer_the_same_bytes(make_api: ApiFactory) -> None:
    """The same events give the same event-type answer, byte for byte and tag for tag, on the
    embedded profile and on PostgreSQL with Redis; and the same series of counts."""
    answers = []
    for profile in ("embedded", "shared"):
        with profile_settings(profile) as env:
            api = make_api(env=env)
            tenant = api.tenant()
            api.ingest(tenant, {"events": FIXTURE_EVENTS})
            types = read(api, "/v1/analytics/event-types", tenant.owner, tenant.project_id)
            counts = read(api, "/v1/analytics/counts", tenant.owner, tenant.project_id)
            answers.append((types.content, types.headers["etag"], counts.json()["series"]))
            api.stop()

    assert answers[0] == answers[1]
    assert answers[0][2], "no counts to compare"
