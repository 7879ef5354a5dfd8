-- How many users of a tenant were deleted outright (store/user_admin.py:HARD_DELETE_USER bumps it in the
-- delete's own statement). A checkpointed deep page (store/pages.py) reads it by primary key to tell
-- that rows left the list: the count of `hard_delete` audit rows it used before shrinks when retention
-- drops old ones. A table of its own, so the bump never touches `tenants` (whose auth-change trigger
-- would empty every web process's token cache). Tenants that never deleted a user have no row.
CREATE TABLE user_removals (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    removed bigint NOT NULL
);
