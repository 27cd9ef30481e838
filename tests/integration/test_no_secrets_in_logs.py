"""No secret reaches the logs: a full flow at debug level, then the log is searched for each one."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.processes import serve

pytestmark = pytest.mark.integration

PASSWORD = "Tr0ub4dor&3-never-in-a-log"


def test_secrets_used_in_a_full_flow_never_appear_in_the_log(tmp_path: Path) -> None:
    """Passwords, API keys, access tokens and the JWT secret stay out of debug logs."""
    logs = tmp_path / "logs"
    logs.mkdir()
    settings = {"EVENTCORE_LOG_LEVEL": "debug", "EVENTCORE_LOG_FORMAT": "json"}
    with serve(tmp_path, logs, "api", settings) as api:
        signup = api.client.post(
            "/v1/auth/signup",
            json={"email": "secret-keeper@example.com", "password": PASSWORD, "workspace": "Vault"},
        )
        token = signup.json()["access_token"]
        user = {"Authorization": f"Bearer {token}"}
        project_id = api.client.post("/v1/projects", json={"name": "p"}, headers=user).json()["id"]
        created = api.client.post(
            f"/v1/projects/{project_id}/api-keys", json={"name": "k"}, headers=user
        ).json()
        key = created["key"]
        assert (
            api.client.post(
                "/v1/ingest",
                json={"type": "x", "properties": {"card": "4111-1111-1111-1111"}},
                headers={"X-API-Key": key},
            ).status_code
            == 202
        )
        assert (
            api.client.post(
                "/v1/auth/login", json={"email": "secret-keeper@example.com", "password": PASSWORD}
            ).status_code
            == 200
        )
        assert (
            api.client.post(
                "/v1/auth/login",
                json={"email": "secret-keeper@example.com", "password": PASSWORD + "x"},
            ).status_code
            == 401
        )
        assert (
            api.client.get(
                "/v1/analytics/counts", params={"project_id": project_id}, headers=user
            ).status_code
            == 200
        )
        assert api.client.delete(f"/v1/api-keys/{created['id']}", headers=user).status_code == 204
        assert (
            api.client.post(
                "/v1/ingest", json={"type": "x"}, headers={"Authorization": f"Bearer {key}"}
            ).status_code
            == 401
        )
        assert (
            api.client.get(
                "/v1/projects", headers={"Authorization": f"Bearer {token}tampered"}
            ).status_code
            == 401
        )
        assert api.terminate() == 0
        log = api.output()

    jwt_secret = (tmp_path / "eventcore-data" / "jwt-secret").read_text().strip()
    assert log.strip(), "the server wrote no log at all, so this test would prove nothing"
    for name, secret in {
        "password": PASSWORD,
        "API key": key,
        "access token": token,
        "token signature": token.rsplit(".", 1)[1],
        "JWT secret": jwt_secret,
        "event property": "4111-1111-1111-1111",
    }.items():
        assert secret not in log, f"the {name} was written to the log"
