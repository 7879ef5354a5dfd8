-- What happened (README.md, What happened): the provisioning log of every SCIM request, events with a
-- per-tenant sequence number, webhook endpoints with their deliveries and attempts, and audit rows about
-- admin and settings actions.

-- Admin and settings actions are audited with no user; webhook endpoints for every tenant (the
-- operator's) with no tenant. Organization admins (the portal) get an actor of their own.
ALTER TABLE audit_log ALTER COLUMN tenant_id DROP NOT NULL;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_check;
-- NOT VALID: the rows there are valid by the narrower check just dropped, and validating would scan the
-- whole audit log while it is locked (its index on request ids is built concurrently by 0016).
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_check
    CHECK (actor IN ('scim', 'admin', 'org_admin', 'worker')) NOT VALID;

-- A token's label says which IdP connection uses it; the token itself is only ever a hash.
ALTER TABLE scim_tokens ADD COLUMN label text NOT NULL DEFAULT '' CHECK (length(label) <= 100);

-- One row per SCIM request of a tenant, accepted or refused, written in batches by the web front end
-- (scimsvc/web/provisioning_log.py). Never a token or a whole body: `summary` is a short readable text.
-- The outcome is read from the outbox rows it wrote (`outbox_ids`) and the events that carry its request id.
CREATE TABLE provisioning_log (
    id            bigserial PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    request_id    text NOT NULL,
    idp           text NOT NULL,
    method        text NOT NULL,
    endpoint      text NOT NULL,
    resource_type text,
    resource_id   uuid,
    user_name     text,
    summary       text NOT NULL,
    status        smallint NOT NULL,
    scim_type     text,
    detail        text,
    duration_ms   real NOT NULL,
    outbox_ids    bigint[] NOT NULL DEFAULT '{}'
);
CREATE INDEX provisioning_log_tenant ON provisioning_log (tenant_id, id DESC);
CREATE INDEX provisioning_log_resource ON provisioning_log (tenant_id, resource_id, id DESC)
    WHERE resource_id IS NOT NULL;
CREATE INDEX provisioning_log_user_name ON provisioning_log (tenant_id, lower(user_name), id DESC)
    WHERE user_name IS NOT NULL;
CREATE INDEX provisioning_log_age ON provisioning_log (at);

-- Events: every applied change, created in the transaction that applies it. `seq` counts a tenant's
-- events without gaps (its counter row is locked until the transaction commits, so a tenant's events
-- commit in `seq` order); `tx` is the writing transaction, so readers can page in (tx, id) order and
-- never skip an event that commits late (store/events.py).
CREATE TABLE event_counters (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    last_seq  bigint NOT NULL
);
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    tx          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    type        text NOT NULL,
    request_id  text,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    data        jsonb NOT NULL,
    UNIQUE (tenant_id, seq)
);
CREATE INDEX events_order ON events (tx, id);
CREATE INDEX events_tenant_order ON events (tenant_id, tx, id);
CREATE INDEX events_request ON events (tenant_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX events_age ON events (occurred_at);

-- Webhook endpoints of a tenant, or of every tenant (tenant_id NULL, the operator's). No secret is
-- stored: an endpoint's signing secret is derived from SCIMSVC_WEBHOOK_SIGNING_KEY, its id and
-- `secret_generation`; after a rotation the previous generation also signs until `previous_until`.
CREATE TABLE webhook_endpoints (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid REFERENCES tenants (id) ON DELETE CASCADE,
    url               text NOT NULL CHECK (length(url) <= 2000),
    description       text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    event_types       text[] NOT NULL DEFAULT '{}',  -- empty: every type
    enabled           boolean NOT NULL DEFAULT true,
    disabled_reason   text,
    failing_since     timestamptz,  -- the first failed attempt since the last success
    secret_generation integer NOT NULL DEFAULT 1,
    previous_until    timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

-- One delivery per (event, endpoint), queued in the statement that writes the event; the worker sends
-- it until it is delivered or given up. A claim moves `next_attempt_at` ahead by a lease, so a worker
-- killed mid-attempt leaves it due again (at least once).
CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    id          bigserial PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    status      integer,  -- the HTTP status; NULL: no answer (refused, timed out, blocked target)
    latency_ms  real NOT NULL,
    excerpt     text NOT NULL DEFAULT ''  -- the start of the answer's body, or what went wrong
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
