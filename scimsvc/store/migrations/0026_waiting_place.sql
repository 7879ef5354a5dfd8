-- scimsvc: no-transaction
-- A waiting user's place on the list (store/licenses.py:SELECT_WAITING_PLACE, the console's user page)
-- counts the users ahead of them: waiting, active and SCIM-linked. users_tenant_waiting (0002) holds every
-- waiting row, so that count read each row from the table to check active and scim_linked (about 20 ms
-- for the last of 50,000); with the condition in the index it is an index-only count.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_tenant_waiting_place ON users (tenant_id, waiting_since, id) WHERE waiting_since IS NOT NULL AND active AND scim_linked;
