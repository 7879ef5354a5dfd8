-- Retention (scimsvc/store/retention.py) deletes the oldest finished rows in batches; these indexes find
-- them without reading the rows that stay.
-- The outbox and notices ones hold finished rows only: a row gets its entry when it is marked applied or
-- done, an update that writes every index of the row anyway (the column it sets is in another partial
-- index's predicate, so it is never a HOT update); the insert on the SCIM write path pays nothing.
-- Audit rows (the worker's decisions, admin actions, email changes) pay one B-tree entry each at the
-- right edge of the index: about 1 µs a row, a tenth of a bare audit insert.
-- Built in the migration's transaction, they block writes to these tables while they build: about 0.3 s
-- per million rows.
CREATE INDEX outbox_applied_age ON outbox (applied_at) WHERE applied_at IS NOT NULL;
CREATE INDEX notices_done_age ON notices (created_at) WHERE status <> 'pending';
CREATE INDEX audit_log_age ON audit_log (created_at);
