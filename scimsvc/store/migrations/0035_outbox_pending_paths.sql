-- scimsvc: no-transaction
-- Partial indexes of pending outbox rows (WHERE applied_at IS NULL) look empty to PostgreSQL whenever VACUUM
-- last ran on a drained outbox, the usual state: their tuple count, 0, caps the planner's estimate of what
-- they hold, whatever the column's statistics say (0034). For any statement on pending rows every such
-- index looked free: the planner took the smallest, outbox_unapplied_age, for a tenant's next batch, a
-- resource's rows and rows by id alike, or scanned outbox_unapplied_resource whole rather than look up the
-- resources it was given, filtering the pending rows of every tenant each time.
--
-- A resource's and a tenant's pending rows are now found through indexes of every row, led by the keys
-- that find them and then applied_at: the planner weighs them by the whole table and narrows the scan with
-- every key it is given. They replace the partial ones and outbox_tenant (tenant_id, id), whose tenant_id
-- prefix outbox_tenant_pending keeps for the cascade of a tenant's deletion. A row is still written to
-- eight index entries over its life (four when written, four when applied), as before. The oldest pending
-- rows of all keep a partial index, its predicate spelled so that no other statement can use it
-- (store/outbox.py).
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_resource
    ON outbox (resource_type, resource_id, applied_at, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_tenant_pending
    ON outbox (tenant_id, resource_type, applied_at, created_at, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_pending_age
    ON outbox (created_at) WHERE (applied_at IS NULL) IS NOT FALSE;
DROP INDEX CONCURRENTLY IF EXISTS outbox_unapplied_resource;
DROP INDEX CONCURRENTLY IF EXISTS outbox_unapplied_tenant_age;
DROP INDEX CONCURRENTLY IF EXISTS outbox_unapplied_age;
DROP INDEX CONCURRENTLY IF EXISTS outbox_tenant;
