-- The worker writes a batch's events (a thousand rows for 500 users) in one statement; the foreign key to
-- tenants checked each row with a lookup of its own (about a fifth of the statement). Every event is
-- written by store/events.py:RECORD_EVENTS, whose same statement upserts the tenant's event_counters
-- row (a foreign key of its own, and a row a tenant's deletion must lock), so the events' foreign key
-- becomes a statement-level trigger that keeps its ON DELETE CASCADE behaviour, as 0007 and 0009 did for
-- group and team members.
ALTER TABLE events DROP CONSTRAINT events_tenant_id_fkey;

CREATE FUNCTION events_forget_tenants() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM events e USING gone WHERE e.tenant_id = gone.id;
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_delete_events AFTER DELETE ON tenants
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION events_forget_tenants();

-- Every index of `events` is written with every event (two a user in a drain), so it keeps only those that
-- are read: the primary key, (tx, id) and (tenant_id, tx, id) for the events API, (tenant_id, request_id)
-- for the provisioning log's outcome. `seq` is unique by construction (the counter row hands each number
-- out once, under its lock); retention reads the oldest events along (tx, id), and a replay of a time
-- range the endpoint's tenant's events along (tenant_id, tx, id).
ALTER TABLE events DROP CONSTRAINT events_tenant_id_seq_key;
DROP INDEX events_age;
