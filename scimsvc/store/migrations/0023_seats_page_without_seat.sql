-- scimsvc: no-transaction
-- The seats page's "other active users without a seat" (store/licenses.py:WITHOUT_SEAT_PAGE): a page of
-- them in the order they were created, read from an index that holds only them (on a large organization
-- almost every user holds a seat or waits, and a scan of users_tenant_paging would step over them all).
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_tenant_without_seat ON users (tenant_id, created_at, id) WHERE scim_linked AND active AND waiting_since IS NULL AND license IS DISTINCT FROM 'full';
