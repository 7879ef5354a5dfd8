-- The license each user holds (applied by the worker), the waiting list, and the audit log.

ALTER TABLE users
    ADD COLUMN license text CHECK (license IN ('full', 'free', 'free_restricted')),
    ADD COLUMN waiting_since timestamptz;  -- set while the user waits for a seat (FIFO by this, then id)

CREATE INDEX users_tenant_full ON users (tenant_id) WHERE license = 'full';
CREATE INDEX users_tenant_waiting ON users (tenant_id, waiting_since, id) WHERE waiting_since IS NOT NULL;

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    uuid,
    action     text NOT NULL,
    actor      text NOT NULL CHECK (actor IN ('scim', 'admin', 'worker')),
    detail     jsonb NOT NULL DEFAULT '{}',
    request_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_user ON audit_log (tenant_id, user_id, id DESC);
