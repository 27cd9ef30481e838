-- Deleted events' ids (eventcore.deletions): a deletion removes an event from eventcore.events
-- and keeps its id here, nothing else of it. An append checks both tables, so a resend or a
-- redelivery of a deleted id is a duplicate and is never stored again.
CREATE TABLE eventcore.deleted_events (
    workspace_id text COLLATE "C" NOT NULL,
    project_id   text COLLATE "C" NOT NULL,
    event_id     text COLLATE "C" NOT NULL,
    deleted_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, project_id, event_id)
);

ALTER TABLE eventcore.deleted_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.deleted_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON eventcore.deleted_events
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));

GRANT SELECT, INSERT, UPDATE, DELETE ON eventcore.deleted_events TO :"app_role";
