-- scimsvc: no-transaction
-- Indexes for deleting a tenant (its portal links and console sessions, every row) and for a link's
-- deletion setting its notices' portal_link_id to NULL (retention deletes links in batches).
CREATE INDEX CONCURRENTLY IF NOT EXISTS notices_portal_link ON notices (portal_link_id)
    WHERE portal_link_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS portal_links_tenant ON portal_links (tenant_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS console_sessions_tenant ON console_sessions (tenant_id);
