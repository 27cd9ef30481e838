"""Fixtures for the PostgreSQL adapter's own tests: the session database and a store on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from msgspec import Raw
from tests.support.postgres import postgres_dsn, postgres_store

from eventcore.adapters.postgres import PostgresStore
from eventcore.events import Event, IngestBatch
from eventcore.tenancy import ApiKey, Membership, Project, Role, User, Workspace

__all__ = ["postgres_dsn"]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(postgres_dsn: str) -> AsyncIterator[PostgresStore]:
    async with postgres_store(postgres_dsn) as store:
        yield store


@dataclass(frozen=True)
class Tenant:
    """One workspace with a row in every tenant table."""

    user: User
    workspace: Workspace
    project: Project
    key: ApiKey

    @property
    def workspace_id(self) -> str:
        return self.workspace.id


async def seed_tenant(store: PostgresStore, name: str) -> Tenant:
    """Sign-up, project (declaring the dimension ``n``), API key and two events (each with a
    person and a value, so that the workspace has sketch and tally rows too) for workspace
    ``ws-<name>``."""
    user = User(f"user-{name}", f"{name}@example.com", "salt$digest", T0)
    workspace = Workspace(f"ws-{name}", name.title(), T0)
    await store.create_signup(user, workspace, Membership(workspace.id, user.id, Role.OWNER, T0))
    project = Project(f"prj-{name}", workspace.id, "Web", T0, ("n",))
    await store.create_project(project)
    key = ApiKey(f"key-{name}", workspace.id, project.id, "server", "ek_abc", f"hash-{name}", T0)
    await store.create_api_key(key)
    events = [
        Event(f"e{n}", "page_view", T0, Raw(b'{"n": %d}' % n), user_id=f"person-{n}")
        for n in range(2)
    ]
    await store.append([IngestBatch(workspace.id, project.id, T0, events)])
    return Tenant(user, workspace, project, key)


@pytest.fixture
async def two_tenants(store: PostgresStore) -> tuple[Tenant, Tenant]:
    return await seed_tenant(store, "acme"), await seed_tenant(store, "globex")
