-- Why a refused request was refused, where the fix is outside the request (scim/errors.py:Reason: a domain
-- not allowed, no team of the group's name, SCIM turned off, ...): the console explains it in the
-- organization's words with the page to fix it on; `detail` keeps what the IdP was told. Nullable, no
-- default: no rewrite of the table.
ALTER TABLE provisioning_log ADD COLUMN reason text;
