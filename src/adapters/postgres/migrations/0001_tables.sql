-- The tables, keyed by workspace_id first (Citus-ready, and what row-level security filters on).
-- Identifiers and event types use the "C" collation: byte order is code point order, the order
-- the reference store sorts in, and it is the fastest to compare.
-- There are no foreign keys on purpose: the store port does not promise referential checks (the
-- use cases guarantee them), and a distributed deployment could not enforce them across shards.

CREATE TABLE eventcore.users (
    user_id       text COLLATE "C" PRIMARY KEY,
    email         text COLLATE "C" NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE eventcore.workspaces (
    workspace_id text COLLATE "C" PRIMARY KEY,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL
);

-- seq breaks ties between rows created at the same instant: insertion order, as the reference.
CREATE TABLE eventcore.memberships (
    workspace_id text COLLATE "C" NOT NULL,
    user_id      text COLLATE "C" NOT NULL,
    role         text NOT NULL,
    created_at   timestamptz NOT NULL,
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_by_user ON eventcore.memberships (user_id, created_at, seq);

CREATE TABLE eventcore.projects (
    workspace_id text COLLATE "C" NOT NULL,
    project_id   text COLLATE "C" NOT NULL,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL,
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (workspace_id, project_id)
);

CREATE TABLE eventcore.api_keys (
    workspace_id text COLLATE "C" NOT NULL,
    key_id       text COLLATE "C" NOT NULL,
    project_id   text COLLATE "C" NOT NULL,
    name         text NOT NULL,
    prefix       text NOT NULL,
    key_hash     text COLLATE "C" NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (workspace_id, key_id)
);
CREATE INDEX api_keys_by_project ON eventcore.api_keys (workspace_id, project_id, created_at, seq);

-- The primary key is the idempotency key: ON CONFLICT DO NOTHING against it is exactly-once.
-- seq is the order events arrived in (the tie-breaker for paging); a named sequence because an
-- append draws the numbers itself, in arrival order, before inserting in key order.
CREATE SEQUENCE eventcore.event_seq AS bigint;
CREATE TABLE eventcore.events (
    workspace_id text COLLATE "C" NOT NULL,
    project_id   text COLLATE "C" NOT NULL,
    event_id     text COLLATE "C" NOT NULL,
    seq          bigint NOT NULL DEFAULT nextval('eventcore.event_seq'),
    event_time   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    type         text COLLATE "C" NOT NULL,
    -- json, not jsonb: the client's own text is kept as sent (jsonb would rewrite it, and can
    -- expand a short number like 1e100000 into 100,000 digits).
    properties   json NOT NULL,
    PRIMARY KEY (workspace_id, project_id, event_id)
);
ALTER SEQUENCE eventcore.event_seq OWNED BY eventcore.events.seq;
-- Newest first is a backward scan of these; (event_time, seq) is also the paging cursor.
CREATE INDEX events_newest ON eventcore.events (workspace_id, project_id, event_time, seq);
CREATE INDEX events_newest_by_type
    ON eventcore.events (workspace_id, project_id, type, event_time, seq);

CREATE TABLE eventcore.counts_minute (
    workspace_id text COLLATE "C" NOT NULL,
    project_id   text COLLATE "C" NOT NULL,
    bucket       timestamptz NOT NULL,
    event_type   text COLLATE "C" NOT NULL,
    count        bigint NOT NULL,
    PRIMARY KEY (workspace_id, project_id, bucket, event_type)
);

CREATE TABLE eventcore.counts_hour (
    workspace_id text COLLATE "C" NOT NULL,
    project_id   text COLLATE "C" NOT NULL,
    bucket       timestamptz NOT NULL,
    event_type   text COLLATE "C" NOT NULL,
    count        bigint NOT NULL,
    PRIMARY KEY (workspace_id, project_id, bucket, event_type)
);
