"""Every default eventcore ships with, defined once.

The settings (``EVENTCORE_*``), the adapters' own defaults, the OpenAPI document and the README's
tables all take their values from here; a test checks that the README says the same.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

# Ingest limits (README, "Limits").
MAX_BATCH_EVENTS: Final = 1000
MAX_EVENT_BYTES: Final = 32 * 1024
MAX_REQUEST_BYTES: Final = 1024 * 1024
# Bounds at the socket (`eventcore serve`): the request line, all headers together, and the time
# from a request's first byte (or a new connection) to its last.
MAX_REQUEST_LINE_BYTES: Final = 8 * 1024
MAX_HEADER_BYTES: Final = 64 * 1024
REQUEST_TIMEOUT_SECONDS: Final = 30.0
MAX_FUTURE: Final = timedelta(hours=24)
MAX_ID_LENGTH: Final = 128
MAX_TYPE_LENGTH: Final = 128
# An event's `user_id` and `anonymous_id` (its person is the first it has).
MAX_PERSON_LENGTH: Final = 128

# Deletion requests: persons and event ids one request may name, the events one transaction
# deletes (each chunk commits with the recount of its days), and how often every API process
# looks for open deletions (one left by a process that stopped, or asked for on another).
MAX_DELETION_USER_IDS: Final = 10_000
MAX_DELETION_EVENT_IDS: Final = 10_000
# A deletion request's body: room for that many ids of the longest length, of both kinds.
MAX_DELETION_REQUEST_BYTES: Final = 4 * 1024 * 1024
DELETION_CHUNK: Final = 5_000
DELETION_SWEEP_SECONDS: Final = 30.0
# Suppressions (a deletion request with `suppress`): the most persons one project may hold
# suppressed (each ingest process keeps a project's whole set in memory, read again every
# SUPPRESSION_CACHE_SECONDS while the project sends events), and how long another process may
# still refuse a lifted person's events, or accept a newly suppressed one's (which the append
# then withholds).
MAX_SUPPRESSIONS: Final = 100_000
SUPPRESSION_CACHE_SECONDS: Final = 1.0

# The audit log keeps its entries this many days (0: for ever); every API process expires the
# older ones this often (and `eventcore retention run` at once).
AUDIT_RETENTION_DAYS: Final = 365
RETENTION_SWEEP_SECONDS: Final = 3600.0
# A project's retention of its events (PATCH /v1/projects/{id} `retention_days`; none: for ever),
# and the events one expiry transaction deletes: small enough that the rows it locks and the
# time it holds them stay short beside ingest's own transactions (bench/README.md, "Retention").
MIN_RETENTION_DAYS: Final = 1
MAX_RETENTION_DAYS: Final = 3650
EXPIRY_CHUNK: Final = 5_000
# After each chunk the run waits this many times as long as the chunk took (the database busy a
# third of the time), so that expiring a million events leaves it (and the disk) room for ingest;
# but never longer than the most, so that on a machine busy enough to slow each chunk down the
# run is not stretched in proportion (1M events stay well under a minute).
EXPIRY_PAUSE: Final = 2.0
EXPIRY_PAUSE_MAX_SECONDS: Final = 0.1

# The most origins a project may allow to send with its write keys (PATCH /v1/projects/{id}
# `allowed_origins`; none: any origin; eventcore.origins).
MAX_ALLOWED_ORIGINS: Final = 100

# Analytics and the event list.
MAX_BUCKETS: Final = 10_000
DEFAULT_WINDOW: Final = timedelta(hours=24)
MAX_PAGE: Final = 1000
DEFAULT_PAGE: Final = 100
# An export reads (and holds) this many events at a time.
EXPORT_PAGE: Final = 2000
ANALYTICS_CACHE_SECONDS: Final = 300.0
# How long an analytics or listing read waits for the read replica to replay what the primary
# had committed when the read began, before it reads the primary instead.
DATABASE_READ_WAIT_SECONDS: Final = 1.0
# Unique users are HyperLogLog sketches (Apache DataSketches, HLL_8) of 2^14 registers, one per
# project, hour and event type: 16 KiB at most each, a standard error of about 0.8 % once a
# window holds more than a few thousand persons, and the exact count below that.
SKETCH_LG_K: Final = 14
# A declared dimension's value keeps its persons in a sketch of 2^12 registers (4 KiB at most,
# a standard error of about 1.6 % past a few hundred persons): an append rewrites the sketch of
# every value it adds persons to, and PostgreSQL's cost of that grows with the sketch's size
# (bench/README.md, "Dimensions").
VALUE_SKETCH_LG_K: Final = 12
# Declared dimensions: paths per project, distinct values kept per dimension, day and event type
# (the rest are counted as `other`), the longest value kept, the longest path; `where` filters
# per query; values per breakdown answer.
MAX_DIMENSIONS: Final = 10
MAX_DIMENSION_VALUES: Final = 100
MAX_DIMENSION_VALUE_LENGTH: Final = 200
MAX_DIMENSION_PATH_LENGTH: Final = 200
MAX_WHERE: Final = 10
# The most stored events one filtered answer or funnel reads (the API holds them while it counts);
# a window holding more is a 400 (window_too_large).
MAX_RAW_EVENTS: Final = 500_000
# The memory PostgreSQL may sort one funnel's events by person in (its work_mem for that query).
FUNNEL_SORT_MEMORY_MB: Final = 32
DEFAULT_BREAKDOWN_LIMIT: Final = 10
MAX_BREAKDOWN_LIMIT: Final = 100
# Funnels: 2 to 10 steps, each within this many seconds of the first at most.
MIN_FUNNEL_STEPS: Final = 2
MAX_FUNNEL_STEPS: Final = 10
MAX_FUNNEL_WINDOW_SECONDS: Final = 90 * 24 * 3600

# Accounts.
MAX_EMAIL_LENGTH: Final = 320
MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 1024
MAX_NAME_LENGTH: Final = 200
# zxcvbn's score (0-4) a password needs: 3 is "safely unguessable" (about 10^8 guesses or more).
MIN_PASSWORD_SCORE: Final = 3
# zxcvbn reads at most this many characters; a longer password is scored on its start.
PASSWORD_SCORED_CHARACTERS: Final = 72

# Access.
TOKEN_LIFETIME_SECONDS: Final = 3600
# How long a key lookup may be served from a cache: the bound on a revocation taking effect.
API_KEY_CACHE_SECONDS: Final = 1.0
# How long a project is taken to exist without asking the store: the bound on a deleted
# project still being answered for.
PROJECT_CACHE_SECONDS: Final = 1.0
# An invitation can be accepted for this long.
INVITATION_SECONDS: Final = 7 * 24 * 3600
# A removed or demoted member keeps the old rights at most this long on other processes.
MEMBERSHIP_CACHE_SECONDS: Final = 1.0
RATE_LIMIT_EVENTS_PER_SECOND: Final = 10_000.0
# Per account and client address: what one address may try against one account.
LOGIN_ATTEMPTS_PER_MINUTE: Final = 10.0
# Per account from every address together: higher, so that one address cannot lock the owner out.
LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT: Final = 100.0
LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS: Final = 60.0
SIGNUPS_PER_HOUR_PER_ADDRESS: Final = 10.0
# Signups one address may make in a row before the hourly rate applies.
SIGNUP_BURST: Final = 5.0
# Password hashes (argon2) computed at once per process, and callers that may wait for one;
# past that the answer is 503 `busy` with Retry-After, so a flood of logins cannot take every
# core and thread from ingestion.
PASSWORD_HASH_CONCURRENCY: Final = 2
PASSWORD_HASH_WAITING: Final = 32

# The queue and its workers (distributed profile).
QUEUE_NAME: Final = "eventcore.ingest"
QUEUE_MAX_LENGTH: Final = 1_000_000
QUEUE_RETRY_DELAYS: Final = (1.0, 5.0, 25.0)
WORKER_BATCH_EVENTS: Final = 2000
WORKER_BATCH_WAIT_MS: Final = 50
WORKER_PREFETCH: Final = 200
DEAD_LETTERS_LISTED: Final = 100

# The shared cache (distributed profile): the prefix of every Redis key.
REDIS_PREFIX: Final = "ec"

# The live view (GET /v1/events/live, Server-Sent Events): open streams per workspace and API
# process (past it 429 `too_many_streams`); events one subscriber's buffer holds (a subscriber
# that falls that far behind loses the next ones and is told how many); the comment line that
# keeps an idle stream open; how often a stream checks that its caller may still read it; how
# long a stream ticket is good for (once).
LIVE_STREAMS_PER_WORKSPACE: Final = 10
LIVE_BUFFER_EVENTS: Final = 1000
LIVE_KEEPALIVE_SECONDS: Final = 15.0
LIVE_RECHECK_SECONDS: Final = 1.0
LIVE_TICKET_SECONDS: Final = 30
# Distributed: an API process with subscribers of a project keeps a marker of it in Redis,
# renewed well within its lifetime; a worker asks for the markers of the projects it commits
# through a cache of this many seconds, and publishes (and asks its append for the inserted
# ids) only for a watched project.
LIVE_WATCH_SECONDS: Final = 30.0
LIVE_WATCH_CACHE_SECONDS: Final = 1.0
