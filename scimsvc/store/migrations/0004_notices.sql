-- Notices to people (e.g. "sign in with your new email"), written with the change, delivered by the worker.
CREATE TABLE notices (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id         uuid,
    to_address      text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'not_sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    request_id      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX notices_due ON notices (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX notices_user ON notices (tenant_id, user_id);

-- Every delivery attempt, whatever its outcome (at-least-once delivery leaves a trail).
CREATE TABLE notice_attempts (
    id        bigserial PRIMARY KEY,
    notice_id bigint NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    outcome   text NOT NULL CHECK (outcome IN ('sent', 'error', 'not_sent')),
    error     text
);
CREATE INDEX notice_attempts_notice ON notice_attempts (notice_id, id);
