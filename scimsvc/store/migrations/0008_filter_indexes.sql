-- Indexes for the filters IdPs send that the earlier ones did not serve (README.md, API surface: Filters).

-- `emails.value eq "x"` (and `emails[value eq "x"]`'s exact EXISTS, narrowed by the compiler): the user's
-- email values, lower-cased, as a jsonb array; `@>` finds a value through this GIN index.
CREATE INDEX users_email_values ON users
    USING gin ((lower(jsonb_path_query_array(resource, '$.emails[*].value')::text)::jsonb) jsonb_path_ops);

-- Incremental group imports: `meta.lastModified gt "..."` on Groups (Users have users_tenant_updated).
CREATE INDEX groups_tenant_updated ON groups (tenant_id, updated_at);
