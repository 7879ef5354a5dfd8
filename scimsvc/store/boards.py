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
# What the heir rule (scimsvc/product/heirs.py:heir_of) chooses from, for each board of a user being
# deleted: the longest-standing other active member of the board's team, and the tenant's longest-standing
# active admin (role `admin`, read as `scimsvc.product.users.role` does: the primary role's value).
SELECT_HEIR_CANDIDATES = """
WITH admin AS (
    SELECT u.id FROM users u
    WHERE u.tenant_id = $1 AND u.id <> $2 AND u.active AND u.scim_linked
      AND EXISTS (
          SELECT 1 FROM jsonb_array_elements(coalesce(u.resource -> 'roles', '[]')) AS r
          WHERE r -> 'primary' = 'true'::jsonb AND lower(r ->> 'value') = 'admin'
      )
    ORDER BY u.created_at, u.id
    LIMIT 1
)
SELECT b.id, b.title, b.team_id, m.user_id AS team_member, (SELECT id FROM admin) AS admin
FROM boards b
LEFT JOIN LATERAL (
    SELECT tm.user_id FROM team_members tm JOIN users u ON u.id = tm.user_id
    WHERE tm.team_id = b.team_id AND tm.user_id <> $2 AND u.active AND u.scim_linked
    ORDER BY tm.joined_at, tm.user_id
    LIMIT 1
) AS m ON true
WHERE b.tenant_id = $1 AND b.owner_id = $2
ORDER BY b.created_at, b.id
"""
# Every board of one owner to the heir chosen for it, in one statement.
MOVE_BOARDS = """
UPDATE boards b SET owner_id = v.heir
FROM unnest($3::uuid[], $4::uuid[]) AS v(id, heir)
WHERE b.tenant_id = $1 AND b.owner_id = $2 AND b.id = v.id
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


async def heir_candidates(conn: asyncpg.Connection, tenant_id: UUID, owner_id: UUID) -> list[asyncpg.Record]:
    """Each board of `owner_id` (id, title, team_id, oldest first) with the candidates to inherit it
    (team_member, admin: None when there is none)."""
    return await conn.fetch(SELECT_HEIR_CANDIDATES, tenant_id, owner_id)


async def move_boards(
    conn: asyncpg.Connection, tenant_id: UUID, owner_id: UUID, heirs: list[tuple[UUID, UUID | None]]
) -> None:
    """Give boards of `owner_id` to new owners: (board id, heir or None for no owner)."""
    if heirs:
        boards, owners = zip(*heirs, strict=True)
        await conn.execute(MOVE_BOARDS, tenant_id, owner_id, list(boards), list(owners))
