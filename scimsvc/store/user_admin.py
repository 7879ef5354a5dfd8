"""SQL for users as operators see them (admin API and console): every user of a tenant, linked to SCIM or
not, listed, exported, and deleted for good."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.store.by_key import of_tenant
from scimsvc.store.users import USER_COLUMNS

ADMIN_FILTERS = """
u.tenant_id = $1
AND ($2::text IS NULL
     OR ($2 = 'active' AND u.active AND u.scim_linked)
     OR ($2 = 'inactive' AND NOT u.active AND u.scim_linked)
     OR ($2 = 'unlinked' AND NOT u.scim_linked))
AND ($3::text IS NULL OR ($3 = 'none' AND u.license IS NULL) OR u.license = $3)
AND ($4::text IS NULL OR lower(u.user_name) LIKE $4 OR lower(coalesce(u.display_name, '')) LIKE $4)
AND ($5::uuid IS NULL OR u.id = $5)
"""
ADMIN_PAGE = f"""
SELECT {USER_COLUMNS} FROM users u
WHERE {ADMIN_FILTERS}
  AND ($6::uuid IS NULL OR (u.created_at, u.id) > (SELECT created_at, id FROM users WHERE id = $6))
ORDER BY u.created_at, u.id
LIMIT $7
"""
ADMIN_EXPORT = f"SELECT {USER_COLUMNS} FROM users u WHERE {ADMIN_FILTERS} ORDER BY u.created_at, u.id"


def _contains(q: str | None) -> str | None:
    if not q:
        return None
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def admin_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    *,
    state: str | None,
    license: str | None,
    q: str | None,
    after: UUID | None,
    limit: int,
    only: UUID | None = None,
) -> list[asyncpg.Record]:
    """The tenant's users (linked or not) for operators, filtered, keyset-paged by (created_at, id)."""
    return await conn.fetch(ADMIN_PAGE, tenant_id, state, license, _contains(q), only, after, limit)


def admin_export_cursor(
    conn: asyncpg.Connection, tenant_id: UUID, *, state: str | None, license: str | None, q: str | None
) -> Any:
    """A server-side cursor over every matching user; iterate it inside a transaction."""
    return conn.cursor(ADMIN_EXPORT, tenant_id, state, license, _contains(q), None, prefetch=1000)


# Team and group memberships go with the row (ON DELETE CASCADE); boards are handed over before. The
# tenant's count of removed users (user_removals) tells checkpointed pages (store/pages.py) the list shrank.
HARD_DELETE_USER = f"""
WITH gone AS (DELETE FROM users u WHERE u.id = $2 AND {of_tenant("u")} RETURNING user_name, license),
counted AS (
    INSERT INTO user_removals AS r (tenant_id, removed) SELECT $1, count(*) FROM gone HAVING count(*) > 0
    ON CONFLICT (tenant_id) DO UPDATE SET removed = r.removed + excluded.removed
)
SELECT user_name, license FROM gone
"""


async def hard_delete_user(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> asyncpg.Record | None:
    """Remove the product user for good; returns what it was (userName, license), None if absent."""
    return await conn.fetchrow(HARD_DELETE_USER, tenant_id, user_id)
