-- Persons: an event's user_id and anonymous_id, the hourly sketches of distinct persons kept
-- beside the counts, and the index the funnels read through.

-- Nullable without a default: only the catalog changes, the table is not rewritten. "C" like
-- every identifier here: a funnel reads events ordered by person, in code point order.
ALTER TABLE eventcore.events
    ADD COLUMN user_id      text COLLATE "C",
    ADD COLUMN anonymous_id text COLLATE "C";

-- One HyperLogLog sketch (eventcore.persons) per (project, hour, event type), and per (project,
-- hour) for every type together under event_type '' (no event type is empty). An append adds the
-- persons of exactly the events it inserted, in its transaction; a row exists only for an hour
-- with persons. The empty value is the placeholder an append writes while it makes a row and
-- replaces before it commits: it is never seen outside that transaction.
CREATE TABLE eventcore.users_hour (
    workspace_id text COLLATE "C" NOT NULL,
    project_id   text COLLATE "C" NOT NULL,
    bucket       timestamptz NOT NULL,
    event_type   text COLLATE "C" NOT NULL,
    sketch       bytea NOT NULL,
    PRIMARY KEY (workspace_id, project_id, bucket, event_type)
);
-- The appends keep rewriting the newest hours' sketches (several kB each, in TOAST): vacuum the
-- table after 1 % of it changed, not 20 %, as for the hour counts.
ALTER TABLE eventcore.users_hour SET (
    autovacuum_vacuum_scale_factor = 0.01,
    toast.autovacuum_vacuum_scale_factor = 0.01
);

ALTER TABLE eventcore.users_hour ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.users_hour FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON eventcore.users_hour
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
-- For eventcore.workspaces_with_events(), below (see 0003).
CREATE POLICY definer_lookup ON eventcore.users_hour FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');

GRANT SELECT, INSERT, UPDATE, DELETE ON eventcore.users_hour TO :"app_role";

-- A funnel reads a project's events of a few types over a time range, those with a person,
-- ordered by (person, event_time, seq): this index finds them by (type, event_time) and holds
-- every column the query returns, so that it is an index-only scan (the events are insert-only:
-- their pages are all-visible once vacuumed, see below); the sort by person is the query's.
-- Partial: events without a person (every event stored before this migration, and every event
-- of a client that sends none) are not in it and cost their appends nothing. It is built in the
-- migration's transaction: appends wait while the events table is read once (no row of it
-- qualifies yet, so nothing is sorted or written: 0.6 s for 10 million events, 1.6 GB, cached).
-- Its price is paid by the appends of events with a person: about 8 ms of a 2,000-event
-- append's 48 (4 us an event); a funnel's read of 58,000 events takes 73 ms through it, 81 ms
-- through events_newest_by_type and the heap when every page is cached, far more when not.
CREATE INDEX events_persons_by_type
    ON eventcore.events (workspace_id, project_id, type, event_time)
    INCLUDE (seq, user_id, anonymous_id)
    WHERE user_id IS NOT NULL OR anonymous_id IS NOT NULL;
-- An insert-only table is vacuumed after 20 % of it was inserted by default: the newest fifth of
-- the events would keep visiting the heap. 1 % (autovacuum visits each database at most once a
-- naptime, a minute by default, whatever the rate).
ALTER TABLE eventcore.events SET (autovacuum_vacuum_insert_scale_factor = 0.01);

-- A full rebuild also visits the workspaces holding sketches (a workspace with sketches and
-- neither events nor counts has its sketches replaced by none, as for the counts).
CREATE OR REPLACE FUNCTION eventcore.workspaces_with_events()
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('eventcore.definer_lookup', 'on', true);
    RETURN QUERY
        WITH RECURSIVE
        in_events (workspace_id) AS (
            (SELECT e.workspace_id FROM eventcore.events AS e ORDER BY 1 LIMIT 1)
            UNION ALL
            SELECT (SELECT e.workspace_id FROM eventcore.events AS e
                    WHERE e.workspace_id > w.workspace_id ORDER BY 1 LIMIT 1)
            FROM in_events AS w WHERE w.workspace_id IS NOT NULL
        ),
        in_minutes (workspace_id) AS (
            (SELECT c.workspace_id FROM eventcore.counts_minute AS c ORDER BY 1 LIMIT 1)
            UNION ALL
            SELECT (SELECT c.workspace_id FROM eventcore.counts_minute AS c
                    WHERE c.workspace_id > w.workspace_id ORDER BY 1 LIMIT 1)
            FROM in_minutes AS w WHERE w.workspace_id IS NOT NULL
        ),
        in_hours (workspace_id) AS (
            (SELECT c.workspace_id FROM eventcore.counts_hour AS c ORDER BY 1 LIMIT 1)
            UNION ALL
            SELECT (SELECT c.workspace_id FROM eventcore.counts_hour AS c
                    WHERE c.workspace_id > w.workspace_id ORDER BY 1 LIMIT 1)
            FROM in_hours AS w WHERE w.workspace_id IS NOT NULL
        ),
        in_users (workspace_id) AS (
            (SELECT u.workspace_id FROM eventcore.users_hour AS u ORDER BY 1 LIMIT 1)
            UNION ALL
            SELECT (SELECT u.workspace_id FROM eventcore.users_hour AS u
                    WHERE u.workspace_id > w.workspace_id ORDER BY 1 LIMIT 1)
            FROM in_users AS w WHERE w.workspace_id IS NOT NULL
        )
        SELECT i.workspace_id FROM in_events AS i WHERE i.workspace_id IS NOT NULL
        UNION
        SELECT i.workspace_id FROM in_minutes AS i WHERE i.workspace_id IS NOT NULL
        UNION
        SELECT i.workspace_id FROM in_hours AS i WHERE i.workspace_id IS NOT NULL
        UNION
        SELECT i.workspace_id FROM in_users AS i WHERE i.workspace_id IS NOT NULL;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
END
$$;
