-- The worker drains a tenant's pending user changes in batches, oldest first: this finds them without
-- walking the tenant's already-applied rows.
CREATE INDEX outbox_unapplied_tenant ON outbox (tenant_id, resource_type, id) WHERE applied_at IS NULL;
