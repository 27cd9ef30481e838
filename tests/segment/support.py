"""Helpers for the Segment route tests: messages as the SDKs build them, and the protocol's answers."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.http.support import Api, Tenant

_ids = itertools.count(1)


def message(kind: str = "track", **fields: Any) -> dict[str, Any]:
    """A message shaped as segment-analytics-python sends it; ``fields`` add or replace (None drops)."""
    sent: dict[str, Any] = {
        "type": kind,
        "messageId": f"msg-{next(_ids)}",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "userId": "user-1",
        "anonymousId": None,
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        "integrations": {},
    }
    if kind == "track":
        sent.update(event="Order Completed", properties={"total": 42})
    elif kind == "group":
        sent.update(groupId="acme", traits={"plan": "pro"})
    elif kind == "alias":
        sent.update(previousId="anonymous-1")
    elif kind in ("page", "screen"):
        sent.update(name="Home", category="Docs", properties={"path": "/"})
    elif kind == "identify":
        sent.update(traits={"email": "ada@example.com"})
    sent.update(fields)
    return {k: v for k, v in sent.items() if v is not None}


def batch(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"batch": list(messages), "sentAt": datetime.now(UTC).isoformat(), **fields}


def basic(key: str) -> dict[str, str]:
    """`Authorization: Basic base64("<key>:")`, as rudder-sdk-python sends the write key."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def post(
    api: Api,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    path: str = "/v1/batch",
    compress: bool = False,
) -> httpx.Response:
    """POST a JSON body (any value, or raw bytes) to a Segment route."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if compress:
        content = gzip.compress(content)
        sent["Content-Encoding"] = "gzip"
    return api.client.post(path, content=content, headers=sent)


def send(api: Api, tenant: Tenant, *messages: dict[str, Any], **fields: Any) -> httpx.Response:
    """A batch with the write key in a header, answered 200."""
    response = post(api, batch(*messages, **fields), headers=basic(tenant.api_key))
    assert response.status_code == 200, response.text
    return response


def assert_protocol_error(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The answer has ``status`` and the protocol's error shape: ``code`` and ``message`` on top."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert "error" not in body, body
    assert re.fullmatch(r"[a-z][a-z0-9_]*", body["code"]), body
    assert isinstance(body["message"], str), body
    assert body["message"].strip(), body
    if code is not None:
        assert body["code"] == code, body
    return body


def stored(api: Api, tenant: Tenant) -> dict[str, dict[str, Any]]:
    """Every stored event of the tenant's project, by id."""
    return {e["id"]: e for e in api.all_events(tenant.owner, tenant.project_id)}


def event_days(timestamps: Iterable[str]) -> list[datetime]:
    """The UTC days holding these timestamps, and today (the day the server stamps events on)."""
    moments = [datetime.fromisoformat(text) for text in timestamps] + [datetime.now(UTC)]
    return sorted(
        {m.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) for m in moments}
    )


def total(api: Api, tenant: Tenant) -> int:
    """Every counted event of the project: the day counts of each day its stored events fall on.

    The windows come from the data the test sent (never from a fixed start), so each spans one
    day at any date and never nears the bucket limit.
    """
    counted = 0
    for day in event_days(e["timestamp"] for e in stored(api, tenant).values()):
        response = api.counts(
            tenant.owner,
            tenant.project_id,
            granularity="day",
            start=day.isoformat(),
            end=(day + timedelta(days=1)).isoformat(),
        )
        assert response.status_code == 200, response.text
        counted += int(response.json()["total"])
    return counted


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)
