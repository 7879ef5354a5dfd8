-- The transaction that applied an outbox row (store/outbox.py:MARK_APPLIED): the provisioning log finds a
-- request's events among those that transaction wrote (store/provisioning_log.py:SELECT_EVENTS_OF_ENTRIES,
-- through events (tenant_id, tx, id)), so `events` needs no index on request ids (dropped by the next
-- migration). Nullable, no default: adding it rewrites nothing.
ALTER TABLE outbox ADD COLUMN applied_tx xid8;
-- Rows applied before, still kept: the transaction that applied one wrote its request's events with
-- `occurred_at` = the row's `applied_at` (both that transaction's now()), found through events_request,
-- which still exists here. A row whose request wrote no event keeps NULL: its log entry says its events
-- are no longer known (services/provisioning_log.py), as does one whose outbox row retention deleted.
UPDATE outbox o SET applied_tx = m.tx
FROM (
    SELECT DISTINCT ON (o.id) o.id, e.tx
    FROM outbox o
    JOIN events e
        ON e.tenant_id = o.tenant_id AND e.request_id = o.request_id AND e.occurred_at = o.applied_at
    WHERE o.applied_at IS NOT NULL AND o.request_id IS NOT NULL
    ORDER BY o.id, e.id
) m
WHERE o.id = m.id;
