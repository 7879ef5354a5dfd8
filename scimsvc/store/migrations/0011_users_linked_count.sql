-- totalResults of an unfiltered GET /Users counts the tenant's SCIM-linked users. This index holds
-- only the tenant id of each linked user; B-tree deduplication keeps one entry per tenant and page, so
-- an index-only count of 100,000 users reads ~90 pages (3 ms) instead of the paging index's 650 (8 ms).
-- It costs inserts nothing measurable (counters kept by triggers cost 25% of insert throughput).
CREATE INDEX users_tenant_linked ON users (tenant_id) WHERE scim_linked;
