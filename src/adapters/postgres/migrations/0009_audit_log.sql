-- The audit log (eventcore.audit): one row per privileged action, written in the transaction of
-- the action. Append-only for the application: its role may INSERT and SELECT (its own
-- workspace's rows, by row-level security like every tenant table) and holds no UPDATE, DELETE
-- or TRUNCATE privilege, so any statement that would alter or remove an entry fails with
-- "permission denied" whatever its WHERE clause. seq is the order of insertion, the tie-breaker
-- of (at, seq), which orders the listing and its cursor.
CREATE TABLE eventcore.audit_log (
    workspace_id   text COLLATE "C" NOT NULL,
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    entry_id       text COLLATE "C" NOT NULL,
    at             timestamptz NOT NULL,
    action         text COLLATE "C" NOT NULL,
    actor_type     text NOT NULL,
    actor_id       text,
    target_type    text,
    target_id      text,
    details        jsonb NOT NULL,
    request_id     text,
    client_address text,
    PRIMARY KEY (workspace_id, seq),
    UNIQUE (workspace_id, entry_id)
);
CREATE INDEX audit_log_newest ON eventcore.audit_log (workspace_id, at, seq);
CREATE INDEX audit_log_by_action ON eventcore.audit_log (workspace_id, action, at, seq);

ALTER TABLE eventcore.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON eventcore.audit_log FOR SELECT
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''));
CREATE POLICY tenant_append ON eventcore.audit_log FOR INSERT
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));

REVOKE ALL ON eventcore.audit_log FROM :"app_role";
GRANT SELECT, INSERT ON eventcore.audit_log TO :"app_role";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA eventcore TO :"app_role";
