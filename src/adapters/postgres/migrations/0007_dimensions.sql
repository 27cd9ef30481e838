-- Declared dimensions (eventcore.dimensions): each project's property paths, each event's values
-- of them kept beside it, and the daily tallies of every value with their persons' sketches.

-- A default that is a constant is kept in the catalog: existing rows are not rewritten (nor are
-- the events' by the nullable column below), so this takes a moment on a table of any size.
ALTER TABLE eventcore.projects ADD COLUMN dimensions text[] NOT NULL DEFAULT '{}';
-- The JSON text of an event's declared values (encode_values of values_of, computed by the
-- store), NULL when its project declared none when it was stored; a rebuild sets them again for
-- the paths declared then. Text, not json: a filter casts it, nothing else parses it.
ALTER TABLE eventcore.events ADD COLUMN dim_values text;

-- One tally per (project, event type or '' for every type, dimension, UTC day, kind, value):
-- kind 0 a value, 1 no value, 2 the rest (value '' for both). Keyed by type, dimension and day
-- before the value: a window's tallies of one dimension are one range of the key, and the values
-- a day already keeps (what bounds the new ones, see the appends) another. An append adds exactly
-- the events it inserted, in its transaction; the sketch is NULL while no event of the tally
-- had a person.
CREATE TABLE eventcore.dims_day (
    workspace_id text COLLATE "C" NOT NULL,
    project_id   text COLLATE "C" NOT NULL,
    event_type   text COLLATE "C" NOT NULL,
    dimension    text COLLATE "C" NOT NULL,
    day          timestamptz NOT NULL,
    kind         smallint NOT NULL,
    value        text COLLATE "C" NOT NULL,
    count        bigint NOT NULL,
    sketch       bytea,
    PRIMARY KEY (workspace_id, project_id, event_type, dimension, day, kind, value)
);
-- The appends keep rewriting the current day's tallies: vacuum after 1 % changed, as users_hour.
ALTER TABLE eventcore.dims_day SET (
    autovacuum_vacuum_scale_factor = 0.01,
    toast.autovacuum_vacuum_scale_factor = 0.01
);

ALTER TABLE eventcore.dims_day ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.dims_day FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON eventcore.dims_day
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
-- For eventcore.workspaces_with_events(), below (see 0003).
CREATE POLICY definer_lookup ON eventcore.dims_day FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');

GRANT SELECT, INSERT, UPDATE, DELETE ON eventcore.dims_day TO :"app_role";

-- A full rebuild also visits the workspaces holding tallies (a workspace with tallies and no
-- events has its tallies replaced by none, as for the counts and the sketches).
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
        ),
        in_dims (workspace_id) AS (
            (SELECT d.workspace_id FROM eventcore.dims_day AS d ORDER BY 1 LIMIT 1)
            UNION ALL
            SELECT (SELECT d.workspace_id FROM eventcore.dims_day AS d
                    WHERE d.workspace_id > w.workspace_id ORDER BY 1 LIMIT 1)
            FROM in_dims AS w WHERE w.workspace_id IS NOT NULL
        )
        SELECT i.workspace_id FROM in_events AS i WHERE i.workspace_id IS NOT NULL
        UNION
        SELECT i.workspace_id FROM in_minutes AS i WHERE i.workspace_id IS NOT NULL
        UNION
        SELECT i.workspace_id FROM in_hours AS i WHERE i.workspace_id IS NOT NULL
        UNION
        SELECT i.workspace_id FROM in_users AS i WHERE i.workspace_id IS NOT NULL
        UNION
        SELECT i.workspace_id FROM in_dims AS i WHERE i.workspace_id IS NOT NULL;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
END
$$;
