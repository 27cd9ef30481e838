-- A project's retention of its events in days (eventcore.retention); NULL keeps them for ever.
-- Every append reads it for the projects it writes to (an event already past it is not
-- stored); the retention run finds the projects that have one, in every workspace, through
-- projects_with_retention() (a SECURITY DEFINER lookup, as in 0003 and 0010) and expires each
-- one's events inside its workspace.
ALTER TABLE eventcore.projects ADD COLUMN retention_days integer
    CHECK (retention_days BETWEEN 1 AND 3650);

CREATE POLICY definer_lookup ON eventcore.projects FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');

CREATE FUNCTION eventcore.projects_with_retention()
RETURNS TABLE (
    project_id text, workspace_id text, name text, created_at timestamptz, dimensions text[],
    retention_days integer
)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('eventcore.definer_lookup', 'on', true);
    RETURN QUERY
        SELECT p.project_id, p.workspace_id, p.name, p.created_at, p.dimensions,
               p.retention_days
        FROM eventcore.projects AS p
        WHERE p.retention_days IS NOT NULL
        ORDER BY p.workspace_id, p.project_id;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
END
$$;
REVOKE ALL ON FUNCTION eventcore.projects_with_retention() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventcore.projects_with_retention() TO :"app_role";
