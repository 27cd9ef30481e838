-- Unique users answer a window from fewer sketches: each hour's estimate kept beside its sketch,
-- and one sketch per UTC day beside the hours' (eventcore.persons). A 30-day hourly answer then
-- reads 720 estimates and merges 30 day sketches (plus the hours at the window's edges) instead
-- of reading and merging 720 sketches.

-- The estimate of the hour's sketch as the append that wrote it computed it (users, and its
-- relative standard error, 0 where exact). NULL in the rows written before: a reader then
-- estimates from the sketch itself. Nullable without a default: only the catalog changes.
ALTER TABLE eventcore.users_hour
    ADD COLUMN users bigint,
    ADD COLUMN relative_error double precision;

-- One sketch per (project, UTC day, event type), and per (project, day) for every type together
-- under event_type ''. Written from here on by every append in the transaction of its hour
-- sketches; a day stored before has none, and its hours answer for it (a day's first sketch
-- made later starts as the union of its hours', see the appends). The empty value is the
-- placeholder an append writes while it makes a row, as for users_hour.
CREATE TABLE eventcore.users_day (
    workspace_id text COLLATE "C" NOT NULL,
    project_id   text COLLATE "C" NOT NULL,
    day          timestamptz NOT NULL,
    event_type   text COLLATE "C" NOT NULL,
    sketch       bytea NOT NULL,
    PRIMARY KEY (workspace_id, project_id, event_type, day)
);
-- Rewritten by every append of the day, as users_hour's newest hours (0006, 0008).
ALTER TABLE eventcore.users_day SET (
    autovacuum_vacuum_scale_factor = 0.01,
    toast.autovacuum_vacuum_scale_factor = 0.01
);
DO $$
BEGIN
    ALTER TABLE eventcore.users_day ALTER COLUMN sketch SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    ALTER TABLE eventcore.users_day ALTER COLUMN sketch SET STORAGE EXTERNAL;
END
$$;

ALTER TABLE eventcore.users_day ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.users_day FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON eventcore.users_day
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));

GRANT SELECT, INSERT, UPDATE, DELETE ON eventcore.users_day TO :"app_role";
