-- scimsvc: no-transaction
-- The worker picks a tenant's next batch of users from its oldest pending outbox rows
-- (store/outbox.py:SELECT_TENANT_BATCH). Ordered by id, PostgreSQL could serve that order from the
-- primary key as well as from outbox_unapplied_tenant, and often chose the primary key: it expects the
-- tenant's pending rows spread evenly over the table, while they all sit at its end, after every applied
-- row the retention keeps. Each batch then read the whole applied history (4 ms a batch at 50,000 rows,
-- growing with the outbox). The batch is now chosen by (created_at, id), an order only this index gives,
-- so no plan can walk applied rows to find the pending ones.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_unapplied_tenant_age
    ON outbox (tenant_id, resource_type, created_at, id) WHERE applied_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS outbox_unapplied_tenant;
