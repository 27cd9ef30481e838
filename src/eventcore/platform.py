"""The use cases wired together from a set of ports: one object to embed eventcore with."""

from __future__ import annotations

from dataclasses import dataclass

from eventcore.cursors import CursorCodec
from eventcore.defaults import (
    ANALYTICS_CACHE_SECONDS,
    AUDIT_RETENTION_DAYS,
    TOKEN_LIFETIME_SECONDS,
)
from eventcore.events import EventLimits
from eventcore.live import InProcessLive, LiveHub
from eventcore.ports import (
    Admission,
    ApiKeyCache,
    Clock,
    CommittedKeys,
    IngestQueue,
    LivePublisher,
    LiveWatch,
    MembershipCache,
    PasswordHasher,
    ProjectCache,
    QueryCache,
    RateLimiter,
    RequestContext,
    Store,
    TicketStore,
    TokenCodec,
    WorkspaceCaches,
)
from eventcore.usecases.accounts import Accounts, KeyResolver
from eventcore.usecases.analytics import Analytics
from eventcore.usecases.audit import AuditLog
from eventcore.usecases.deletions import Deletions
from eventcore.usecases.ingest import Ingestor, SeparateAdmission, SuppressedPersons
from eventcore.usecases.live import LiveStreams
from eventcore.usecases.maintenance import Maintenance
from eventcore.usecases.processing import BatchProcessor, InlineQueue


@dataclass(frozen=True, slots=True)
class Platform:
    """The use cases, and nothing else: the ports behind them are the composition root's."""

    accounts: Accounts
    keys: KeyResolver
    ingestor: Ingestor
    processor: BatchProcessor
    analytics: Analytics
    maintenance: Maintenance
    audit: AuditLog
    deletions: Deletions
    live: LiveStreams


def build_platform(
    *,
    store: Store,
    hasher: PasswordHasher,
    tokens: TokenCodec,
    clock: Clock,
    key_cache: ApiKeyCache,
    limiter: RateLimiter,
    committed: CommittedKeys,
    query_cache: QueryCache,
    project_cache: ProjectCache,
    queue: IngestQueue | None = None,
    limits: EventLimits | None = None,
    cache_ttl: float = ANALYTICS_CACHE_SECONDS,
    login_limiter: RateLimiter | None = None,
    address_limiter: RateLimiter | None = None,
    account_limiter: RateLimiter | None = None,
    signup_limiter: RateLimiter | None = None,
    admission: Admission | None = None,
    membership_cache: MembershipCache | None = None,
    cursors: CursorCodec | None = None,
    request_context: RequestContext | None = None,
    audit_retention_days: int = AUDIT_RETENTION_DAYS,
    workspace_caches: WorkspaceCaches | None = None,
    tickets: TicketStore,
    live_hub: LiveHub | None = None,
    live_publisher: LivePublisher | None = None,
    live_watch: LiveWatch | None = None,
    session_seconds: float = TOKEN_LIFETIME_SECONDS,
) -> Platform:
    """Wire the use cases. Without a queue, batches are committed as they are published.

    ``login_limiter`` throttles login attempts per account and client address (the pair),
    ``account_limiter`` per account from every address together (a higher ceiling, so that one
    address cannot lock an account's owner out) and ``address_limiter`` per client address;
    ``signup_limiter`` throttles signups per client address. Without them, nothing is
    throttled. ``admission`` asks the rate limit and the
    committed ids of an ingest call together (by default: ``limiter``, then ``committed``).
    ``membership_cache`` bounds how often an access token's membership is read from the store
    (without it, on every request). ``cursors`` seals the event list's cursors: every process of
    a deployment needs the same key (:meth:`CursorCodec.from_secret`); without it the key is
    random and this process's own, so cursors do not survive a restart. ``request_context``
    tells the audit log where the request being served came from (without it, nowhere);
    ``audit_retention_days`` is how long it keeps its entries (0: for ever);
    ``workspace_caches`` removes a deleted workspace's keys from a shared cache.

    The live view serves the subscribers of ``live_hub``: ``live_publisher`` is where this
    process's commits go, ``live_watch`` how the hub hears of the commits of other processes,
    ``tickets`` where stream tickets are kept. By default the hub is fed by this process's own
    commits only, as the embedded profile runs;
    ``session_seconds`` is how long a ticket's stream may last without a token to bound it.
    """
    live_hub = live_hub or LiveHub()
    in_process = InProcessLive(live_hub)
    processor = BatchProcessor(store, committed, query_cache, live_publisher or in_process)
    # One per process, shared: a suppression made or lifted here is seen by this ingestor at once.
    suppressed = SuppressedPersons(store, clock)
    keys = KeyResolver(store, key_cache, project_cache)
    cursors = cursors or CursorCodec.random()
    accounts = Accounts(
        store,
        hasher,
        tokens,
        clock,
        key_cache,
        login_limiter=login_limiter,
        address_limiter=address_limiter,
        account_limiter=account_limiter,
        signup_limiter=signup_limiter,
        membership_cache=membership_cache,
        project_cache=project_cache,
        request_context=request_context,
        workspace_caches=workspace_caches,
    )
    analytics = Analytics(
        store,
        store,
        query_cache,
        project_cache,
        clock,
        cursors,
        cache_ttl,
    )
    return Platform(
        accounts=accounts,
        keys=keys,
        ingestor=Ingestor(
            keys,
            queue or InlineQueue(processor),
            admission or SeparateAdmission(limiter, committed),
            clock,
            limits,
            suppressed,
        ),
        processor=processor,
        analytics=analytics,
        maintenance=Maintenance(store, query_cache, clock, audit_retention_days),
        audit=AuditLog(store, cursors),
        deletions=Deletions(store, query_cache, clock, request_context, suppressed=suppressed),
        live=LiveStreams(
            live_hub,
            live_watch or in_process,
            tickets,
            accounts,
            analytics,
            clock,
            session_seconds=session_seconds,
        ),
    )
