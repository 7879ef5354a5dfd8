-- Tenant-level changes (e.g. seats raised) go through the outbox too, so the worker promotes waiting users.
ALTER TABLE outbox DROP CONSTRAINT outbox_resource_type_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_resource_type_check CHECK (resource_type IN ('user', 'group', 'tenant'));
