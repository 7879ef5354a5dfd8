-- The waiting rule of round two (product/licenses.py:decide_license): on a tenant without the flexible
-- program, a user who got the fallback only because no seat was free waits for one. Users who fell back
-- under the old rule are not on the waiting list yet: a licensing change for each such tenant, applied by
-- the worker (worker/seats.py:follow_license_rules, in batches), puts them on it in the order they were
-- created and gives them the seats that are free. The sweeper finds these rows. A tenant whose SCIM is off
-- gets its row too: the worker leaves its users alone until SCIM is turned back on, which decides them again.
INSERT INTO outbox (tenant_id, resource_type, resource_id, change, payload, request_id)
SELECT t.id, 'tenant', t.id, 'licensing', jsonb_build_object('flexible_licenses', t.flexible_licenses),
       'migration-0021'
FROM tenants t
WHERE NOT t.flexible_licenses
  AND EXISTS (SELECT 1 FROM users u
              WHERE u.tenant_id = t.id AND u.active AND u.scim_linked AND u.waiting_since IS NULL
                AND u.license IS DISTINCT FROM 'full');
