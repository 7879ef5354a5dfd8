-- scimsvc: no-transaction
-- The provisioning log's since/until filters (store/provisioning_log.py:SELECT_ID_BOUNDS) find the ids a
-- time range spans through this index (index-only: id is included), then page through
-- (tenant_id, id DESC) as every other page does.
CREATE INDEX CONCURRENTLY IF NOT EXISTS provisioning_log_tenant_at ON provisioning_log (tenant_id, at) INCLUDE (id);
