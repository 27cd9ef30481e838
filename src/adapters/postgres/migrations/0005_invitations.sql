-- Invitations: an owner offers a role to an email; whoever holds the token and is signed in as
-- that email accepts it. Tenant data like the rest (row-level security); the token names its
-- workspace, so accepting one looks it up inside that workspace and needs no cross-tenant
-- lookup. Only the token's SHA-256 is kept.
CREATE TABLE eventcore.invitations (
    workspace_id  text COLLATE "C" NOT NULL,
    invitation_id text COLLATE "C" NOT NULL,
    email         text NOT NULL,
    role          text NOT NULL,
    token_hash    text COLLATE "C" NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    accepted_at   timestamptz,
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (workspace_id, invitation_id)
);

ALTER TABLE eventcore.invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventcore.invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON eventcore.invitations
    USING (workspace_id = nullif(current_setting('app.workspace_id', true), ''))
    WITH CHECK (workspace_id = nullif(current_setting('app.workspace_id', true), ''));

GRANT SELECT, INSERT, UPDATE, DELETE ON eventcore.invitations TO :"app_role";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA eventcore TO :"app_role";
