-- Organization admins (README.md, For organization admins): console sessions kept on the server so that
-- signing out ends them, single-use portal links, and the admins' addresses registered per organization.

-- A console session (the operator's, or an organization admin's portal session with its tenant). The
-- cookie carries a random id; only its sha256 is kept here. A session is live while not ended and not
-- expired; `web/console/access.py` looks it up by its hash on every signed-in console request.
CREATE TABLE console_sessions (
    id_hash      bytea PRIMARY KEY,
    tenant_id    uuid REFERENCES tenants (id) ON DELETE CASCADE,  -- NULL: the operator's
    email        text,  -- the organization admin's address, when the link named one
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_sessions_live_tenant ON console_sessions (tenant_id, created_at)
    WHERE ended_at IS NULL AND tenant_id IS NOT NULL;
CREATE INDEX console_sessions_age ON console_sessions (expires_at);

-- A portal link: opened once, before it expires, it starts a portal session of its tenant. Only the
-- sha256 of its token is kept. An emailed link has no token until the worker sends it: the worker makes
-- the token, keeps its hash here and puts the token in the email only (never in `notices`).
CREATE TABLE portal_links (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash bytea UNIQUE,
    email      text,  -- lower-cased; the admin it was made for, if any
    emailed    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX portal_links_emailed_to ON portal_links (email, created_at) WHERE emailed;
CREATE INDEX portal_links_age ON portal_links (expires_at);

-- The addresses of an organization's admins, lower-cased (unique per organization, case-insensitively):
-- an address registered here may ask for a sign-in link by email.
CREATE TABLE org_admins (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email      text NOT NULL CHECK (email = lower(email) AND length(email) <= 320),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, email)
);
CREATE INDEX org_admins_email ON org_admins (email);

-- A sign-in link's notice names its link; the worker fills the link's token in when it sends it.
ALTER TABLE notices ADD COLUMN portal_link_id uuid REFERENCES portal_links (id) ON DELETE SET NULL;
