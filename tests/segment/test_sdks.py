"""The real Segment and RudderStack Python SDKs, unmodified, sending to a live `eventcore serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient
from segment.analytics.consumer import MAX_MSG_SIZE

from tests.support.processes import Server, serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
EXPECTED_TYPES = {"Order Completed", "identify", "page", "screen", "group", "alias"}
SDKS: dict[str, Callable[..., Any]] = {"segment": SegmentClient, "rudderstack": RudderClient}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `eventcore serve` on the embedded profile for the module; each test has its own tenant
    (signed up from this one address, so the per-address signup throttle is off here)."""
    workdir = tmp_path_factory.mktemp("segment-work")
    logs = tmp_path_factory.mktemp("segment-logs")
    settings = {"EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS": "0"}
    with serve(workdir, logs, "segment-serve", settings) as running:
        yield running


class Project:
    """A new owner's project on the live server, with its write key and the owner's token."""

    def __init__(self, server: Server) -> None:
        self.server = server
        signup = server.client.post(
            "/v1/auth/signup",
            json={
                "email": f"{uuid.uuid4().hex}@example.com",
                "password": PASSWORD,
                "workspace": "W",
            },
        )
        assert signup.status_code == 201, signup.text
        self.headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
        project = server.client.post("/v1/projects", json={"name": "web"}, headers=self.headers)
        assert project.status_code == 201, project.text
        self.id = project.json()["id"]
        key = server.client.post(
            f"/v1/projects/{self.id}/api-keys", json={"name": "sdk"}, headers=self.headers
        )
        assert key.status_code == 201, key.text
        self.write_key: str = key.json()["key"]

    def events(self) -> dict[str, dict[str, Any]]:
        response = self.server.client.get(
            "/v1/events", params={"project_id": self.id, "limit": 1000}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        return {e["id"]: e for e in response.json()["events"]}

    def counts(self) -> dict[str, int]:
        """The counted events by type, over the days the project's stored events fall on.

        One day-long window per day found in the data (and today, when the server stamps what
        it receives), never a fixed start: the query stays far below the bucket limit at any date.
        """
        moments = [datetime.fromisoformat(e["timestamp"]) for e in self.events().values()]
        days = {
            m.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            for m in [*moments, datetime.now(UTC)]
        }
        by_type: dict[str, int] = {}
        for day in sorted(days):
            response = self.server.client.get(
                "/v1/analytics/counts",
                params={
                    "project_id": self.id,
                    "granularity": "day",
                    "start": day.isoformat(),
                    "end": (day + timedelta(days=1)).isoformat(),
                },
                headers=self.headers,
            )
            assert response.status_code == 200, response.text
            for point in response.json()["series"]:
                by_type[point["event_type"]] = by_type.get(point["event_type"], 0) + point["count"]
            assert sum(p["count"] for p in response.json()["series"]) == response.json()["total"]
        return by_type


def url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


def client(sdk: str, project: Project, errors: list[Any], **options: Any) -> Any:
    """An SDK client pointed at the live server; every error it reports lands in ``errors``."""
    return SDKS[sdk](
        project.write_key,
        host=url(project.server),
        on_error=lambda error, items: errors.append((error, items)),
        # Few retries, so that a failure shows up in seconds rather than minutes.
        max_retries=2,
        upload_interval=0.05,
        **options,
    )


def send_each_kind(analytics: Any, ids: dict[str, str]) -> None:
    """One call of each kind, with fixed messageIds so that a resend repeats them."""
    analytics.track(
        user_id="user-42",
        event="Order Completed",
        properties={"order_id": "o-1", "total": 42.5},
        message_id=ids["track"],
    )
    analytics.identify(
        user_id="user-42", traits={"email": "ada@example.com"}, message_id=ids["identify"]
    )
    analytics.page(
        user_id="user-42",
        category="Docs",
        name="Quick start",
        properties={"path": "/docs"},
        message_id=ids["page"],
    )
    analytics.screen(
        anonymous_id="device-7", name="Settings", properties={}, message_id=ids["screen"]
    )
    analytics.group(
        user_id="user-42", group_id="acme", traits={"plan": "pro"}, message_id=ids["group"]
    )
    analytics.alias(previous_id="device-7", user_id="user-42", message_id=ids["alias"])
    analytics.flush()


@pytest.mark.parametrize(
    ("sdk", "options"),
    [
        ("segment", {}),
        ("segment", {"gzip": True}),
        ("rudderstack", {}),  # gzips by default
        ("rudderstack", {"gzip": False}),
    ],
    ids=["segment", "segment-gzip", "rudderstack-gzip", "rudderstack-plain"],
)
def test_an_sdk_sends_every_call_and_a_resend_is_counted_once(
    server: Server, sdk: str, options: dict[str, Any]
) -> None:
    """Track, identify, page, screen, group and alias arrive, are counted, and a resend is not."""
    project = Project(server)
    errors: list[Any] = []
    analytics = client(sdk, project, errors, **options)
    ids = {kind: f"{sdk}-{kind}-{uuid.uuid4()}" for kind in ("track", "identify", "page")}
    ids |= {kind: f"{sdk}-{kind}-{uuid.uuid4()}" for kind in ("screen", "group", "alias")}
    try:
        send_each_kind(analytics, ids)
        first = project.counts()
        send_each_kind(analytics, ids)  # the same messageIds again, as an SDK retry sends them
    finally:
        analytics.join()

    assert errors == []
    assert first == dict.fromkeys(EXPECTED_TYPES, 1)
    assert project.counts() == first
    events = project.events()
    assert set(events) == set(ids.values())
    track = events[ids["track"]]
    assert track["type"] == "Order Completed"
    assert track["properties"]["properties"] == {"order_id": "o-1", "total": 42.5}
    assert track["properties"]["context"]["library"]["name"] == "analytics-python"
    assert events[ids["alias"]]["properties"]["previousId"] == "device-7"
    assert events[ids["group"]]["properties"]["traits"] == {"plan": "pro"}
    assert events[ids["screen"]]["properties"]["anonymousId"] == "device-7"


def test_the_largest_message_the_segment_sdk_sends_is_stored(server: Server) -> None:
    """A message of exactly the SDK's 32 KB limit is accepted and stored whole."""
    project = Project(server)
    errors: list[Any] = []
    fixed = {
        "user_id": "user-42",
        "event": "Large",
        "timestamp": datetime(2026, 1, 10, 12, tzinfo=UTC),
        "message_id": "large-1",
    }
    _, probe = SegmentClient(project.write_key, send=False).track(properties={"blob": ""}, **fixed)
    padding = MAX_MSG_SIZE - len(json.dumps(probe).encode())
    analytics = client("segment", project, errors)
    try:
        _, sent = analytics.track(properties={"blob": "x" * padding}, **fixed)
        analytics.flush()
    finally:
        analytics.join()

    assert len(json.dumps(sent).encode()) == MAX_MSG_SIZE
    assert errors == []
    assert project.events()["large-1"]["properties"]["properties"]["blob"] == "x" * padding


def test_a_wrong_write_key_reaches_the_sdks_error_callback(server: Server) -> None:
    """A 401 is read by the SDK as an API error with eventcore's code, not a crash."""
    project = Project(server)
    project.write_key = "ek_wrong"
    errors: list[Any] = []
    analytics = client("segment", project, errors)
    try:
        analytics.identify(user_id="user-42", traits={})
        analytics.flush()
    finally:
        analytics.join()

    assert len(errors) == 1
    error, items = errors[0]
    assert (error.status, error.code) == (401, "invalid_api_key")
    assert len(items) == 1


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "segment" in b]
    assert len(blocks) == 1, "the README has one Segment SDK snippet"
    return blocks[0]


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_the_readme_snippet_sends_to_eventcore(server: Server, sdk: str) -> None:
    """The README's snippet runs as written (or with RudderStack's import) and its events arrive."""
    project = Project(server)
    snippet = readme_snippet().replace("http://localhost:8000", url(server))
    if sdk == "rudderstack":
        snippet = snippet.replace(
            "from segment.analytics import Client", "from rudderstack.analytics import Client"
        )

    result = subprocess.run(
        [sys.executable, "-c", snippet],
        env={**os.environ, "KEY": project.write_key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "not sent" not in result.stdout, result.stdout
    types = {event["type"] for event in project.events().values()}
    assert types == {"identify", "Order Completed", "page"}
