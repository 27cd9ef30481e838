-- The origins whose pages may send with a project's write keys (eventcore.origins); empty, the
-- default: any. Read through the project cache by the write-key routes. The retention run's
-- lookup returns every column of a project, so it is made again with this one.
ALTER TABLE eventcore.projects ADD COLUMN allowed_origins text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(allowed_origins) <= 100);

DROP FUNCTION eventcore.projects_with_retention();

CREATE FUNCTION eventcore.projects_with_retention()
RETURNS TABLE (
    project_id text, workspace_id text, name text, created_at timestamptz, dimensions text[],
    retention_days integer, allowed_origins text[]
)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('eventcore.definer_lookup', 'on', true);
    RETURN QUERY
        SELECT p.project_id, p.workspace_id, p.name, p.created_at, p.dimensions,
               p.retention_days, p.allowed_origins
        FROM eventcore.projects AS p
        WHERE p.retention_days IS NOT NULL
        ORDER BY p.workspace_id, p.project_id;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
END
$$;
REVOKE ALL ON FUNCTION eventcore.projects_with_retention() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventcore.projects_with_retention() TO :"app_role";
