-- Row-level security: the second tenant wall, under the WHERE workspace_id = ... of every query.
--
-- A transaction sees and writes only the rows of the workspace it named with
-- set_config('app.workspace_id', <id>, true); unset (or empty) matches nothing. FORCE makes the
-- tables' owner obey the policies too; superusers and BYPASSRLS roles still bypass them, which
-- is why the application works as a role that is neither.

ALTER TABLE eventcore.workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.workspaces FORCE ROW LEVEL SECURITY;
ALTER TABLE eventcore.memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.memberships FORCE ROW LEVEL SECURITY;
ALTER TABLE eventcore.projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.projects FORCE ROW LEVEL SECURITY;
ALTER TABLE eventcore.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.api_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE eventcore.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.events FORCE ROW LEVEL SECURITY;
ALTER TABLE eventcore.counts_minute ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.counts_minute FORCE ROW LEVEL SECURITY;
ALTER TABLE eventcore.counts_hour ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.counts_hour FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON eventcore.workspaces
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
CREATE POLICY tenant_isolation ON eventcore.memberships
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
CREATE POLICY tenant_isolation ON eventcore.projects
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
CREATE POLICY tenant_isolation ON eventcore.api_keys
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
CREATE POLICY tenant_isolation ON eventcore.events
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
CREATE POLICY tenant_isolation ON eventcore.counts_minute
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
CREATE POLICY tenant_isolation ON eventcore.counts_hour
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));

-- Three lookups cross tenants by nature: an API key by its hash (the tenant is what it finds), a
-- user's memberships (login, before a workspace is chosen), and the workspaces holding counted
-- data (a full rebuild). Each is a SECURITY DEFINER function that runs as the owner, answers
-- exactly one question and returns only the rows that answer it; the application may EXECUTE
-- them and nothing more. A policy keyed on a second setting would instead let any statement the
-- application runs widen its own view by setting it.
--
-- A superuser owner bypasses row-level security, but a plain owner (a managed database's admin
-- user) is bound by FORCE. These SELECT-only policies let the owner read across tenants only
-- while eventcore.definer_lookup is 'on', which each function below sets around its one query
-- (a function's own SET clause would be neater, but PostgreSQL 15 allows that for a custom
-- setting to superusers only). They apply to the owner alone: the application role setting it
-- changes nothing for itself. An error inside aborts the (sub)transaction, which undoes the
-- setting too.
CREATE POLICY definer_lookup ON eventcore.api_keys FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');
CREATE POLICY definer_lookup ON eventcore.memberships FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');
CREATE POLICY definer_lookup ON eventcore.events FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');
CREATE POLICY definer_lookup ON eventcore.counts_minute FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');
CREATE POLICY definer_lookup ON eventcore.counts_hour FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');

CREATE FUNCTION eventcore.find_api_key(p_key_hash text)
RETURNS TABLE (
    workspace_id text, key_id text, project_id text, name text, prefix text, key_hash text,
    created_at timestamptz, revoked_at timestamptz
)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('eventcore.definer_lookup', 'on', true);
    RETURN QUERY
        SELECT k.workspace_id, k.key_id, k.project_id, k.name, k.prefix, k.key_hash,
               k.created_at, k.revoked_at
        FROM eventcore.api_keys AS k
        WHERE k.key_hash = p_key_hash;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
END
$$;

CREATE FUNCTION eventcore.memberships_of_user(p_user_id text)
RETURNS TABLE (workspace_id text, user_id text, role text, created_at timestamptz, seq bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('eventcore.definer_lookup', 'on', true);
    RETURN QUERY
        SELECT m.workspace_id, m.user_id, m.role, m.created_at, m.seq
        FROM eventcore.memberships AS m
        WHERE m.user_id = p_user_id;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
END
$$;

-- Distinct workspace ids by skip scan: one index probe per workspace, not a pass over events.
CREATE FUNCTION eventcore.workspaces_with_events()
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
        )
        SELECT i.workspace_id FROM in_events AS i WHERE i.workspace_id IS NOT NULL
        UNION
        SELECT i.workspace_id FROM in_minutes AS i WHERE i.workspace_id IS NOT NULL
        UNION
        SELECT i.workspace_id FROM in_hours AS i WHERE i.workspace_id IS NOT NULL;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
END
$$;

REVOKE ALL ON FUNCTION eventcore.find_api_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventcore.memberships_of_user(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventcore.workspaces_with_events() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventcore.find_api_key(text) TO :"app_role";
GRANT EXECUTE ON FUNCTION eventcore.memberships_of_user(text) TO :"app_role";
GRANT EXECUTE ON FUNCTION eventcore.workspaces_with_events() TO :"app_role";
