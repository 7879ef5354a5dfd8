-- scimsvc: no-transaction
-- Indexes every write paid for and only a rare read used:
-- - events (tenant_id, request_id), a random key in a growing index written with every event (about a
--   fifth of the statement that writes a batch's events, and of its WAL): the provisioning log finds a
--   request's events through the transactions that applied its outbox rows instead (0029);
-- - provisioning_log (at), written with every logged request: retention deletes the oldest rows along
--   the primary key, the order they were written in (store/retention.py:DELETE_OLD_PROVISIONING_LOG).
DROP INDEX CONCURRENTLY IF EXISTS events_request;
DROP INDEX CONCURRENTLY IF EXISTS provisioning_log_age;
