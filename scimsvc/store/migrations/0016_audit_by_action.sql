-- scimsvc: no-transaction
-- The audit log of one action of a tenant, newest first (store/audit.py:SELECT_AUDIT_OF_ACTION): "who
-- turned SCIM off?" without reading every SCIM change of the tenant.
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_log_action ON audit_log (tenant_id, action, id DESC);
-- The audit rows of a request (the provisioning log's outcome, services/provisioning_log.py).
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_log_request ON audit_log (tenant_id, request_id)
    WHERE request_id IS NOT NULL;
