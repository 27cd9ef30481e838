-- Workspace deletion: every row of a workspace goes in one transaction, and its id is kept in
-- deleted_workspaces so that an append of its batches still queued then stores nothing (the
-- workers drop them). The audit log's rows go through a SECURITY DEFINER function, and only
-- those of the workspace the calling transaction is set to: the application role holds no
-- DELETE on the log.
CREATE TABLE eventcore.deleted_workspaces (
    workspace_id text COLLATE "C" PRIMARY KEY,
    deleted_at   timestamptz NOT NULL
);
ALTER TABLE eventcore.deleted_workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.deleted_workspaces FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON eventcore.deleted_workspaces
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
GRANT SELECT, INSERT ON eventcore.deleted_workspaces TO :"app_role";
GRANT DELETE ON eventcore.deletions TO :"app_role";

CREATE FUNCTION eventcore.delete_workspace_audit()
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed bigint;
    workspace text := nullif(current_setting('app.workspace_id', true), '');
BEGIN
    -- Only the workspace the calling transaction is set to (row-level security's setting).
    IF workspace IS NULL THEN
        RETURN 0;
    END IF;
    -- The owner's SELECT and DELETE policies of 0012 hold while this is on.
    PERFORM set_config('eventcore.definer_lookup', 'on', true);
    DELETE FROM eventcore.audit_log WHERE workspace_id = workspace;
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
    RETURN removed;
END
$$;
REVOKE ALL ON FUNCTION eventcore.delete_workspace_audit() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventcore.delete_workspace_audit() TO :"app_role";
