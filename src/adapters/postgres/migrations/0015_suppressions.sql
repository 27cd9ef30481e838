-- Suppressions (eventcore.suppressions): a deletion request with `suppress` also writes, in its
-- own transaction, one row per person it names, at most one in force (lifted_at NULL) per
-- person and project. The ingest refuses those persons' later events (from a per-process cache
-- of each project's rows in force), and the append never stores an event of a person
-- suppressed now, nor one received while a suppression since lifted was in force: it probes
-- this table's primary key for each incoming event that has a person, once the workspace is
-- known to have any row here (one lookup per statement). Lifting sets lifted_at.
ALTER TABLE eventcore.deletions ADD COLUMN suppress boolean NOT NULL DEFAULT false;

CREATE TABLE eventcore.suppressions (
    workspace_id  text COLLATE "C" NOT NULL,
    project_id    text COLLATE "C" NOT NULL,
    user_id       text COLLATE "C" NOT NULL,
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    suppressed_at timestamptz NOT NULL,
    deletion_id   text COLLATE "C" NOT NULL,
    suppressed_by text,
    lifted_at     timestamptz,
    PRIMARY KEY (workspace_id, project_id, user_id, seq)
);
CREATE UNIQUE INDEX suppressions_in_force ON eventcore.suppressions
    (workspace_id, project_id, user_id) WHERE lifted_at IS NULL;

ALTER TABLE eventcore.suppressions ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.suppressions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON eventcore.suppressions
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));

-- DELETE for a workspace deletion only; a lift is an UPDATE of lifted_at.
GRANT SELECT, INSERT, UPDATE, DELETE ON eventcore.suppressions TO :"app_role";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA eventcore TO :"app_role";
