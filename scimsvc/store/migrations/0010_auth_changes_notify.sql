-- Web processes cache token → tenant lookups (scimsvc/web/token_cache.py) and must hear of every change that
-- could alter one: a token revoked, deleted or added, a tenant's SCIM switch, allowed domains or rate
-- limit changed, a tenant deleted. A statement trigger notifies on commit, whoever made the change.
CREATE FUNCTION notify_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('scimsvc_auth_changed', '');
    RETURN NULL;
END $$;

CREATE TRIGGER scim_tokens_auth_changed AFTER UPDATE OR DELETE ON scim_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_changed();
CREATE TRIGGER tenants_auth_changed AFTER UPDATE OR DELETE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_changed();
