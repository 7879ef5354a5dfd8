-- scimsvc: no-transaction
-- A replay of a time range to a tenant's webhook endpoint (store/webhook_endpoints.py:REPLAY_RANGE) reads
-- that tenant's events of the range, not every tenant's: one more B-tree entry per event written.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_tenant_age ON events (tenant_id, occurred_at);
