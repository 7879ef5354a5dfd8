-- Portal access after its security review (README.md, For organization admins).

-- A link that signs in on a plain GET: only one the admin API made with `"redirect": true`, for a
-- product's settings page that redirects its admin's browser straight to it. Every other link (console,
-- CLI, emailed, an API link without it) opens a page whose Continue button POSTs, so a mail scanner or a
-- chat unfurler that fetches it uses nothing up.
ALTER TABLE portal_links ADD COLUMN redirect boolean NOT NULL DEFAULT false;

-- A sign-in link asked for by email: the request only writes this row (for any address, registered or
-- not, so its answer takes the same time either way) and wakes the worker, which looks the address up
-- and makes the links and their notices (`services/portal.py:resolve_sign_in_requests`).
CREATE TABLE portal_sign_in_requests (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL CHECK (length(email) <= 320),
    request_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
