"""The one wiring every unit test uses: `build_platform` with the in-memory adapters and a manual clock.

Tests never assemble use cases by hand: like production, they go through the composition function,
swapping only the adapter a test is about (a queue that holds batches, a rate limiter, a counting
store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from eventcore import (
    Accounts,
    Analytics,
    BatchProcessor,
    EventLimits,
    Ingestor,
    Platform,
    ProjectRef,
    build_platform,
)
from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory import (
    FakePasswordHasher,
    MemoryCommittedKeys,
    MemoryKeyCache,
    MemoryProjectCache,
    MemoryQueryCache,
    MemoryQueue,
    MemoryRateLimiter,
    MemoryStore,
    MemoryTicketStore,
    UnlimitedRateLimiter,
)
from eventcore.adapters.security import JwtCodec
from eventcore.events import StoredEvent
from eventcore.ports import IngestQueue, PasswordHasher, RateLimiter, Store
from eventcore.tenancy import ApiKey, Principal, Project, Role

# An instant inside a bucket at every grain, so that window normalisation has something to do.
NOW = datetime(2026, 1, 10, 12, 34, 56, tzinfo=UTC)
JWT_SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery staple"


@dataclass
class Tenant:
    """A workspace owner with one project and one API key for it."""

    email: str
    principal: Principal
    token: str
    project: Project
    key: ApiKey
    api_key: str

    @property
    def workspace_id(self) -> str:
        return self.principal.workspace_id

    @property
    def project_id(self) -> str:
        return self.project.id

    @property
    def ref(self) -> ProjectRef:
        return ProjectRef(self.workspace_id, self.project_id)


@dataclass
class App:
    """The platform under test plus handles on the adapters it was built with."""

    platform: Platform
    memory: MemoryStore
    clock: ManualClock
    tokens: JwtCodec
    key_cache: MemoryKeyCache
    committed: MemoryCommittedKeys
    query_cache: MemoryQueryCache
    limiter: RateLimiter
    queue: IngestQueue | None
    _signups: int = field(default=0)

    @property
    def accounts(self) -> Accounts:
        return self.platform.accounts

    @property
    def analytics(self) -> Analytics:
        return self.platform.analytics

    @property
    def ingestor(self) -> Ingestor:
        return self.platform.ingestor

    @property
    def processor(self) -> BatchProcessor:
        return self.platform.processor

    async def signup(self, email: str | None = None, workspace: str = "Acme") -> Tenant:
        """Sign a new owner up and give the workspace a project and an API key."""
        self._signups += 1
        email = email or f"owner{self._signups}@example.com"
        result = await self.accounts.signup(email, PASSWORD, workspace)
        principal = self.accounts.authenticate(result.access_token)
        project, key, secret = await self.add_project(principal, "Website")
        return Tenant(email, principal, result.access_token, project, key, secret)

    async def add_project(self, principal: Principal, name: str) -> tuple[Project, ApiKey, str]:
        project = await self.accounts.create_project(principal, name)
        issued = await self.accounts.create_api_key(principal, project.id, f"{name} key")
        return project, issued.record, issued.secret

    async def member(self, owner: Tenant, role: Role, email: str | None = None) -> Principal:
        """A new user added to the owner's workspace with ``role``, signed in there."""
        self._signups += 1
        email = email or f"member{self._signups}@example.com"
        signed_up = await self.accounts.signup(email, PASSWORD, "Their own")
        invitation = await self.accounts.invite(owner.principal, email, role)
        invitee = self.accounts.authenticate(signed_up.access_token)
        await self.accounts.accept_invitation(invitee, invitation.token)
        token = await self.accounts.login(email, PASSWORD, owner.workspace_id)
        return self.accounts.authenticate(token.access_token)

    def stored(self, ref: ProjectRef) -> list[StoredEvent]:
        """Every event stored for the tenant, read straight from the store's rows."""
        return [
            event
            for event, workspace_id, project_id in self.memory.events.values()
            if (workspace_id, project_id) == (ref.workspace_id, ref.project_id)
        ]


AppFactory = Callable[..., App]


def build_app(
    *,
    store: Store | None = None,
    queue: IngestQueue | None = None,
    limiter: RateLimiter | None = None,
    rate: float | None = None,
    committed: MemoryCommittedKeys | None = None,
    limits: EventLimits | None = None,
    now: datetime = NOW,
    login_limiter: RateLimiter | None = None,
    address_limiter: RateLimiter | None = None,
    account_limiter: RateLimiter | None = None,
    signup_limiter: RateLimiter | None = None,
    hasher: PasswordHasher | None = None,
) -> App:
    """The application over in-memory adapters; pass an adapter to swap it for one test.

    Without ``queue`` the embedded inline queue commits each batch as it is published.
    ``rate`` (events per second per workspace) rate-limits on the app's own manual clock.
    ``store`` may wrap a :class:`MemoryStore` (it must expose it as ``.inner``).
    """
    clock = ManualClock(now)
    if store is None:
        store = MemoryStore(clock)
    memory = store if isinstance(store, MemoryStore) else store.inner  # type: ignore[attr-defined]
    tokens = JwtCodec(JWT_SECRET)
    key_cache = MemoryKeyCache(clock)
    committed = committed if committed is not None else MemoryCommittedKeys()
    query_cache = MemoryQueryCache(clock)
    if limiter is None:
        limiter = MemoryRateLimiter(clock, rate) if rate else UnlimitedRateLimiter()
    platform = build_platform(
        store=store,
        hasher=hasher or FakePasswordHasher(),
        tokens=tokens,
        clock=clock,
        key_cache=key_cache,
        limiter=limiter,
        committed=committed,
        query_cache=query_cache,
        project_cache=MemoryProjectCache(clock),
        queue=queue,
        limits=limits,
        login_limiter=login_limiter,
        address_limiter=address_limiter,
        account_limiter=account_limiter,
        signup_limiter=signup_limiter,
        tickets=MemoryTicketStore(clock),
    )
    return App(platform, memory, clock, tokens, key_cache, committed, query_cache, limiter, queue)


@pytest.fixture(scope="session")
def make_app() -> AppFactory:
    """The factory itself: property tests build a fresh application for every example."""
    return build_app


@pytest.fixture
def app(make_app: AppFactory) -> App:
    return make_app()


@pytest.fixture
def queued_app(make_app: AppFactory) -> App:
    """An application whose queue holds batches until the test processes them."""
    return make_app(queue=MemoryQueue())


@pytest.fixture
async def tenant(app: App) -> Tenant:
    return await app.signup()
