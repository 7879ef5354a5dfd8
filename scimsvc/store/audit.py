"""SQL for the audit log: who changed which user's license, state or boards, which setting or token, and the
operators' view of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from scimsvc.contract import AuditAction

INSERT_AUDIT = """
INSERT INTO audit_log (tenant_id, user_id, action, actor, detail, request_id)
SELECT $1, unnest($2::uuid[]), $3, $4, $5, $6
"""
INSERT_ACTION = """
INSERT INTO audit_log (tenant_id, user_id, action, actor, detail, request_id) VALUES ($1, $2, $3, $4, $5, $6)
"""
INSERT_AUDIT_ROWS = """
INSERT INTO audit_log (tenant_id, user_id, action, actor, detail, request_id)
SELECT v.tenant_id, v.user_id, v.action, v.actor, v.detail::jsonb, v.request_id
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])
    WITH ORDINALITY AS v(tenant_id, user_id, action, actor, detail, request_id, n)
ORDER BY v.n
"""
SELECT_AUDIT = """
SELECT id, user_id, action, actor, detail, request_id, created_at
FROM audit_log
WHERE tenant_id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC
LIMIT $4
"""
# One action's rows ("who turned SCIM off?") by their own index (0016_audit_by_action.sql), not a
# walk through every SCIM change of the tenant.
SELECT_AUDIT_OF_ACTION = """
SELECT id, user_id, action, actor, detail, request_id, created_at
FROM audit_log
WHERE tenant_id = $1 AND action = $5
  AND ($2::uuid IS NULL OR user_id = $2) AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC
LIMIT $4
"""


@dataclass(frozen=True)
class AuditRow:
    """One audit log entry about one user."""

    user_id: UUID
    action: AuditAction
    actor: str
    detail: dict[str, Any] | None = None
    request_id: str | None = None


async def audit(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    user_ids: list[UUID],
    action: AuditAction,
    *,
    actor: str,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    """One audit row per user, in one statement."""
    if user_ids:
        await conn.execute(INSERT_AUDIT, tenant_id, user_ids, action, actor, detail or {}, request_id)


async def audit_action(
    conn: asyncpg.Connection,
    tenant_id: UUID | None,
    action: AuditAction,
    *,
    actor: str,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
    user_id: UUID | None = None,
) -> None:
    """One audit row about an admin or settings action: of a tenant (None: every tenant, the operator's
    webhook endpoints), about no user unless one is named."""
    await conn.execute(INSERT_ACTION, tenant_id, user_id, action, actor, detail or {}, request_id)


async def audit_rows(conn: asyncpg.Connection, tenant_id: UUID, rows: list[AuditRow]) -> None:
    """Many audit rows of one tenant in one statement, in the given order."""
    await tenants_audit_rows(conn, [(tenant_id, r) for r in rows])


async def tenants_audit_rows(conn: asyncpg.Connection, rows: list[tuple[UUID, AuditRow]]) -> None:
    """Many audit rows, each with its tenant, in one statement, in the given order."""
    if rows:
        await conn.execute(
            INSERT_AUDIT_ROWS,
            [t for t, _ in rows],
            [r.user_id for _, r in rows],
            [r.action for _, r in rows],
            [r.actor for _, r in rows],
            [orjson.dumps(r.detail or {}).decode() for _, r in rows],
            [r.request_id for _, r in rows],
        )


async def audit_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    *,
    user_id: UUID | None,
    before_id: int | None,
    limit: int,
    action: str | None = None,
) -> list[asyncpg.Record]:
    """Audit rows (of one user, one action, when given), newest first; page on with `before_id` = the
    last id seen."""
    if action is None:
        return await conn.fetch(SELECT_AUDIT, tenant_id, user_id, before_id, limit)
    return await conn.fetch(SELECT_AUDIT_OF_ACTION, tenant_id, user_id, before_id, limit, action)


SELECT_OPERATOR_AUDIT = """
SELECT id, user_id, action, actor, detail, request_id, created_at
FROM audit_log
WHERE tenant_id IS NULL AND ($1::bigint IS NULL OR id < $1)
ORDER BY id DESC
LIMIT $2
"""


async def operator_audit_page(
    conn: asyncpg.Connection | asyncpg.Pool, *, before_id: int | None, limit: int
) -> list[asyncpg.Record]:
    """Audit rows of no tenant (the operator's webhook endpoints), newest first; page on with `before_id`."""
    return await conn.fetch(SELECT_OPERATOR_AUDIT, before_id, limit)


# One user's rows of some actions (a user page's license history), by audit_log_user.
SELECT_USER_AUDIT_OF_ACTIONS = """
SELECT id, user_id, action, actor, detail, request_id, created_at
FROM audit_log
WHERE tenant_id = $1 AND user_id = $2 AND action = ANY($3::text[])
ORDER BY id DESC
LIMIT $4
"""


async def user_audit_of_actions(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    user_id: UUID,
    actions: Sequence[AuditAction],
    *,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` of the user's audit rows with one of `actions`, newest first."""
    return await conn.fetch(SELECT_USER_AUDIT_OF_ACTIONS, tenant_id, user_id, actions, limit)
