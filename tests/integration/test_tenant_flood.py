"""A tenant flooding ingest is limited; another tenant keeps being served.

Latency under a flood is measured by bench/tenant_flood.py, not asserted here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from tests.support.processes import serve

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


async def new_key(client: httpx.AsyncClient, name: str) -> str:
    signup = await client.post(
        "/v1/auth/signup",
        json={"email": f"{name}@example.com", "password": PASSWORD, "workspace": name},
    )
    user = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    project = (await client.post("/v1/projects", json={"name": name}, headers=user)).json()["id"]
    created = await client.post(
        f"/v1/projects/{project}/api-keys", json={"name": "k"}, headers=user
    )
    return str(created.json()["key"])


async def flood_and_steady(base_url: str) -> tuple[dict[int, int], list[int]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        flood_key = await new_key(client, "flood")
        quiet_key = await new_key(client, "quiet")
        flood_statuses: dict[int, int] = {}
        stop = asyncio.Event()
        batch = {"events": [{"type": "flood"} for _ in range(100)]}

        async def flood() -> None:
            while not stop.is_set():
                answer = await client.post(
                    "/v1/ingest", json=batch, headers={"X-API-Key": flood_key}
                )
                flood_statuses[answer.status_code] = flood_statuses.get(answer.status_code, 0) + 1

        flooders = [asyncio.create_task(flood()) for _ in range(8)]
        quiet: list[int] = []
        for n in range(100):
            answer = await client.post(
                "/v1/ingest",
                json={"type": "quiet", "id": f"q{n}"},
                headers={"X-API-Key": quiet_key},
            )
            quiet.append(answer.status_code)
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*flooders)
        return flood_statuses, quiet


def test_a_flooding_tenant_gets_429_while_another_is_served(tmp_path: Path) -> None:
    """With the rate limiter on, the flooder is refused with 429 and the quiet tenant never is."""
    logs = tmp_path / "logs"
    logs.mkdir()
    settings = {"EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "2000", "EVENTCORE_LOG_LEVEL": "warning"}
    with serve(tmp_path, logs, "api", settings) as api:
        flood_statuses, quiet = asyncio.run(flood_and_steady(f"http://127.0.0.1:{api.port}"))
    assert flood_statuses.get(429, 0) > 0, flood_statuses
    assert set(flood_statuses) <= {202, 429}, flood_statuses
    assert quiet == [202] * 100
