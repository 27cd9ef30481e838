-- The schema's version, for the application role: every process checks at start-up (and
-- /health/ready on every call) that the database is at least at the version its code ships, so
-- that a server whose `eventcore migrate` has not run stops with that one line instead of
-- answering 500s on the tables it lacks. The role may not read schema_migrations itself; this
-- SECURITY DEFINER function answers exactly that question.
CREATE FUNCTION eventcore.schema_version()
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT max(version) FROM eventcore.schema_migrations $$;
REVOKE ALL ON FUNCTION eventcore.schema_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventcore.schema_version() TO :"app_role";
