"""Analytics: query windows, the generation-keyed cache, and paging through the event list."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from eventcore import EncodedAnswer, Event, Granularity, IngestBatch, InvalidRequest, NotFound
from eventcore.adapters.memory import MemoryStore
from eventcore.aggregation import CountPoint, CountSeries, EventTypeCount, StoredGrain
from eventcore.defaults import PROJECT_CACHE_SECONDS
from eventcore.tenancy import Project
from tests.unit.conftest import NOW, App, Tenant
from tests.unit.helpers import event

HOUR = timedelta(hours=1)


async def _send(app: App, tenant: Tenant, *events: dict[str, Any]) -> None:
    await app.ingestor.submit(tenant.ref, list(events))


def _at(moment: datetime) -> str:
    return moment.isoformat()


# -- windows


async def test_default_window_is_the_last_24_hours(app: App, tenant: Tenant) -> None:
    """Without start and end, counts cover the 24 hours up to now, widened to whole buckets."""
    await _send(
        app,
        tenant,
        event("in", timestamp=_at(NOW - timedelta(hours=23))),
        event("edge", timestamp=_at(NOW - timedelta(hours=24))),
        event("old", timestamp=_at(NOW - timedelta(hours=25))),
        event("now"),
    )
    series = await app.analytics.counts(tenant.principal, tenant.project_id)
    assert series.granularity is Granularity.HOUR
    assert series.start == datetime(2026, 1, 9, 12, tzinfo=UTC)
    assert series.end == datetime(2026, 1, 10, 13, tzinfo=UTC)
    assert series.total == 3
    types = await app.analytics.event_types(tenant.principal, tenant.project_id)
    assert types.event_types == [EventTypeCount("click", 3)]


async def test_end_alone_defaults_start_to_a_day_before(app: App, tenant: Tenant) -> None:
    """With only `end`, the window is the 24 hours before it."""
    end = datetime(2026, 1, 5, tzinfo=UTC)
    series = await app.analytics.counts(tenant.principal, tenant.project_id, end=end)
    assert (series.start, series.end) == (end - timedelta(days=1), end)


@pytest.mark.parametrize(
    ("start", "end"),
    [(NOW, NOW), (NOW, NOW - timedelta(seconds=1)), (NOW + HOUR, NOW)],
)
async def test_start_not_before_end_is_refused(
    app: App, tenant: Tenant, start: datetime, end: datetime
) -> None:
    """A window whose start is not before its end is a bad query."""
    with pytest.raises(InvalidRequest) as caught:
        await app.analytics.counts(tenant.principal, tenant.project_id, start=start, end=end)
    assert caught.value.code == "invalid_query"
    with pytest.raises(InvalidRequest):
        await app.analytics.event_types(tenant.principal, tenant.project_id, start=start, end=end)


@pytest.mark.parametrize("which", ["start", "end", "both"])
async def test_naive_datetimes_are_refused(app: App, tenant: Tenant, which: str) -> None:
    """Times without an offset are ambiguous and refused."""
    naive = datetime(2026, 1, 10, 10)  # no offset: the point of the test
    window: dict[str, datetime] = {
        "start": naive if which in {"start", "both"} else NOW - HOUR * 30,
        "end": naive + HOUR if which in {"end", "both"} else NOW,
    }
    with pytest.raises(InvalidRequest) as caught:
        await app.analytics.counts(tenant.principal, tenant.project_id, **window)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_query"


@pytest.mark.parametrize(
    ("granularity", "span", "allowed"),
    [
        (Granularity.MINUTE, timedelta(minutes=10_000), True),
        (Granularity.MINUTE, timedelta(minutes=10_001), False),
        (Granularity.MINUTE, timedelta(days=8), False),
        (Granularity.HOUR, timedelta(hours=10_000), True),
        (Granularity.HOUR, timedelta(days=3650), False),
        (Granularity.DAY, timedelta(days=3650), True),
        (Granularity.DAY, timedelta(days=10_001), False),
    ],
)
async def test_too_many_buckets_are_refused(
    app: App, tenant: Tenant, granularity: Granularity, span: timedelta, allowed: bool
) -> None:
    """A window may hold at most 10,000 buckets of its granularity."""
    end = datetime(2026, 1, 1, tzinfo=UTC)
    query = app.analytics.counts(
        tenant.principal, tenant.project_id, start=end - span, end=end, granularity=granularity
    )
    if allowed:
        assert (await query).start == end - span
    else:
        with pytest.raises(InvalidRequest) as caught:
            await query
        assert caught.value.code == "window_too_large"


@pytest.mark.parametrize(
    ("granularity", "expected_start", "expected_end"),
    [
        (
            Granularity.MINUTE,
            datetime(2026, 1, 10, 8, 34, tzinfo=UTC),
            datetime(2026, 1, 10, 12, 10, tzinfo=UTC),
        ),
        (
            Granularity.HOUR,
            datetime(2026, 1, 10, 8, tzinfo=UTC),
            datetime(2026, 1, 10, 13, tzinfo=UTC),
        ),
        (Granularity.DAY, datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 11, tzinfo=UTC)),
    ],
)
async def test_window_is_normalised_to_utc_bucket_boundaries(
    app: App,
    tenant: Tenant,
    granularity: Granularity,
    expected_start: datetime,
    expected_end: datetime,
) -> None:
    """Start moves back and end forward to bucket boundaries in UTC, whatever offset was sent."""
    plus_two = timezone(timedelta(hours=2))
    start = datetime(2026, 1, 10, 10, 34, 56, 789, tzinfo=plus_two)  # 08:34:56 UTC
    end = datetime(2026, 1, 10, 12, 10, tzinfo=UTC)
    series = await app.analytics.counts(
        tenant.principal, tenant.project_id, start=start, end=end, granularity=granularity
    )
    assert (series.start, series.end) == (expected_start, expected_end)
    assert series.start.utcoffset() == timedelta(0)


async def test_events_in_the_edge_buckets_are_counted(app: App, tenant: Tenant) -> None:
    """An event in the bucket holding start or end is counted, one in the next bucket is not."""
    await _send(
        app,
        tenant,
        event("before", timestamp="2026-01-10T07:59:59Z"),
        event("first", timestamp="2026-01-10T08:00:00Z"),
        event("last", timestamp="2026-01-10T10:59:59.999Z"),
        event("after", timestamp="2026-01-10T11:00:00Z"),
    )
    series = await app.analytics.counts(
        tenant.principal,
        tenant.project_id,
        start=datetime(2026, 1, 10, 8, 30, tzinfo=UTC),
        end=datetime(2026, 1, 10, 10, 1, tzinfo=UTC),
    )
    assert series.total == 2
    assert [(p.bucket.hour, p.count) for p in series.series] == [(8, 1), (10, 1)]


async def test_event_type_filter(app: App, tenant: Tenant) -> None:
    """Counts for one event type leave out every other type."""
    await _send(app, tenant, event("a", "view"), event("b", "click"), event("c", "view"))
    series = await app.analytics.counts(tenant.principal, tenant.project_id, event_type="view")
    assert series.total == 2
    assert {p.event_type for p in series.series} == {"view"}


async def test_unknown_project_is_not_found(app: App, tenant: Tenant) -> None:
    """Queries about a project that does not exist answer NotFound."""
    for query in (app.analytics.counts, app.analytics.event_types, app.analytics.list_events):
        with pytest.raises(NotFound):
            await query(tenant.principal, "no-such-project")


# -- the cache


class CountingStore:
    """A store that counts the analytics reads reaching it."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.reads: Counter[str] = Counter()
        self.grains: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def count_series(self, *args: Any, **kwargs: Any) -> list[CountPoint]:
        self.reads["count_series"] += 1
        self.grains.append(args[2])
        return await self.inner.count_series(*args, **kwargs)

    async def event_type_totals(self, *args: Any, **kwargs: Any) -> list[EventTypeCount]:
        self.reads["event_type_totals"] += 1
        return await self.inner.event_type_totals(*args, **kwargs)

    async def append(self, batches: Sequence[IngestBatch]) -> Any:
        self.reads["append"] += 1
        return await self.inner.append(batches)

    async def get_project(self, workspace_id: str, project_id: str) -> Project | None:
        self.reads["get_project"] += 1
        return await self.inner.get_project(workspace_id, project_id)


@pytest.fixture
def counting() -> CountingStore:
    return CountingStore()


@pytest.fixture
async def cached(make_app: Any, counting: CountingStore) -> tuple[App, Tenant]:
    app: App = make_app(store=counting)
    return app, await app.signup()


@pytest.mark.parametrize(
    ("granularity", "stored"),
    [
        (Granularity.MINUTE, StoredGrain.MINUTE),
        (Granularity.HOUR, StoredGrain.HOUR),
        (Granularity.DAY, StoredGrain.HOUR),
    ],
)
async def test_the_store_is_asked_only_for_the_stored_grain(
    cached: tuple[App, Tenant],
    counting: CountingStore,
    granularity: Granularity,
    stored: StoredGrain,
) -> None:
    """Each granularity reaches the store as the grain its counts are kept at: days as hours."""
    app, tenant = cached
    await _send(app, tenant, event("a", timestamp=_at(NOW - 2 * HOUR)), event("b"))
    series = await app.analytics.counts(
        tenant.principal, tenant.project_id, granularity=granularity
    )
    assert series.total == 2
    assert len(counting.grains) == 1
    assert type(counting.grains[0]) is StoredGrain
    assert counting.grains[0] is stored


async def test_identical_query_is_served_from_cache(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """A second identical query is answered from the cache with the same answer."""
    app, tenant = cached
    await _send(app, tenant, event("a"), event("b", "view"))
    first = await app.analytics.counts(tenant.principal, tenant.project_id)
    second = await app.analytics.counts(tenant.principal, tenant.project_id)
    assert second == first
    assert counting.reads["count_series"] == 1
    types = [await app.analytics.event_types(tenant.principal, tenant.project_id) for _ in "ab"]
    assert types[0] == types[1]
    assert counting.reads["event_type_totals"] == 1


async def test_queries_inside_the_same_buckets_share_a_cache_entry(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """Two windows that normalise to the same buckets are one cache entry."""
    app, tenant = cached
    for minute in (1, 2, 59):
        await app.analytics.counts(
            tenant.principal,
            tenant.project_id,
            start=datetime(2026, 1, 10, 1, minute, tzinfo=UTC),
            end=datetime(2026, 1, 10, 3, minute, tzinfo=UTC),
        )
    assert counting.reads["count_series"] == 1


async def test_different_queries_are_not_confused(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """Queries differing in granularity, type filter or project each go to the store."""
    app, tenant = cached
    other, _, _ = await app.add_project(tenant.principal, "Other")
    await _send(app, tenant, event("a", "view"))
    answers = [
        await app.analytics.counts(tenant.principal, tenant.project_id),
        await app.analytics.counts(
            tenant.principal, tenant.project_id, granularity=Granularity.MINUTE
        ),
        await app.analytics.counts(tenant.principal, tenant.project_id, event_type="click"),
        await app.analytics.counts(tenant.principal, other.id),
    ]
    assert counting.reads["count_series"] == 4
    assert [a.total for a in answers] == [1, 1, 0, 0]


async def test_commit_invalidates_cached_answers(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """After a commit, the same query is recomputed and includes the new events."""
    app, tenant = cached
    await _send(app, tenant, event("a"))
    generation = await app.query_cache.generation(tenant.workspace_id)
    assert (await app.analytics.counts(tenant.principal, tenant.project_id)).total == 1
    assert (await app.analytics.event_types(tenant.principal, tenant.project_id)).event_types == [
        EventTypeCount("click", 1)
    ]
    await _send(app, tenant, event("b"), event("c", "view"))
    assert await app.query_cache.generation(tenant.workspace_id) > generation
    assert (await app.analytics.counts(tenant.principal, tenant.project_id)).total == 3
    assert (await app.analytics.event_types(tenant.principal, tenant.project_id)).event_types == [
        EventTypeCount("click", 2),
        EventTypeCount("view", 1),
    ]
    assert counting.reads["count_series"] == 2
    assert counting.reads["event_type_totals"] == 2


async def test_duplicate_only_commit_keeps_the_cache(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """A redelivery that inserts nothing leaves cached answers valid."""
    app, tenant = cached
    await _send(app, tenant, event("a"))
    await app.analytics.counts(tenant.principal, tenant.project_id)
    generation = await app.query_cache.generation(tenant.workspace_id)
    (stored,) = app.stored(tenant.ref)
    original = Event(stored.id, stored.type, stored.timestamp, stored.properties)
    redelivered = IngestBatch(tenant.workspace_id, tenant.project_id, NOW, [original])
    assert (await app.processor.process([redelivered])).inserted == 0
    assert await app.query_cache.generation(tenant.workspace_id) == generation
    await app.analytics.counts(tenant.principal, tenant.project_id)
    assert counting.reads["count_series"] == 1


async def test_another_workspaces_commit_keeps_the_cache(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """A commit in one workspace does not invalidate another workspace's answers."""
    app, tenant = cached
    other = await app.signup()
    await app.analytics.counts(tenant.principal, tenant.project_id)
    await _send(app, other, event("theirs"))
    assert (await app.analytics.counts(tenant.principal, tenant.project_id)).total == 0
    assert counting.reads["count_series"] == 1


async def test_cached_answers_expire(cached: tuple[App, Tenant], counting: CountingStore) -> None:
    """A cached answer is recomputed once its time to live has passed."""
    app, tenant = cached
    start, end = NOW - HOUR, NOW
    await app.analytics.counts(tenant.principal, tenant.project_id, start=start, end=end)
    app.clock.advance(301)
    await app.analytics.counts(tenant.principal, tenant.project_id, start=start, end=end)
    assert counting.reads["count_series"] == 2


async def test_cache_is_checked_after_permissions(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """A cached answer is never handed to a caller who may not see the project."""
    app, tenant = cached
    intruder = await app.signup()
    await app.analytics.counts(tenant.principal, tenant.project_id)
    with pytest.raises(NotFound):
        await app.analytics.counts(intruder.principal, tenant.project_id)
    with pytest.raises(NotFound):
        await app.analytics.counts_json(intruder.principal, tenant.project_id)
    with pytest.raises(NotFound):
        await app.analytics.event_types_json(intruder.principal, tenant.project_id)


# -- the JSON answers


COUNT_QUERIES = [
    {},
    {"granularity": Granularity.MINUTE},
    {"granularity": Granularity.DAY, "start": NOW - 3 * 24 * HOUR},
    {"event_type": "view"},
]


@pytest.mark.parametrize("query", COUNT_QUERIES, ids=["hour", "minute", "day", "filtered"])
async def test_the_json_answer_is_the_typed_answer_encoded(
    cached: tuple[App, Tenant], counting: CountingStore, query: dict[str, Any]
) -> None:
    """counts_json is what counts encodes to, computed (the first time) or cached (then)."""
    app, tenant = cached
    await _send(app, tenant, event("a"), event("b", "view"), event("c", timestamp=_at(NOW - HOUR)))
    fresh = await app.analytics.counts_json(tenant.principal, tenant.project_id, **query)
    cached_bytes = await app.analytics.counts_json(tenant.principal, tenant.project_id, **query)
    typed = await app.analytics.counts(tenant.principal, tenant.project_id, **query)

    assert counting.reads["count_series"] == 1
    assert cached_bytes == fresh
    assert fresh.body == msgspec.json.encode(typed)
    assert fresh.digest == hashlib.sha256(fresh.body).hexdigest()[:24]
    assert msgspec.json.decode(fresh.body, type=CountSeries) == typed
    assert typed.total > 0


async def test_the_json_event_types_are_the_typed_ones_encoded(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """event_types_json is what event_types encodes to, computed or cached."""
    app, tenant = cached
    await _send(app, tenant, event("a"), event("b", "view"), event("c", "view"))
    fresh = await app.analytics.event_types_json(tenant.principal, tenant.project_id)
    cached_bytes = await app.analytics.event_types_json(tenant.principal, tenant.project_id)
    typed = await app.analytics.event_types(tenant.principal, tenant.project_id)

    assert counting.reads["event_type_totals"] == 1
    assert cached_bytes == fresh
    assert fresh.body == msgspec.json.encode(typed)
    assert typed.event_types == [EventTypeCount("view", 2), EventTypeCount("click", 1)]


def _cache_holds(app: App, monkeypatch: pytest.MonkeyPatch, stored: bytes) -> None:
    """Every lookup of the app's cache finds ``stored`` (at the workspace's generation)."""

    async def lookup(workspace_id: str, key: str) -> tuple[int, bytes | None]:
        return await app.query_cache.generation(workspace_id), stored

    monkeypatch.setattr(app.query_cache, "lookup", lookup)


async def test_the_cache_holds_the_digest_then_the_json(
    cached: tuple[App, Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is cached is the answer's digest followed by its bytes, found under the query."""
    app, tenant = cached
    await _send(app, tenant, event("a"))
    answer = await app.analytics.event_types_json(tenant.principal, tenant.project_id)
    found: list[bytes | None] = []
    lookup = app.query_cache.lookup

    async def recording(workspace_id: str, key: str) -> tuple[int, bytes | None]:
        generation, stored = await lookup(workspace_id, key)
        found.append(stored)
        return generation, stored

    monkeypatch.setattr(app.query_cache, "lookup", recording)

    assert await app.analytics.event_types_json(tenant.principal, tenant.project_id) == answer
    assert found == [answer.digest.encode() + answer.body]


async def test_a_cached_json_answer_is_served_as_stored(
    cached: tuple[App, Tenant], counting: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hit hands back the bytes the cache holds and their digest: nothing is decoded,
    encoded or hashed again (these bytes are not even a CountSeries)."""
    app, tenant = cached
    _cache_holds(app, monkeypatch, b"0123456789abcdef01234567" + b'{"from":"the cache"}')

    answer = await app.analytics.counts_json(tenant.principal, tenant.project_id)

    assert answer == EncodedAnswer(b'{"from":"the cache"}', "0123456789abcdef01234567")
    assert counting.reads["count_series"] == 0


@pytest.mark.parametrize(
    "stored", [b"", b"[1, 2", b"0123456789abcdef01234567", b"0123456789ABCDEF01234567{}"]
)
async def test_a_cache_entry_without_a_digest_is_recomputed(
    cached: tuple[App, Tenant],
    counting: CountingStore,
    monkeypatch: pytest.MonkeyPatch,
    stored: bytes,
) -> None:
    """An entry that is not a digest then JSON (a foreign writer) is a miss for either API."""
    app, tenant = cached
    await _send(app, tenant, event("a"))
    expected = await app.analytics.counts(tenant.principal, tenant.project_id)
    _cache_holds(app, monkeypatch, stored)

    assert await app.analytics.counts(tenant.principal, tenant.project_id) == expected
    answer = await app.analytics.counts_json(tenant.principal, tenant.project_id)
    assert answer.body == msgspec.json.encode(expected)
    assert counting.reads["count_series"] == 3


async def test_a_typed_answer_is_computed_when_the_cached_json_does_not_decode(
    cached: tuple[App, Tenant], counting: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The typed API recomputes an answer whose cached bytes are not one."""
    app, tenant = cached
    await _send(app, tenant, event("a"))
    expected = await app.analytics.counts(tenant.principal, tenant.project_id)
    _cache_holds(app, monkeypatch, b"0123456789abcdef01234567" + b"[1, 2")

    assert await app.analytics.counts(tenant.principal, tenant.project_id) == expected
    assert counting.reads["count_series"] == 2


# -- the project check


async def test_the_project_is_asked_of_the_store_once_a_second(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """Reads of one project within a second check it in the store once; after, once again."""
    app, tenant = cached
    before = counting.reads["get_project"]
    for _ in range(3):
        await app.analytics.counts(tenant.principal, tenant.project_id)
        await app.analytics.event_types_json(tenant.principal, tenant.project_id)
    assert counting.reads["get_project"] == before + 1

    app.clock.advance(PROJECT_CACHE_SECONDS)
    await app.analytics.counts_json(tenant.principal, tenant.project_id)
    assert counting.reads["get_project"] == before + 2


async def test_a_deleted_project_stops_answering_within_a_second(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """Once a project is gone from the store, its reads answer NotFound a second later at most."""
    app, tenant = cached
    await app.analytics.counts_json(tenant.principal, tenant.project_id)
    del counting.inner.projects[tenant.project_id]

    app.clock.advance(PROJECT_CACHE_SECONDS)

    for read in (app.analytics.counts_json, app.analytics.event_types_json):
        with pytest.raises(NotFound):
            await read(tenant.principal, tenant.project_id)
    with pytest.raises(NotFound):
        await app.analytics.list_events(tenant.principal, tenant.project_id)


async def test_a_project_not_found_is_asked_about_every_time(
    cached: tuple[App, Tenant], counting: CountingStore
) -> None:
    """Only existence is remembered: a project not found is looked up again on the next read."""
    app, tenant = cached
    before = counting.reads["get_project"]
    for _ in range(2):
        with pytest.raises(NotFound):
            await app.analytics.counts_json(tenant.principal, "no-such-project")
    assert counting.reads["get_project"] == before + 2


# -- the event list


async def test_paging_visits_every_event_once_newest_first(app: App, tenant: Tenant) -> None:
    """Following cursors visits every event exactly once, newest first, ties included."""
    base = NOW - timedelta(hours=2)
    events = [
        event(
            f"e{i}", "view" if i % 3 else "click", timestamp=_at(base + timedelta(minutes=i // 4))
        )
        for i in range(53)
    ]
    await app.ingestor.submit(tenant.ref, events[:30])
    await app.ingestor.submit(tenant.ref, events[30:])
    seen: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await app.analytics.list_events(
            tenant.principal, tenant.project_id, limit=7, cursor=cursor
        )
        pages += 1
        seen.extend(page.events)
        assert len(page.events) <= 7
        if page.next_cursor is None:
            break
        assert len(page.events) == 7
        cursor = page.next_cursor
    assert pages == 8
    assert sorted(e.id for e in seen) == sorted(f"e{i}" for i in range(53))
    keys = [(e.timestamp, e.seq) for e in seen]
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == len(keys)


async def test_paging_with_a_type_filter(app: App, tenant: Tenant) -> None:
    """Paging a type filter lists only that type, each event once."""
    await app.ingestor.submit(
        tenant.ref, [event(str(i), "view" if i % 2 else "click") for i in range(25)]
    )
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await app.analytics.list_events(
            tenant.principal, tenant.project_id, event_type="view", limit=4, cursor=cursor
        )
        assert {e.type for e in page.events} <= {"view"}
        ids += [e.id for e in page.events]
        if not (cursor := page.next_cursor):
            break
    assert sorted(ids, key=int) == [str(i) for i in range(1, 25, 2)]


async def test_exact_page_has_no_next_cursor(app: App, tenant: Tenant) -> None:
    """When the last page is exactly full there is no cursor to a further, empty page."""
    await app.ingestor.submit(tenant.ref, [event(str(i)) for i in range(5)])
    page = await app.analytics.list_events(tenant.principal, tenant.project_id, limit=5)
    assert (len(page.events), page.next_cursor) == (5, None)


async def test_listed_events_carry_their_fields(app: App, tenant: Tenant) -> None:
    """A listed event has its id, type, timestamp, time received and properties."""
    app.clock.advance(5)
    await app.ingestor.submit(
        tenant.ref,
        [event("x", "buy", timestamp="2026-01-10T12:00:00Z", properties={"sku": "A-1"})],
    )
    (listed,) = (await app.analytics.list_events(tenant.principal, tenant.project_id)).events
    assert (listed.id, listed.type) == ("x", "buy")
    assert listed.timestamp == datetime(2026, 1, 10, 12, tzinfo=UTC)
    assert listed.received_at == NOW + timedelta(seconds=5)
    assert bytes(listed.properties) == b'{"sku":"A-1"}'


@pytest.mark.parametrize(
    "cursor", ["garbage", "!!!", "W10", "WyJub3QgYSB0aW1lIiwgMV0", "eyJhIjogMX0", "WzEsMiwzXQ"]
)
async def test_bad_cursor_is_refused(app: App, tenant: Tenant, cursor: str) -> None:
    """A cursor this API did not return is a bad request."""
    with pytest.raises(InvalidRequest) as caught:
        await app.analytics.list_events(tenant.principal, tenant.project_id, cursor=cursor)
    assert caught.value.code == "invalid_cursor"


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_page_size_is_bounded(app: App, tenant: Tenant, limit: int) -> None:
    """A page holds 1 to 1000 events."""
    with pytest.raises(InvalidRequest):
        await app.analytics.list_events(tenant.principal, tenant.project_id, limit=limit)


@pytest.mark.parametrize(
    "payload",
    [
        b'["2026-01-10T10:00:00",1]',
        b'["2026-01-10T10:00:00.5",7]',
        b'["2026-01-10",1]',
        b'["2026-01-10T12:00:00+02:00",0]',
        b'["2026-01-10T12:00:00Z",9223372036854775808]',
    ],
)
async def test_a_readable_cursor_of_the_old_form_is_refused(
    app: App, tenant: Tenant, payload: bytes
) -> None:
    """Cursors are sealed: base64 JSON of a position, however well-formed, is a bad cursor."""
    await _send(
        app,
        tenant,
        event("old", timestamp="2026-01-10T09:00:00Z"),
        event("new", timestamp="2026-01-10T11:00:00Z"),
    )
    cursor = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    with pytest.raises(InvalidRequest) as caught:
        await app.analytics.list_events(tenant.principal, tenant.project_id, cursor=cursor)
    assert caught.value.code == "invalid_cursor"


async def test_a_cursor_pages_only_the_listing_it_was_made_for(app: App, tenant: Tenant) -> None:
    """A cursor of one type filter is refused with another filter, none, or another project."""
    await _send(app, tenant, *(event(f"e{i}", "view") for i in range(3)))
    other = await app.signup()
    page = await app.analytics.list_events(
        tenant.principal, tenant.project_id, event_type="view", limit=1
    )
    assert page.next_cursor is not None
    listings: list[tuple[Any, str, str | None]] = [
        (tenant.principal, tenant.project_id, None),
        (tenant.principal, tenant.project_id, ""),
        (tenant.principal, tenant.project_id, "click"),
        (other.principal, other.project_id, "view"),
    ]
    for principal, project_id, event_type in listings:
        with pytest.raises(InvalidRequest) as caught:
            await app.analytics.list_events(
                principal, project_id, event_type=event_type, cursor=page.next_cursor
            )
        assert caught.value.code == "invalid_cursor"
    rest = await app.analytics.list_events(
        tenant.principal, tenant.project_id, event_type="view", cursor=page.next_cursor
    )
    assert [e.id for e in page.events + rest.events] == ["e2", "e1", "e0"]


@pytest.mark.parametrize(
    ("start", "end", "granularity"),
    [
        (None, datetime(1, 1, 1, 12, tzinfo=UTC), Granularity.HOUR),
        (None, datetime(1, 1, 1, tzinfo=UTC), Granularity.MINUTE),
        (datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 2, tzinfo=UTC), Granularity.HOUR),
        (datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), None, Granularity.DAY),
        (None, datetime.max.replace(tzinfo=UTC), Granularity.DAY),
        (
            datetime(9999, 12, 31, 23, tzinfo=UTC),
            datetime.max.replace(tzinfo=UTC),
            Granularity.HOUR,
        ),
        (
            datetime(9999, 12, 31, 22, tzinfo=timezone(timedelta(hours=-3))),
            datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-3))),
            Granularity.HOUR,
        ),
    ],
)
async def test_windows_at_the_ends_of_time_are_answered_or_refused(
    app: App,
    tenant: Tenant,
    start: datetime | None,
    end: datetime | None,
    granularity: Granularity,
) -> None:
    """A window touching year 1 or year 9999 gets an answer or a bad-query error, never a crash."""
    refusal: InvalidRequest | None = None
    try:
        series = await app.analytics.counts(
            tenant.principal, tenant.project_id, start=start, end=end, granularity=granularity
        )
    except InvalidRequest as exc:
        refusal = exc
    if refusal is None:
        assert series.total == 0
    else:
        assert refusal.code in {"invalid_query", "window_too_large"}


async def _empty_filter_total(app: App, tenant: Tenant) -> int | None:
    """Counts filtered by the empty type: None when that filter is refused as a bad query."""
    try:
        series = await app.analytics.counts(tenant.principal, tenant.project_id, event_type="")
    except InvalidRequest:
        return None
    return series.total


async def test_empty_type_filter_is_not_confused_with_no_filter(app: App) -> None:
    """Filtering by the empty type and not filtering never share a cached answer, in either order."""
    first, second = await app.signup(), await app.signup()
    for tenant in (first, second):
        await _send(app, tenant, event("a"), event("b", "view"))
    # Filter first, then ask for everything.
    assert await _empty_filter_total(app, first) in {None, 0}
    assert (await app.analytics.counts(first.principal, first.project_id)).total == 2
    # Everything first, then the filter.
    assert (await app.analytics.counts(second.principal, second.project_id)).total == 2
    assert await _empty_filter_total(app, second) in {None, 0}
