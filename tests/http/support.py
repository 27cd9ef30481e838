"""Helpers for the HTTP tests: the started app with calls in the words of the public contract.

The app is built the way `eventcore serve` builds it (`load_settings` -> `ApiContainer` ->
`create_app`), through the same composition root, with only the password hasher swapped for a
fast fake so that argon2 does not dominate the suites.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from eventcore.adapters.memory import FakePasswordHasher
from eventcore.entrypoints.bootstrap import ApiContainer, resolve
from eventcore.entrypoints.http.app import create_app
from eventcore.entrypoints.settings import Settings, load_settings
from tests.support.postgres import shared_database
from tests.support.redis import REDIS_URL

T = TypeVar("T")

PASSWORD = "correct horse battery staple"
_emails = itertools.count(1)


def unique_email(label: str = "user") -> str:
    return f"{label}{next(_emails)}@example.com"


def refuse_server_errors(response: httpx.Response) -> None:
    """No request in the suite may ever end in a 500: the contract says never a stack trace."""
    if response.status_code >= 500 and response.status_code != 503:
        response.read()
        raise AssertionError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}: {response.text}"
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The answer has ``status`` and the JSON error shape (and ``code`` when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), body
    assert isinstance(error["message"], str), body
    assert error["message"].strip(), body
    if code is not None:
        assert error["code"] == code, body
    return dict(error)


@dataclass
class Account:
    """A signed-in user, acting in one workspace."""

    email: str
    user_id: str
    workspace_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass
class Tenant:
    """A workspace owner with one project and one API key for it."""

    owner: Account
    project_id: str
    key_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return self.owner.headers

    @property
    def key_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


@dataclass
class Api:
    """A started app and its client, with helpers speaking the public HTTP contract."""

    client: TestClient[Any]
    settings: Settings
    container: ApiContainer
    data_dir: Path
    running: bool = True

    def stop(self) -> None:
        """Run the app's shutdown (closing its store), as a stopping server would."""
        if self.running:
            self.running = False
            self.client.__exit__(None, None, None)

    def resolve(self, provider: providers.Provider[T]) -> T:
        """What a provider of the running app's container gives, resolved on the app's loop
        (the gateways are async resources)."""

        value: T = self.client.blocking_portal.call(resolve, provider)
        return value

    def signup(self, email: str | None = None, workspace: str = "Acme") -> Account:
        email = email or unique_email("owner")
        response = self.client.post(
            "/v1/auth/signup", json={"email": email, "password": PASSWORD, "workspace": workspace}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Account(email, body["user_id"], body["workspace_id"], body["access_token"])

    def login(self, email: str, workspace_id: str | None = None) -> httpx.Response:
        payload: dict[str, Any] = {"email": email, "password": PASSWORD}
        if workspace_id is not None:
            payload["workspace_id"] = workspace_id
        return self.client.post("/v1/auth/login", json=payload)

    def create_project(self, account: Account, name: str = "Website") -> str:
        response = self.client.post("/v1/projects", json={"name": name}, headers=account.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def create_key(self, account: Account, project_id: str, name: str = "server") -> dict[str, Any]:
        response = self.client.post(
            f"/v1/projects/{project_id}/api-keys", json={"name": name}, headers=account.headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def tenant(self, workspace: str = "Acme") -> Tenant:
        """A new owner with a project and an API key."""
        owner = self.signup(workspace=workspace)
        project_id = self.create_project(owner)
        key = self.create_key(owner, project_id)
        return Tenant(owner, project_id, key["id"], key["key"])

    def member(self, owner: Account, role: str) -> Account:
        """A new user invited to the owner's workspace with ``role``, who accepts and signs in
        there."""
        user = self.signup(email=unique_email(role), workspace="Their own")
        self.accept(user, self.invite(owner, user.email, role))
        login = self.login(user.email, owner.workspace_id)
        assert login.status_code == 200, login.text
        return Account(user.email, user.user_id, owner.workspace_id, login.json()["access_token"])

    def invite(self, owner: Account, email: str, role: str) -> str:
        """The token of a new invitation of ``email`` to ``role`` in the owner's workspace."""
        response = self.client.post(
            "/v1/members", json={"email": email, "role": role}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def accept(self, user: Account, token: str) -> httpx.Response:
        response = self.client.post(f"/v1/invitations/{token}/accept", headers=user.headers)
        assert response.status_code == 200, response.text
        return response

    def ingest(self, tenant: Tenant, body: Any) -> httpx.Response:
        return self.client.post("/v1/ingest", json=body, headers=tenant.key_headers)

    def events(self, account: Account, project_id: str, **params: Any) -> httpx.Response:
        return self.client.get(
            "/v1/events", params={"project_id": project_id, **params}, headers=account.headers
        )

    def all_events(self, account: Account, project_id: str) -> list[dict[str, Any]]:
        """Every stored event of the project, following the cursor to the end."""
        events: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            response = self.events(account, project_id, **params)
            assert response.status_code == 200, response.text
            page = response.json()
            events.extend(page["events"])
            cursor = page["next_cursor"]
            if not cursor:
                return events

    def counts(self, account: Account, project_id: str, **params: Any) -> httpx.Response:
        return self.client.get(
            "/v1/analytics/counts",
            params={"project_id": project_id, **params},
            headers=account.headers,
        )


ApiFactory = Callable[..., Api]
Configure = Callable[[ApiContainer], None]


def embedded_app(
    data_dir: Path, env: dict[str, str] | None = None, configure: Configure | None = None
) -> tuple[Litestar, Settings, ApiContainer]:
    """The app `eventcore serve` builds on ``data_dir`` (embedded profile unless ``env`` says
    otherwise), with a fast fake password hash function (still behind the production bound on
    concurrent hashes) and without the per-address signup throttle, since every test signs up
    from the one test client's address (tests that check the throttle set
    ``EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS``); ``configure`` may override more providers of
    the container before anything starts."""
    settings = load_settings(
        {
            "EVENTCORE_DATA_DIR": str(data_dir),
            "EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS": "0",
            **(env or {}),
        }
    )
    container = ApiContainer(settings=settings)
    container.hash_function.override(providers.Object(FakePasswordHasher()))
    if configure is not None:
        configure(container)
    return create_app(settings, container=container), settings, container


def start_api(
    data_dir: Path,
    env: dict[str, str] | None = None,
    configure: Configure | None = None,
    *,
    refuse_500: bool = True,
) -> Api:
    """That app started, with a client that refuses any 500 answer on the spot (unless told)."""
    app, settings, container = embedded_app(data_dir, env, configure)
    client: TestClient[Any] = TestClient(app)
    if refuse_500:
        client.event_hooks["response"].append(refuse_server_errors)
    client.__enter__()
    return Api(client, settings, container, data_dir)


@contextmanager
def profile_settings(profile: str) -> Iterator[dict[str, str]]:
    """The settings of a profile: none (embedded), or PostgreSQL and Redis (the distributed
    profile's store and caches; batches committed inline), its Redis keys deleted after."""
    if profile == "embedded":
        yield {}
        return
    prefix = f"ectest-{secrets.token_hex(4)}"
    try:
        yield {
            "EVENTCORE_DATABASE_URL": shared_database(),
            "EVENTCORE_REDIS_URL": REDIS_URL,
            "EVENTCORE_REDIS_PREFIX": prefix,
            "EVENTCORE_JWT_SECRET": secrets.token_urlsafe(40),
        }
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
