-- Suppressions (eventcore.suppressions): a deletion request with `suppress` also writes, in its
-- own transaction, one row per person it names. The ingest refuses those persons' later events
-- (from a per-process cache of each project's rows) and the append never stores one: it probes
-- this table's primary key for each incoming event that has a person. Lifting a suppression
-- deletes its row.
ALTER TABLE eventcore.deletions ADD COLUMN suppress boolean NOT NULL DEFAULT false;

CREATE TABLE eventcore.suppressions (
    workspace_id  text COLLATE "C" NOT NULL,
    project_id    text COLLATE "C" NOT NULL,
    user_id       text COLLATE "C" NOT NULL,
    suppressed_at timestamptz NOT NULL,
    deletion_id   text COLLATE "C" NOT NULL,
    suppressed_by text,
    PRIMARY KEY (workspace_id, project_id, user_id)
);

ALTER TABLE eventcore.suppressions ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.suppressions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON eventcore.suppressions
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));

GRANT SELECT, INSERT, DELETE ON eventcore.suppressions TO :"app_role";
