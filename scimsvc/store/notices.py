"""SQL for notices: written with the change, claimed with a lease by the worker, every attempt recorded."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from scimsvc.product.notices import Notice

INSERT_NOTICES = """
INSERT INTO notices (tenant_id, user_id, to_address, subject, body, request_id)
SELECT $1, $2, unnest($3::text[]), unnest($4::text[]), unnest($5::text[]), $6
"""
# A claimed notice is hidden for `lease` seconds: a worker that dies mid-send leaves it to be retried
# (at-least-once), and two workers never send it at the same time.
CLAIM_DUE = """
UPDATE notices n SET attempts = n.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
WHERE n.id IN (
    SELECT id FROM notices WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
)
RETURNING n.id, n.to_address, n.subject, n.body, n.attempts, n.portal_link_id
"""
RECORD_ATTEMPT = "INSERT INTO notice_attempts (notice_id, outcome, error) VALUES ($1, $2, $3)"
MARK_SENT = "UPDATE notices SET status = 'sent', sent_at = now() WHERE id = $1"
MARK_NOT_SENT = "UPDATE notices SET status = 'not_sent' WHERE id = $1"
RETRY_LATER = """
UPDATE notices SET status = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'pending' END,
                   next_attempt_at = now() + make_interval(secs => $2)
WHERE id = $1
"""


async def add_notices(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, notices: list[Notice], *, request_id: str | None
) -> None:
    """Write notices in the caller's transaction (one statement)."""
    await conn.execute(
        INSERT_NOTICES,
        tenant_id,
        user_id,
        [n.to_address for n in notices],
        [n.subject for n in notices],
        [n.body for n in notices],
        request_id,
    )


async def claim_due(pool: asyncpg.Pool, *, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    return await pool.fetch(CLAIM_DUE, limit, float(lease_seconds))


async def record_sent(pool: asyncpg.Pool, notice_id: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(RECORD_ATTEMPT, notice_id, "sent", None)
        await conn.execute(MARK_SENT, notice_id)


async def record_not_sent(pool: asyncpg.Pool, notice_id: int, reason: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(RECORD_ATTEMPT, notice_id, "not_sent", reason)
        await conn.execute(MARK_NOT_SENT, notice_id)


async def record_error(
    pool: asyncpg.Pool, notice_id: int, error: str, *, retry_in_seconds: float, max_attempts: int
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(RECORD_ATTEMPT, notice_id, "error", error[:2000])
        await conn.execute(RETRY_LATER, notice_id, float(retry_in_seconds), max_attempts)


# A user's notices, newest first, with the last attempt's error (notices_user, notice_attempts_notice).
SELECT_NOTICES_OF_USER = """
SELECT n.id, n.to_address, n.subject, n.status, n.attempts, n.created_at, n.sent_at, n.next_attempt_at,
       a.error AS last_error
FROM notices n
LEFT JOIN LATERAL (
    SELECT error FROM notice_attempts WHERE notice_id = n.id ORDER BY id DESC LIMIT 1
) a ON true
WHERE n.tenant_id = $1 AND n.user_id = $2
ORDER BY n.id DESC
LIMIT $3
"""


async def notices_of_user(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, user_id: UUID, *, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` of the user's notices, newest first: address, subject, delivery status, attempts."""
    return await conn.fetch(SELECT_NOTICES_OF_USER, tenant_id, user_id, limit)
