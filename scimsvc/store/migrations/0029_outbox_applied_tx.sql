-- The transaction that applied an outbox row (store/outbox.py:MARK_APPLIED): the provisioning log finds a
-- request's events among those that transaction wrote (store/provisioning_log.py:SELECT_EVENTS_OF_ENTRIES,
-- through events (tenant_id, tx, id)), so `events` needs no index on request ids (dropped by the next
-- migration). Rows applied before keep NULL: their entries show no events. Nullable, no default: adding
-- it rewrites nothing.
ALTER TABLE outbox ADD COLUMN applied_tx xid8;
