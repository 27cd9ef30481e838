-- The role the application works as: not the owner, not superuser, no BYPASSRLS, NOLOGIN (the
-- store connects as the owner's login and runs SET ROLE). :"app_role" is replaced by the quoted
-- role name, :'app_role' by the quoted literal (by the migration runner, also inside $$).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'app_role') THEN
        CREATE ROLE :"app_role" NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION
    -- Roles are cluster-wide: another database's migration may create it at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- SET ROLE needs membership unless the owner is a superuser.
DO $$
BEGIN
    IF NOT pg_catalog.pg_has_role(current_user, :'app_role', 'MEMBER') THEN
        GRANT :"app_role" TO CURRENT_USER;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA eventcore TO :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON
    eventcore.users,
    eventcore.workspaces,
    eventcore.memberships,
    eventcore.projects,
    eventcore.api_keys,
    eventcore.events,
    eventcore.counts_minute,
    eventcore.counts_hour
TO :"app_role";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA eventcore TO :"app_role";
