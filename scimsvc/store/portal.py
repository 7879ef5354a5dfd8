"""SQL for portal links (single use, expiring; only their token's hash kept) and the addresses of an
organization's admins."""

from __future__ import annotations

from uuid import UUID

import asyncpg

INSERT_LINK = """
INSERT INTO portal_links (tenant_id, token_hash, email, expires_at, redirect)
VALUES ($1, $2, $3, now() + make_interval(mins => $4), $5)
RETURNING id, email, expires_at
"""
# A link that may still be opened (the page before an emailed link's Continue button).
USABLE_LINK = """
SELECT l.id, l.tenant_id, l.email, l.emailed, l.redirect, t.name AS tenant_name
FROM portal_links l JOIN tenants t ON t.id = l.tenant_id
WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now()
"""
# Opening a link uses it up: one statement, so of two requests at once only one gets the row.
USE_LINK = """
UPDATE portal_links SET used_at = now()
WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
RETURNING id, tenant_id, email, emailed
"""
# A sign-in request (any address): one cheap row, resolved by the worker.
INSERT_SIGN_IN_REQUEST = "INSERT INTO portal_sign_in_requests (email, request_id) VALUES ($1, $2)"
# The worker takes one request at a time (deleted in its transaction: a crash leaves it for the next run).
TAKE_SIGN_IN_REQUEST = """
DELETE FROM portal_sign_in_requests WHERE id = (
    SELECT id FROM portal_sign_in_requests ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING email, request_id
"""
# Requests for one address are counted and inserted one at a time (READ COMMITTED would let two
# transactions each count the same links and both insert): held until the transaction ends.
LOCK_ADDRESS = "SELECT pg_advisory_xact_lock(hashtextextended(lower($1::text), 0))"
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
# Ending access: unused links stop working at once (their expiry is now; retention deletes them later).
RETIRE_TENANT_LINKS = """
UPDATE portal_links SET expires_at = now()
WHERE tenant_id = $1 AND used_at IS NULL AND expires_at > now()
"""
RETIRE_EMAIL_LINKS = """
UPDATE portal_links SET expires_at = now()
WHERE tenant_id = $1 AND email = $2 AND used_at IS NULL AND expires_at > now()
"""
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
    conn: asyncpg.Connection,
    tenant_id: UUID,
    token_hash: bytes,
    *,
    email: str | None,
    minutes: int,
    redirect: bool = False,
) -> asyncpg.Record:
    """A new link of the tenant: its id, email and expires_at (`redirect`: it signs in on a GET)."""
    row = await conn.fetchrow(INSERT_LINK, tenant_id, token_hash, email, minutes, redirect)
    assert row is not None
    return row


async def usable_link(pool: asyncpg.Pool, token_hash: bytes) -> asyncpg.Record | None:
    """The link (id, tenant_id, email, emailed, redirect, tenant_name) if it may still be opened."""
    return await pool.fetchrow(USABLE_LINK, token_hash)


async def use_link(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    """Use the link up (id, tenant_id, email, emailed), or None: unknown, used or expired."""
    return await conn.fetchrow(USE_LINK, token_hash)


async def add_sign_in_request(pool: asyncpg.Pool, email: str, *, request_id: str | None) -> None:
    """Record that someone asked for a sign-in link for `email` (registered or not)."""
    await pool.execute(INSERT_SIGN_IN_REQUEST, email, request_id)


async def take_sign_in_request(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The oldest sign-in request (email, request_id) no other transaction holds, deleted in the caller's
    transaction; None when there is none."""
    return await conn.fetchrow(TAKE_SIGN_IN_REQUEST)


async def create_emailed_links(
    conn: asyncpg.Connection, email: str, *, minutes: int, per_hour: int
) -> list[asyncpg.Record]:
    """A link (id, tenant_id, tenant_name) for each organization `email` is registered for, within the
    hourly bound per address, which holds under concurrency: the address is locked until the caller's
    transaction ends."""
    await conn.execute(LOCK_ADDRESS, email)
    return await conn.fetch(INSERT_EMAILED_LINKS, email, minutes, per_hour)


async def retire_tenant_links(conn: asyncpg.Connection, tenant_id: UUID) -> int:
    """Make every unused link of the tenant stop working; how many."""
    return int((await conn.execute(RETIRE_TENANT_LINKS, tenant_id)).rsplit(" ", 1)[1])


async def retire_email_links(conn: asyncpg.Connection, tenant_id: UUID, email: str) -> int:
    """Make every unused link of the tenant made for `email` stop working; how many."""
    return int((await conn.execute(RETIRE_EMAIL_LINKS, tenant_id, email)).rsplit(" ", 1)[1])


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
