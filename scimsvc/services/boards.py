"""Boards as operators create and list them (admin API): a board belongs to a user and maybe a team."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from scimsvc.scim.errors import invalid_value
from scimsvc.services.admin_users import admin_user
from scimsvc.services.tenants import tenant_or_404
from scimsvc.store import boards, teams


async def create_board(
    pool: asyncpg.Pool, tenant_id: UUID, *, title: str, team_id: UUID | None, owner_id: UUID
) -> asyncpg.Record:
    """A new board of the tenant; its team (if any) and its owner must be the tenant's (400 otherwise)."""
    await tenant_or_404(pool, tenant_id)
    if team_id is not None and await teams.missing_teams(pool, tenant_id, [team_id]):
        raise invalid_value(f"team_id {str(team_id)!r} is not a team of this tenant")
    if await admin_user(pool, tenant_id, owner_id) is None:
        raise invalid_value(f"owner_id {str(owner_id)!r} is not a user of this tenant")
    try:
        return await boards.create_board(pool, tenant_id, title=title, team_id=team_id, owner_id=owner_id)
    except asyncpg.ForeignKeyViolationError:  # the team or owner was deleted meanwhile
        raise invalid_value("the board's team or owner no longer exists; try again") from None


async def list_boards(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    owner_id: UUID | None,
    team_id: UUID | None,
    after: UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The tenant's boards oldest first, of one owner and/or team if given; page on with `after`."""
    return await boards.list_boards(
        pool, tenant_id, owner_id=owner_id, team_id=team_id, after=after, limit=limit
    )
