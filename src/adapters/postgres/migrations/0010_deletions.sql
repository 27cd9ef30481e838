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

-- Deletion requests: what to delete (a project and a selector: persons, event ids, a time
-- range; an empty array or a NULL time is no criterion) and how far it has got. A runner finds
-- the open ones of every workspace through open_deletions() (a SECURITY DEFINER lookup, as in
-- 0003) and works on each inside its workspace.
CREATE TABLE eventcore.deletions (
    workspace_id   text COLLATE "C" NOT NULL,
    deletion_id    text COLLATE "C" NOT NULL,
    project_id     text COLLATE "C" NOT NULL,
    user_ids       text[] NOT NULL,
    event_ids      text[] NOT NULL,
    start_time     timestamptz,
    end_time       timestamptz,
    status         text NOT NULL,
    requested_at   timestamptz NOT NULL,
    requested_by   text,
    events_deleted bigint NOT NULL DEFAULT 0,
    completed_at   timestamptz,
    error          text,
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (workspace_id, deletion_id)
);
CREATE INDEX deletions_by_project ON eventcore.deletions (workspace_id, project_id, requested_at);
CREATE INDEX deletions_open ON eventcore.deletions (requested_at) WHERE status IN ('pending', 'running');

ALTER TABLE eventcore.deletions ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.deletions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON eventcore.deletions
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
CREATE POLICY definer_lookup ON eventcore.deletions FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');
GRANT SELECT, INSERT, UPDATE ON eventcore.deletions TO :"app_role";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA eventcore TO :"app_role";

CREATE FUNCTION eventcore.open_deletions()
RETURNS TABLE (workspace_id text, deletion_id text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('eventcore.definer_lookup', 'on', true);
    RETURN QUERY
        SELECT d.workspace_id, d.deletion_id FROM eventcore.deletions AS d
        WHERE d.status IN ('pending', 'running')
        ORDER BY d.requested_at, d.seq;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
END
$$;
REVOKE ALL ON FUNCTION eventcore.open_deletions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventcore.open_deletions() TO :"app_role";
