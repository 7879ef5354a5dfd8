-- scimsvc: no-transaction
-- The operators' webhook views (store/webhook_deliveries.py) over the pending deliveries only, which stay
-- few while delivered and failed ones pile up until retention: FAILING_ENDPOINTS counts an endpoint's
-- pending deliveries, BACKLOG reads the oldest pending one's age (its first index entry).
CREATE INDEX CONCURRENTLY IF NOT EXISTS webhook_deliveries_pending_endpoint
    ON webhook_deliveries (endpoint_id) WHERE state = 'pending';
CREATE INDEX CONCURRENTLY IF NOT EXISTS webhook_deliveries_pending_age
    ON webhook_deliveries (created_at) WHERE state = 'pending';
