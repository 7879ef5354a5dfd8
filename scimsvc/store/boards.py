"""Boards (the product's content, minimal) and their hand-over when the owner is hard-deleted."""

from __future__ import annotations

from uuid import UUID

import asyncpg

BOARD_COLUMNS = "b.id, b.title, b.team_id, b.owner_id, b.created_at"
INSERT_BOARD = f"""
INSERT INTO boards AS b (tenant_id, team_id, owner_id, title) VALUES ($1, $2, $3, $4)
RETURNING {BOARD_COLUMNS}
"""
SELECT_BOARDS = f"""
SELECT {BOARD_COLUMNS} FROM boards b
WHERE b.tenant_id = $1
  AND ($2::uuid IS NULL OR b.owner_id = $2)
  AND ($3::uuid IS NULL OR b.team_id = $3)
  AND ($4::uuid IS NULL OR (b.created_at, b.id) > (SELECT created_at, id FROM boards WHERE id = $4))
ORDER BY b.created_at, b.id
LIMIT $5
"""
# Who inherits each board of a user being deleted (DESIGN §3): the longest-standing other active
# member of the board's team, else the tenant's longest-standing active admin (role `admin`, read as
# `scimsvc.product.users.role` does: the primary role's value), else nobody. One statement moves every
# board and writes one audit row per hand-over.
HAND_OVER_BOARDS = """
WITH admin AS (
    SELECT u.id FROM users u
    WHERE u.tenant_id = $1 AND u.id <> $2 AND u.active AND u.scim_linked
      AND EXISTS (
          SELECT 1 FROM jsonb_array_elements(coalesce(u.resource -> 'roles', '[]')) AS r
          WHERE r -> 'primary' = 'true'::jsonb AND lower(r ->> 'value') = 'admin'
      )
    ORDER BY u.created_at, u.id
    LIMIT 1
), heirs AS (
    SELECT b.id, b.title, b.team_id, m.user_id AS member, (SELECT id FROM admin) AS admin
    FROM boards b
    LEFT JOIN LATERAL (
        SELECT tm.user_id FROM team_members tm JOIN users u ON u.id = tm.user_id
        WHERE tm.team_id = b.team_id AND tm.user_id <> $2 AND u.active AND u.scim_linked
        ORDER BY tm.joined_at, tm.user_id
        LIMIT 1
    ) AS m ON true
    WHERE b.tenant_id = $1 AND b.owner_id = $2
), moved AS (
    UPDATE boards b SET owner_id = coalesce(h.member, h.admin)
    FROM heirs h WHERE b.id = h.id
    RETURNING b.id, h.title, h.team_id, b.owner_id AS heir,
              CASE WHEN h.member IS NOT NULL THEN 'team_member'
                   WHEN h.admin IS NOT NULL THEN 'admin'
                   ELSE 'none' END AS via
)
INSERT INTO audit_log (tenant_id, user_id, action, actor, detail, request_id)
SELECT $1, $2, 'handover', 'admin',
       jsonb_build_object('board_id', id, 'title', title, 'team_id', team_id, 'to', heir, 'via', via), $3
FROM moved
RETURNING detail
"""


async def create_board(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    *,
    title: str,
    team_id: UUID | None,
    owner_id: UUID,
) -> asyncpg.Record:
    return await conn.fetchrow(INSERT_BOARD, tenant_id, team_id, owner_id, title)


async def list_boards(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    *,
    owner_id: UUID | None,
    team_id: UUID | None,
    after: UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Boards oldest first; page on with `after` = the last board id seen."""
    return await conn.fetch(SELECT_BOARDS, tenant_id, owner_id, team_id, after, limit)


async def hand_over_boards(
    conn: asyncpg.Connection, tenant_id: UUID, owner_id: UUID, *, request_id: str | None
) -> list[dict[str, str | None]]:
    """Give every board of `owner_id` to its heir and audit each move; returns the audit details."""
    return [r["detail"] for r in await conn.fetch(HAND_OVER_BOARDS, tenant_id, owner_id, request_id)]
