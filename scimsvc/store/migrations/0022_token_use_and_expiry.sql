-- A SCIM token's who, when and until when (README.md, Console: the SCIM panel): who created it
-- (`operator`, `org_admin`, `cli`; NULL for tokens issued before this migration), when an IdP last used it
-- (written in batches by the web front end, at most once a minute per token and process:
-- scimsvc/web/token_cache.py) and an optional expiry, after which it is refused like a revoked one.
ALTER TABLE scim_tokens ADD COLUMN created_by text CHECK (created_by IN ('operator', 'org_admin', 'cli'));
ALTER TABLE scim_tokens ADD COLUMN last_used_at timestamptz;
ALTER TABLE scim_tokens ADD COLUMN expires_at timestamptz;

-- The token cache hears of every change that could alter a lookup (0010_auth_changes_notify.sql), but
-- not of the last-used writes: those would empty every web process's cache once a minute for nothing.
-- A new column the lookup reads must be added to this list.
DROP TRIGGER scim_tokens_auth_changed ON scim_tokens;
CREATE TRIGGER scim_tokens_auth_changed
    AFTER UPDATE OF id, tenant_id, token_hash, revoked_at, expires_at OR DELETE ON scim_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_changed();
