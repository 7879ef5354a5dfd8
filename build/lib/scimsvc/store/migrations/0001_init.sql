-- Tenants, their SCIM tokens, users and the outbox the worker drains.

CREATE TABLE tenants (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scim_enabled      boolean NOT NULL DEFAULT true,
    seats             integer NOT NULL DEFAULT 10 CHECK (seats >= 0),
    flexible_licenses boolean NOT NULL DEFAULT false,
    default_license   text NOT NULL DEFAULT 'free' CHECK (default_license IN ('free', 'free_restricted')),
    fallback_license  text NOT NULL DEFAULT 'free_restricted' CHECK (fallback_license IN ('free_restricted', 'none')),
    allowed_domains   text[] NOT NULL DEFAULT '{}',
    domain_teams      jsonb NOT NULL DEFAULT '{}',
    rate_limit        jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a token is kept; several may be valid at once for rotation.
CREATE TABLE scim_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX scim_tokens_tenant ON scim_tokens (tenant_id);

-- A product user. `resource` is the SCIM representation the IdP asked for (canonical keys, no id/meta);
-- the columns beside it are what filters, uniqueness and paging need indexed.
CREATE TABLE users (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_name          text NOT NULL,
    external_id        text,
    display_name       text,
    active             boolean NOT NULL DEFAULT true,
    scim_linked        boolean NOT NULL DEFAULT true,  -- false after a SCIM DELETE: deactivated, kept
    resource           jsonb NOT NULL,
    version            bigint NOT NULL DEFAULT 1,
    provisioning_state text NOT NULL DEFAULT 'pending'
                       CHECK (provisioning_state IN ('pending', 'provisioned', 'deprovisioned')),
    provisioned_at     timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_tenant_user_name ON users (tenant_id, lower(user_name));
CREATE INDEX users_tenant_user_name_pattern ON users (tenant_id, lower(user_name) text_pattern_ops);
CREATE INDEX users_tenant_external_id ON users (tenant_id, external_id);
CREATE INDEX users_tenant_display_name ON users (tenant_id, lower(display_name));
CREATE INDEX users_tenant_paging ON users (tenant_id, created_at, id) WHERE scim_linked;
CREATE INDEX users_tenant_updated ON users (tenant_id, updated_at);

-- Every SCIM write commits one row here in the same transaction; the worker drains a resource's rows
-- in id order and stamps applied_at.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    resource_type text NOT NULL CHECK (resource_type IN ('user', 'group')),
    resource_id   uuid NOT NULL,
    change        text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}',
    request_id    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    applied_at    timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX outbox_unapplied_resource ON outbox (resource_type, resource_id, id) WHERE applied_at IS NULL;
CREATE INDEX outbox_unapplied_age ON outbox (created_at) WHERE applied_at IS NULL;
CREATE INDEX outbox_tenant ON outbox (tenant_id, id);
