"""SQL for seats and licenses: the tenant lock that serializes allocation, the waiting list, audit rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

# Holding the tenant row for the whole drain serializes every allocation of the tenant's seats,
# whatever the number of workers: no seat is ever handed out twice. NO KEY UPDATE, not UPDATE: the
# foreign-key checks of concurrent user and outbox inserts (KEY SHARE) must not wait for a drain.
LOCK_TENANT_LICENSING = """
SELECT seats, flexible_licenses, default_license, fallback_license FROM tenants WHERE id = $1
FOR NO KEY UPDATE
"""
COUNT_FULL_EXCEPT = "SELECT count(*) FROM users WHERE tenant_id = $1 AND license = 'full' AND id <> $2"
COUNT_FULL = "SELECT count(*) FROM users WHERE tenant_id = $1 AND license = 'full'"
SELECT_USERS_LICENSING = """
SELECT id, active AND scim_linked AS eligible, resource->>'userType' AS user_type, license, waiting_since
FROM users WHERE tenant_id = $1 AND id = ANY($2::uuid[])
"""
SELECT_OLDEST_WAITING = """
SELECT id, waiting_since FROM users
WHERE tenant_id = $1 AND waiting_since IS NOT NULL AND active AND scim_linked AND id <> ALL($3::uuid[])
ORDER BY waiting_since, id
LIMIT $2
"""
# One statement for a whole batch; joining the waiting list keeps a user's first place in it. Users who
# join in the same batch queue in the order given: a microsecond apart, as the waiting list is ordered by
# waiting_since (then id), and a batch's transaction starts well over its size in microseconds after the
# previous one's.
SET_LICENSES = """
UPDATE users u SET license = v.license,
    waiting_since = CASE WHEN NOT v.waiting THEN NULL
                         ELSE coalesce(u.waiting_since, now() + v.n * interval '1 microsecond') END
FROM unnest($1::uuid[], $2::text[], $3::bool[]) WITH ORDINALITY AS v(id, license, waiting, n)
WHERE u.id = v.id
"""
SET_LICENSE = """
UPDATE users SET license = $2,
    waiting_since = CASE WHEN NOT $3 THEN NULL ELSE coalesce(waiting_since, now()) END
WHERE id = $1
"""
# Waiting users asked for a seat; the oldest get the free ones, in one statement.
PROMOTE_WAITING = """
WITH free AS (
    SELECT greatest($2::int - count(*), 0) AS n FROM users WHERE tenant_id = $1 AND license = 'full'
), picked AS (
    SELECT id FROM users
    WHERE tenant_id = $1 AND waiting_since IS NOT NULL AND active AND scim_linked
      AND id IS DISTINCT FROM $3::uuid
    ORDER BY waiting_since, id
    LIMIT (SELECT n FROM free)
    FOR UPDATE
)
UPDATE users u SET license = 'full', waiting_since = NULL
FROM picked WHERE u.id = picked.id
RETURNING u.id
"""
INSERT_AUDIT = """
INSERT INTO audit_log (tenant_id, user_id, action, actor, detail, request_id)
SELECT $1, unnest($2::uuid[]), $3, $4, $5, $6
"""
INSERT_AUDIT_ROWS = """
INSERT INTO audit_log (tenant_id, user_id, action, actor, detail, request_id)
SELECT $1, v.user_id, v.action, v.actor, v.detail::jsonb, v.request_id
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])
    WITH ORDINALITY AS v(user_id, action, actor, detail, request_id, n)
ORDER BY v.n
"""
LICENSE_SUMMARY = """
SELECT t.seats,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.license = 'full') AS used,
       coalesce((SELECT array_agg(u.id ORDER BY u.waiting_since, u.id) FROM users u
                 WHERE u.tenant_id = t.id AND u.waiting_since IS NOT NULL AND u.active AND u.scim_linked),
                '{}') AS waiting
FROM tenants t WHERE t.id = $1
"""


@dataclass(frozen=True)
class AuditRow:
    """One audit log entry about one user."""

    user_id: UUID
    action: str
    actor: str
    detail: dict[str, Any] | None = None
    request_id: str | None = None


async def lock_tenant_licensing(conn: asyncpg.Connection, tenant_id: UUID) -> asyncpg.Record:
    return await conn.fetchrow(LOCK_TENANT_LICENSING, tenant_id)


async def full_seats_used(conn: asyncpg.Connection, tenant_id: UUID, *, excluding: UUID) -> int:
    return await conn.fetchval(COUNT_FULL_EXCEPT, tenant_id, excluding)


async def full_seats(conn: asyncpg.Connection, tenant_id: UUID) -> int:
    """Full seats held in the tenant; stable while the tenant lock is held."""
    return await conn.fetchval(COUNT_FULL, tenant_id)


async def users_licensing(
    conn: asyncpg.Connection, tenant_id: UUID, user_ids: list[UUID]
) -> list[asyncpg.Record]:
    """Licensing state (id, eligible, user_type, license, waiting_since) of those users of the tenant."""
    return await conn.fetch(SELECT_USERS_LICENSING, tenant_id, user_ids)


async def oldest_waiting(
    conn: asyncpg.Connection, tenant_id: UUID, *, limit: int, excluding: list[UUID]
) -> list[asyncpg.Record]:
    """The `limit` longest-waiting eligible users (id, waiting_since) but `excluding`, oldest first."""
    return await conn.fetch(SELECT_OLDEST_WAITING, tenant_id, limit, excluding)


async def set_licenses(conn: asyncpg.Connection, licensed: list[tuple[UUID, str | None, bool]]) -> None:
    """Record (user id, license, waiting) for many users at once."""
    if licensed:
        ids, kinds, waiting = zip(*licensed, strict=True)
        await conn.execute(SET_LICENSES, list(ids), list(kinds), list(waiting))


async def set_license(conn: asyncpg.Connection, user_id: UUID, license: str | None, *, waiting: bool) -> None:
    """Record the user's license; joining the waiting list keeps the user's first place in it."""
    await conn.execute(SET_LICENSE, user_id, license, waiting)


async def promote_waiting(
    conn: asyncpg.Connection, tenant_id: UUID, seats: int, *, excluding: UUID | None = None
) -> list[UUID]:
    """Give free seats to the oldest waiting users (but `excluding`); returns who got one."""
    rows = await conn.fetch(PROMOTE_WAITING, tenant_id, seats, excluding)
    return [r["id"] for r in rows]


async def audit(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    user_ids: list[UUID],
    action: str,
    *,
    actor: str,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    """One audit row per user, in one statement."""
    if user_ids:
        await conn.execute(INSERT_AUDIT, tenant_id, user_ids, action, actor, detail or {}, request_id)


async def audit_rows(conn: asyncpg.Connection, tenant_id: UUID, rows: list[AuditRow]) -> None:
    """Many audit rows of one tenant in one statement, in the given order."""
    if rows:
        await conn.execute(
            INSERT_AUDIT_ROWS,
            tenant_id,
            [r.user_id for r in rows],
            [r.action for r in rows],
            [r.actor for r in rows],
            [orjson.dumps(r.detail or {}).decode() for r in rows],
            [r.request_id for r in rows],
        )


async def license_summary(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(LICENSE_SUMMARY, tenant_id)


SELECT_USER_IN_TENANT = """
SELECT id, license, active AND scim_linked AS eligible FROM users WHERE tenant_id = $1 AND id = $2 FOR UPDATE
"""
SELECT_AUDIT = """
SELECT id, user_id, action, actor, detail, request_id, created_at
FROM audit_log
WHERE tenant_id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC
LIMIT $4
"""


async def lock_user_in_tenant(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_USER_IN_TENANT, tenant_id, user_id)


async def audit_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    *,
    user_id: UUID | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Audit rows, newest first; page on with `before_id` = the last id seen."""
    return await conn.fetch(SELECT_AUDIT, tenant_id, user_id, before_id, limit)
