-- Each tenant's SCIM requests per minute: how many were answered, refused with 429, failed with a 5xx.
-- Added to by the provisioning log's writer in the statement that writes its batch
-- (store/provisioning_log.py:INSERT_ENTRIES), read for the admin API's per-organization figures
-- (store/tenant_stats.py): a tenant's last hour is at most 60 rows, the top list reads one row per active
-- tenant and minute however many requests there were. Retention keeps a day of them (store/retention.py).
-- Rows are updated in place many times a minute: room on each page keeps those updates HOT.
CREATE TABLE tenant_request_minutes (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    minute        timestamptz NOT NULL,
    requests      integer NOT NULL,
    rate_limited  integer NOT NULL,
    server_errors integer NOT NULL,
    PRIMARY KEY (tenant_id, minute)
) WITH (fillfactor = 70);
CREATE INDEX tenant_request_minutes_age ON tenant_request_minutes (minute);
