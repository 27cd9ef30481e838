"""The distributed profile end to end: real `serve` and two `worker` processes on real servers."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from tests.support.postgres import fresh_database, require_server
from tests.support.processes import Server, eventually, run_command, serve, worker
from tests.support.rabbitmq import AMQP_URL, delete_queues, require_rabbitmq, unique_names
from tests.support.redis import REDIS_URL, require_redis

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
HOUR = {"start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """Settings for a fresh database, unique queues and a unique Redis prefix; cleaned up after."""
    require_server()
    asyncio.run(require_rabbitmq())
    asyncio.run(require_redis())
    names = unique_names(retry_delays=(0.2, 0.2, 0.2))
    prefix = f"ectest-{secrets.token_hex(4)}"
    with fresh_database(migrated=False) as dsn:
        settings = {
            "EVENTCORE_DATABASE_URL": dsn,
            "EVENTCORE_REDIS_URL": REDIS_URL,
            "EVENTCORE_REDIS_PREFIX": prefix,
            "EVENTCORE_AMQP_URL": AMQP_URL,
            "EVENTCORE_QUEUE_NAME": names.base,
            "EVENTCORE_QUEUE_RETRY_DELAYS": "0.2,0.2,0.2",
            "EVENTCORE_JWT_SECRET": secrets.token_urlsafe(40),
            "EVENTCORE_WORKER_BATCH_WAIT_MS": "20",
            "EVENTCORE_LOG_FORMAT": "json",
        }
        try:
            yield settings, dsn
        finally:
            asyncio.run(delete_queues(names))
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def counts_total(server: Server, token: str, project_id: str, granularity: str = "minute") -> int:
    response = server.client.get(
        "/v1/analytics/counts",
        params={"project_id": project_id, "granularity": granularity, **HOUR},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def all_event_ids(server: Server, token: str, project_id: str) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"project_id": project_id, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = server.client.get(
            "/v1/events", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [event["id"] for event in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def batch(start: int, size: int, event_type: str = "click") -> dict[str, Any]:
    return {
        "events": [
            {
                "id": f"e{n}",
                "type": event_type,
                "timestamp": f"2026-03-01T10:{n % 60:02}:00Z",
                "properties": {"n": n},
            }
            for n in range(start, start + size)
        ]
    }


def test_events_flow_through_queue_and_workers_exactly_once(
    stack: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    """Ingested events are committed by the workers, counted once even when resent, a batch
    that keeps failing goes to the dead-letter queue and comes back with `dlq replay`, and
    `rollup rebuild` repairs drifted counts without leaving a stale cached answer behind."""
    settings, dsn = stack
    logs = tmp_path / "logs"
    logs.mkdir()

    first = run_command(["migrate"], workdir=tmp_path, settings=settings)
    assert first.returncode == 0, first.stderr
    assert "applied migrations" in first.stdout
    again = run_command(["migrate"], workdir=tmp_path, settings=settings)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout

    with (
        serve(tmp_path, logs, "api", settings) as api,
        worker(tmp_path, logs, "worker-1", settings) as worker_1,
        worker(tmp_path, logs, "worker-2", settings) as worker_2,
    ):
        signup = api.client.post(
            "/v1/auth/signup",
            json={"email": "ops@example.com", "password": PASSWORD, "workspace": "Acme"},
        )
        assert signup.status_code == 201, signup.text
        token = signup.json()["access_token"]
        workspace_id = signup.json()["workspace_id"]
        user = {"Authorization": f"Bearer {token}"}
        project_id = api.client.post("/v1/projects", json={"name": "web"}, headers=user).json()[
            "id"
        ]
        key = api.client.post(
            f"/v1/projects/{project_id}/api-keys", json={"name": "k"}, headers=user
        ).json()["key"]
        ingest_headers = {"X-API-Key": key}

        for start in range(0, 1000, 100):
            response = api.client.post("/v1/ingest", json=batch(start, 100), headers=ingest_headers)
            assert response.status_code == 202, response.text
            assert response.json() == {"accepted": 100, "duplicates": 0, "rejected": []}
        eventually(lambda: counts_total(api, token, project_id) == 1000, what="1000 events counted")

        # Resent: whether the fast path catches them or the store does, they count once.
        for start in (0, 500):
            response = api.client.post("/v1/ingest", json=batch(start, 100), headers=ingest_headers)
            assert response.status_code == 202, response.text
        marker = api.client.post("/v1/ingest", json=batch(1000, 1), headers=ingest_headers)
        assert marker.status_code == 202
        eventually(lambda: counts_total(api, token, project_id) == 1001, what="marker counted")
        ids = all_event_ids(api, token, project_id)
        assert len(ids) == len(set(ids)) == 1001

        # A cause that makes every attempt fail: the database refuses one event type.
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute(
                "CREATE FUNCTION eventcore.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN IF NEW.type = 'poison' THEN RAISE EXCEPTION 'poison refused'; END IF;"
                " RETURN NEW; END $$;"
                " CREATE TRIGGER refuse_poison BEFORE INSERT ON eventcore.events"
                " FOR EACH ROW EXECUTE FUNCTION eventcore.refuse_poison()"
            )
        poison = api.client.post(
            "/v1/ingest", json=batch(2000, 3, event_type="poison"), headers=ingest_headers
        )
        assert poison.status_code == 202, poison.text

        def dead_letters() -> list[dict[str, Any]]:
            listed = run_command(["dlq", "list", "--json"], workdir=tmp_path, settings=settings)
            assert listed.returncode == 0, listed.stderr
            return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]

        eventually(lambda: len(dead_letters()) == 1, within=30, what="the batch dead-lettered")
        letter = dead_letters()[0]
        assert letter["events"] == 3
        assert "poison refused" in (letter.get("last_error") or "")
        assert counts_total(api, token, project_id) == 1001

        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute("DROP TRIGGER refuse_poison ON eventcore.events")
        replay = run_command(["dlq", "replay"], workdir=tmp_path, settings=settings)
        assert replay.returncode == 0, replay.stderr
        assert "replayed 1" in replay.stdout
        eventually(lambda: counts_total(api, token, project_id) == 1004, what="replayed batch")
        assert dead_letters() == []

        # Counts that drifted from the raw events (made so here by the owner), and answers
        # cached from them: a rebuild, of every workspace or of one, puts both right at once.
        for granularity, scope in (("hour", []), ("day", ["--workspace", workspace_id])):
            with psycopg.connect(dsn, autocommit=True) as owner:
                owner.execute("UPDATE eventcore.counts_hour SET count = count + 5")
            assert counts_total(api, token, project_id, granularity) > 1004, "no drift to repair"
            rebuilt = run_command(
                ["rollup", "rebuild", *scope], workdir=tmp_path, settings=settings
            )
            assert rebuilt.returncode == 0, rebuilt.stderr
            assert "recounted 1004 events" in rebuilt.stdout
            assert counts_total(api, token, project_id, granularity) == 1004, scope

        ready = api.client.get("/health/ready").json()
        assert ready["checks"] == {"database": "ok", "queue": "ok", "redis": "ok"}
        for process in (worker_1, worker_2, api):
            assert process.terminate() == 0, process.output()
