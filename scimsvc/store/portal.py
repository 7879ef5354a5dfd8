"""SQL for portal links (single use, expiring; only their token's hash kept) and the addresses of an
organization's admins."""

from __future__ import annotations

from uuid import UUID

import asyncpg

INSERT_LINK = """
INSERT INTO portal_links (tenant_id, token_hash, email, expires_at)
VALUES ($1, $2, $3, now() + make_interval(mins => $4))
RETURNING id, email, expires_at
"""
# A link that may still be opened (the page before an emailed link's Continue button).
USABLE_LINK = """
SELECT l.id, l.tenant_id, l.email, l.emailed, t.name AS tenant_name
FROM portal_links l JOIN tenants t ON t.id = l.tenant_id
WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now()
"""
# Opening a link uses it up: one statement, so of two requests at once only one gets the row.
USE_LINK = """
UPDATE portal_links SET used_at = now()
WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
RETURNING id, tenant_id, email
"""
# Sign-in links asked for by email: one per organization the address is registered for, unless the
# address already had `$3` in the last hour (then none: the bound holds across organizations).
INSERT_EMAILED_LINKS = """
WITH recent AS (
    SELECT count(*) AS n FROM portal_links
    WHERE emailed AND email = $1 AND created_at > now() - interval '1 hour'
)
INSERT INTO portal_links (tenant_id, email, emailed, expires_at)
SELECT a.tenant_id, a.email, true, now() + make_interval(mins => $2)
FROM org_admins a, recent
WHERE a.email = $1 AND recent.n < $3
RETURNING id, tenant_id, (SELECT name FROM tenants WHERE id = tenant_id) AS tenant_name
"""
INSERT_LINK_NOTICE = """
INSERT INTO notices (tenant_id, to_address, subject, body, request_id, portal_link_id)
VALUES ($1, $2, $3, $4, $5, $6)
"""
# The worker gives an emailed link its token as it sends it (again on a retry: the latest one works).
SET_EMAILED_TOKEN = """
UPDATE portal_links SET token_hash = $2
WHERE id = $1 AND emailed AND used_at IS NULL AND expires_at > now()
"""

SELECT_ADMINS = "SELECT email, created_at FROM org_admins WHERE tenant_id = $1 ORDER BY email LIMIT $2"
# One statement whether or not the address is new: an existing row is returned as it is (a no-op update
# locks it), `added` tells which (xmax is 0 only on a row this statement inserted).
INSERT_ADMIN = """
INSERT INTO org_admins (tenant_id, email) VALUES ($1, $2)
ON CONFLICT (tenant_id, email) DO UPDATE SET email = EXCLUDED.email
RETURNING email, created_at, xmax = 0 AS added
"""
DELETE_ADMIN = "DELETE FROM org_admins WHERE tenant_id = $1 AND email = $2 RETURNING email"


async def create_link(
    conn: asyncpg.Connection, tenant_id: UUID, token_hash: bytes, *, email: str | None, minutes: int
) -> asyncpg.Record:
    """A new link of the tenant: its id, email and expires_at."""
    row = await conn.fetchrow(INSERT_LINK, tenant_id, token_hash, email, minutes)
    assert row is not None
    return row


async def usable_link(pool: asyncpg.Pool, token_hash: bytes) -> asyncpg.Record | None:
    """The link (id, tenant_id, email, emailed, tenant_name) if it may still be opened."""
    return await pool.fetchrow(USABLE_LINK, token_hash)


async def use_link(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    """Use the link up (id, tenant_id, email), or None: unknown, used or expired."""
    return await conn.fetchrow(USE_LINK, token_hash)


async def create_emailed_links(
    conn: asyncpg.Connection, email: str, *, minutes: int, per_hour: int
) -> list[asyncpg.Record]:
    """A link (id, tenant_id, tenant_name) for each organization `email` is registered for, within the
    hourly bound per address."""
    return await conn.fetch(INSERT_EMAILED_LINKS, email, minutes, per_hour)


async def add_link_notice(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    link_id: UUID,
    *,
    to: str,
    subject: str,
    body: str,
    request_id: str | None,
) -> None:
    """The email that carries an emailed link (its body holds the token's placeholder, not the token)."""
    await conn.execute(INSERT_LINK_NOTICE, tenant_id, to, subject, body, request_id, link_id)


async def set_emailed_token(pool: asyncpg.Pool, link_id: UUID, token_hash: bytes) -> bool:
    """Give an emailed link the hash of the token about to be sent; False when the link is used or
    expired (nothing to send)."""
    return await pool.execute(SET_EMAILED_TOKEN, link_id, token_hash) != "UPDATE 0"


async def list_admins(pool: asyncpg.Pool, tenant_id: UUID, *, limit: int) -> list[asyncpg.Record]:
    """The tenant's registered admin addresses (email, created_at), by address."""
    return await pool.fetch(SELECT_ADMINS, tenant_id, limit)


async def add_admin(conn: asyncpg.Connection, tenant_id: UUID, email: str) -> asyncpg.Record:
    """Register an address (lower-cased by the caller): its row (email, created_at) and `added` (False
    when it was registered already)."""
    row = await conn.fetchrow(INSERT_ADMIN, tenant_id, email)
    assert row is not None
    return row


async def remove_admin(conn: asyncpg.Connection, tenant_id: UUID, email: str) -> bool:
    """Remove a registered address; False when it was not registered."""
    return await conn.fetchval(DELETE_ADMIN, tenant_id, email) is not None
