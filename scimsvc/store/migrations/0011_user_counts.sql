-- GET /Users without a filter answers with totalResults = the tenant's SCIM-linked users. Counting
-- 100,000 index entries costs 3-7 ms on every page of an IdP's import pass; these counters make it a
-- lookup of a few rows. Writers add to a shard chosen by their backend, so concurrent POSTs of one
-- tenant don't queue on one counter row; the total is the sum of the tenant's shards.
CREATE TABLE user_counts (
    tenant_id uuid     NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    shard     smallint NOT NULL,
    linked    bigint   NOT NULL,
    PRIMARY KEY (tenant_id, shard)
);

CREATE FUNCTION user_counts_add(tenant uuid, delta bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO user_counts AS c (tenant_id, shard, linked)
    VALUES (tenant, pg_backend_pid() % 16, delta)
    ON CONFLICT (tenant_id, shard) DO UPDATE SET linked = c.linked + excluded.linked
$$;

CREATE FUNCTION users_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM user_counts_add(s.tenant_id, s.n)
    FROM (SELECT tenant_id, count(*) AS n FROM added WHERE scim_linked GROUP BY tenant_id ORDER BY tenant_id) s;
    RETURN NULL;
END $$;

-- Rows deleted because their tenant is being deleted are skipped: the tenant's counters go with it.
CREATE FUNCTION users_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM user_counts_add(s.tenant_id, -s.n)
    FROM (SELECT gone.tenant_id, count(*) AS n FROM gone JOIN tenants t ON t.id = gone.tenant_id
          WHERE gone.scim_linked GROUP BY gone.tenant_id ORDER BY gone.tenant_id) s;
    RETURN NULL;
END $$;

CREATE FUNCTION users_count_relinked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM user_counts_add(NEW.tenant_id, CASE WHEN NEW.scim_linked THEN 1 ELSE -1 END);
    RETURN NULL;
END $$;

CREATE FUNCTION users_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM user_counts;
    RETURN NULL;
END $$;

CREATE TRIGGER users_count_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION users_count_inserted();
CREATE TRIGGER users_count_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION users_count_deleted();
-- Row level so the WHEN clause is checked without a call: only a SCIM DELETE or a re-link runs it.
CREATE TRIGGER users_count_link AFTER UPDATE OF scim_linked ON users
    FOR EACH ROW WHEN (OLD.scim_linked IS DISTINCT FROM NEW.scim_linked)
    EXECUTE FUNCTION users_count_relinked();
CREATE TRIGGER users_count_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION users_count_truncated();

-- CREATE TRIGGER holds a lock that keeps writers out until this migration commits, so the counts
-- taken here and the triggers' later changes add up exactly.
INSERT INTO user_counts (tenant_id, shard, linked)
SELECT tenant_id, 0, count(*) FROM users WHERE scim_linked GROUP BY tenant_id;
