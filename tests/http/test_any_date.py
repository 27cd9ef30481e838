"""The suite's own helpers and the app at far dates: no test may depend on the day it runs.

Under a clock moved to a far date (time-machine patches ``datetime.now`` and ``time.time`` for
the test and the in-process app alike, so tokens, rate limits and server-stamped times all see
it), events go in through the HTTP app and come back through the same ``total`` helpers the
ingest and Segment tests count with. A helper that builds its window from a fixed far-past
start (2000-01-01 to now + 2 days passes the 10,000-bucket limit from 2027-05-17) fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from eventcore.defaults import MAX_BUCKETS
from tests.http import test_ingest
from tests.http.support import ApiFactory, assert_error
from tests.segment import support as segment

# The first day on which the old window (2000-01-01 to now + 2 days) was over the limit, and a
# date years later.
FAR_DATES = ["2027-05-17T12:00:00+00:00", "2031-06-01T08:30:00+00:00"]


@pytest.fixture(params=FAR_DATES)
def far_now(request: pytest.FixtureRequest) -> datetime:
    return datetime.fromisoformat(request.param)


def test_a_window_from_a_fixed_past_start_is_refused_at_the_first_far_date(
    make_api: ApiFactory,
) -> None:
    """On 2027-05-17 the old helpers' window, 2000-01-01 to now + 2 days, is over the bucket limit."""
    with time_machine.travel(datetime.fromisoformat(FAR_DATES[0]), tick=True):
        api = make_api()
        tenant = api.tenant()

        response = api.counts(
            tenant.owner,
            tenant.project_id,
            granularity="day",
            start="2000-01-01T00:00:00Z",
            end=(datetime.now(UTC) + timedelta(days=2)).isoformat(),
        )

    error = assert_error(response, 400, "window_too_large")
    assert f"the limit is {MAX_BUCKETS}" in error["message"]


def test_native_ingest_is_stored_and_counted_at_a_far_date(
    make_api: ApiFactory, far_now: datetime
) -> None:
    """At a far date, ingested events are stamped on that date and counted once by `total`."""
    with time_machine.travel(far_now, tick=True):
        api = make_api()
        tenant = api.tenant()
        yesterday = (far_now - timedelta(days=1)).isoformat()
        sent = {
            "events": [
                {"id": "now-1", "type": "view"},
                {"id": "now-2", "type": "view"},
                {"id": "earlier", "type": "buy", "timestamp": yesterday},
            ]
        }

        first = api.ingest(tenant, sent)
        again = api.ingest(tenant, sent)

        assert first.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
        assert again.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
        stamped = {
            e["id"]: datetime.fromisoformat(e["timestamp"])
            for e in api.all_events(tenant.owner, tenant.project_id)
        }
        assert abs(stamped["now-1"] - far_now) < timedelta(minutes=1)
        assert stamped["earlier"] == far_now - timedelta(days=1)
        assert test_ingest.total(api, tenant) == 3
        default = api.counts(tenant.owner, tenant.project_id)
        assert default.status_code == 200, default.text
        assert default.json()["total"] == 3, "the default window is the last 24 h of the far date"


def test_segment_messages_are_counted_at_a_far_date(
    make_api: ApiFactory, far_now: datetime
) -> None:
    """At a far date, a Segment batch and its resend are counted once by the Segment `total`."""
    with time_machine.travel(far_now, tick=True):
        api = make_api()
        tenant = api.tenant()
        sent = [segment.message("track"), segment.message("identify", timestamp=None)]

        first = segment.send(api, tenant, *sent)
        again = segment.send(api, tenant, *sent)

        assert (first.json()["accepted"], first.json()["duplicates"]) == (2, 0)
        assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 2)
        for event in segment.stored(api, tenant).values():
            assert abs(datetime.fromisoformat(event["timestamp"]) - far_now) < timedelta(minutes=1)
        assert segment.total(api, tenant) == 2


def test_nothing_stored_counts_zero_at_a_far_date(make_api: ApiFactory, far_now: datetime) -> None:
    """With no event stored, both `total` helpers answer 0 rather than a refused query."""
    with time_machine.travel(far_now, tick=True):
        api = make_api()
        tenant = api.tenant()

        assert test_ingest.total(api, tenant) == 0
        assert segment.total(api, tenant) == 0


def test_tokens_and_the_rate_limit_work_at_a_far_date(
    make_api: ApiFactory, far_now: datetime
) -> None:
    """At a far date, a login's token is accepted and the rate limit refuses and then recovers."""
    with time_machine.travel(far_now, tick=False) as traveller:
        api = make_api(
            env={"EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "5", "EVENTCORE_RATE_LIMIT_BURST": "5"}
        )
        tenant = api.tenant()
        login = api.login(tenant.owner.email)
        assert login.status_code == 200, login.text
        projects = api.client.get(
            "/v1/projects", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
        )
        assert projects.status_code == 200, projects.text

        within = api.ingest(tenant, {"events": [{"id": f"in{i}", "type": "t"} for i in range(5)]})
        over = api.ingest(tenant, {"id": "over", "type": "t"})
        assert within.status_code == 202, within.text
        assert_error(over, 429)
        assert over.headers["Retry-After"] == "1"

        traveller.shift(timedelta(seconds=1))
        assert api.ingest(tenant, {"id": "later", "type": "t"}).status_code == 202
        assert test_ingest.total(api, tenant) == 6
