"""SQL for console sessions kept on the server: started at sign-in, looked up on every signed-in console
request, ended by signing out (or, for an organization's portal sessions, by the operator)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

INSERT_SESSION = """
INSERT INTO console_sessions (id_hash, tenant_id, email, expires_at)
VALUES ($1, $2, $3, to_timestamp($4))
"""
# One statement, by the primary key: the live session's organization and admin address. Its last-seen
# time is written at most once a minute (an UPDATE whose WHERE matches nothing writes nothing).
LIVE_SESSION = """
WITH live AS (
    SELECT tenant_id, email FROM console_sessions
    WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > now()
), seen AS (
    UPDATE console_sessions SET last_seen_at = now()
    WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > now()
      AND last_seen_at < now() - interval '1 minute'
)
SELECT tenant_id, email FROM live
"""
END_SESSION = "UPDATE console_sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL"
END_TENANT_SESSIONS = """
UPDATE console_sessions SET ended_at = now()
WHERE tenant_id = $1 AND ended_at IS NULL AND expires_at > now()
"""
END_EMAIL_SESSIONS = """
UPDATE console_sessions SET ended_at = now()
WHERE tenant_id = $1 AND email = $2 AND ended_at IS NULL AND expires_at > now()
"""
LIVE_TENANT_SESSIONS = """
SELECT email, created_at, expires_at, last_seen_at FROM console_sessions
WHERE tenant_id = $1 AND ended_at IS NULL AND expires_at > now()
ORDER BY created_at DESC
LIMIT $2
"""


async def start_session(
    conn: asyncpg.Connection | asyncpg.Pool,
    id_hash: bytes,
    *,
    tenant_id: UUID | None,
    email: str | None,
    expires: int,
) -> None:
    """Record a new session (`expires`: Unix time, the cookie's own)."""
    await conn.execute(INSERT_SESSION, id_hash, tenant_id, email, float(expires))


async def live_session(pool: asyncpg.Pool, id_hash: bytes) -> asyncpg.Record | None:
    """The session's tenant_id and email while it is live (not ended, not expired), else None."""
    return await pool.fetchrow(LIVE_SESSION, id_hash)


async def end_session(pool: asyncpg.Pool | asyncpg.Connection, id_hash: bytes) -> bool:
    """End one session; False when it was already ended (or never recorded)."""
    return await pool.execute(END_SESSION, id_hash) != "UPDATE 0"


async def end_tenant_sessions(conn: asyncpg.Connection, tenant_id: UUID) -> int:
    """End every live portal session of a tenant; how many."""
    status = await conn.execute(END_TENANT_SESSIONS, tenant_id)
    return int(status.rsplit(" ", 1)[1])


async def end_email_sessions(conn: asyncpg.Connection, tenant_id: UUID, email: str) -> int:
    """End every live portal session of a tenant opened with a link made for `email`; how many."""
    status = await conn.execute(END_EMAIL_SESSIONS, tenant_id, email)
    return int(status.rsplit(" ", 1)[1])


async def live_tenant_sessions(pool: asyncpg.Pool, tenant_id: UUID, *, limit: int) -> list[asyncpg.Record]:
    """A tenant's live portal sessions, newest first: email, created_at, expires_at, last_seen_at."""
    return await pool.fetch(LIVE_TENANT_SESSIONS, tenant_id, limit)
