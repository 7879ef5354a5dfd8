"""Teams and their members, as the admin API (Teams API) and domain teams change them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

TEAM_COLUMNS = """
t.id, t.name, t.created_at, t.updated_at,
(SELECT count(*) FROM team_members m WHERE m.team_id = t.id) AS member_count,
g.id AS group_id, g.display_name AS group_display_name
"""
INSERT_TEAM = f"""
WITH t AS (INSERT INTO teams (tenant_id, name) VALUES ($1, $2) RETURNING *)
SELECT {TEAM_COLUMNS} FROM t LEFT JOIN groups g ON g.team_id = t.id
"""
SELECT_TEAMS = f"""
SELECT {TEAM_COLUMNS} FROM teams t LEFT JOIN groups g ON g.team_id = t.id
WHERE t.tenant_id = $1 AND ($2::uuid IS NULL OR t.id = $2)
ORDER BY t.name, t.id
"""
RENAME_TEAM = """
UPDATE teams SET name = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING id
"""
DELETE_TEAM = "DELETE FROM teams WHERE tenant_id = $1 AND id = $2 RETURNING id"
SELECT_MEMBERS = """
SELECT m.user_id, u.user_name, m.added_by, m.joined_at
FROM team_members m JOIN users u ON u.id = m.user_id
WHERE m.team_id = $1 AND ($2::uuid IS NULL OR m.user_id > $2)
ORDER BY m.user_id
LIMIT $3
"""
# Both ids must belong to the tenant: the join refuses another tenant's user or team. Both rows stay
# locked (KEY SHARE) until commit, so a concurrent delete of either never leaves the membership behind.
ADD_MEMBER = """
WITH target AS MATERIALIZED (
    SELECT t.id AS team_id, u.id AS user_id FROM teams t JOIN users u ON u.tenant_id = t.tenant_id
    WHERE t.tenant_id = $1 AND t.id = $2 AND u.id = $3
    FOR KEY SHARE OF t, u
), added AS (
    INSERT INTO team_members (team_id, user_id, added_by) SELECT team_id, user_id, $4 FROM target
    ON CONFLICT (team_id, user_id) DO NOTHING
)
SELECT count(*) FROM target
"""
REMOVE_MEMBER = """
DELETE FROM team_members m USING teams t
WHERE t.tenant_id = $1 AND t.id = $2 AND m.team_id = t.id AND m.user_id = $3
RETURNING m.user_id
"""
MISSING_TEAMS = """
SELECT x FROM unnest($2::uuid[]) AS x
EXCEPT SELECT id FROM teams WHERE tenant_id = $1 AND id = ANY($2::uuid[])
"""
# Memberships decided by the domain-team rule (scimsvc/product/domain_teams.py); the join skips teams
# deleted since, and the teams joined stay locked (KEY SHARE) until commit, so one deleted meanwhile takes
# these rows with it.
ADD_DOMAIN_MEMBERS = """
INSERT INTO team_members (team_id, user_id, added_by)
SELECT t.id, u.id, 'domain'
FROM unnest($2::text[], $3::uuid[]) AS v(team_id, user_id)
JOIN teams t ON t.tenant_id = $1 AND t.id::text = v.team_id
JOIN users u ON u.tenant_id = $1 AND u.id = v.user_id
FOR KEY SHARE OF t, u
ON CONFLICT (team_id, user_id) DO NOTHING
RETURNING team_id, user_id
"""
USER_TEAMS = """
SELECT m.user_id, t.id, t.name FROM team_members m JOIN teams t ON t.id = m.team_id
WHERE m.user_id = ANY($1::uuid[]) ORDER BY t.name, t.id
"""


async def create_team(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, name: str) -> asyncpg.Record:
    """A new team; raises UniqueViolationError if the tenant has one of that exact name."""
    return await conn.fetchrow(INSERT_TEAM, tenant_id, name)


async def list_teams(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, *, only: UUID | None = None
) -> list[asyncpg.Record]:
    """The tenant's teams with member counts and the SCIM group linked to each, by name."""
    return await conn.fetch(SELECT_TEAMS, tenant_id, only)


async def rename_team(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, team_id: UUID, name: str
) -> bool:
    """Rename a team (its linked group keeps its own name); raises UniqueViolationError if taken."""
    return await conn.fetchval(RENAME_TEAM, tenant_id, team_id, name) is not None


async def delete_team(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, team_id: UUID) -> bool:
    """Delete a team and its memberships; a linked group stays, unlinked; its boards lose their team."""
    return await conn.fetchval(DELETE_TEAM, tenant_id, team_id) is not None


async def members_page(
    conn: asyncpg.Connection | asyncpg.Pool, team_id: UUID, *, after: UUID | None, limit: int
) -> list[asyncpg.Record]:
    """Members by user id, from `after` on (keyset paging)."""
    return await conn.fetch(SELECT_MEMBERS, team_id, after, limit)


async def add_member(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, team_id: UUID, user_id: UUID, *, added_by: str
) -> bool:
    """Add a user of the tenant to one of its teams (already a member: nothing changes).

    False when the team or the user is not the tenant's.
    """
    return await conn.fetchval(ADD_MEMBER, tenant_id, team_id, user_id, added_by) == 1


async def remove_member(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, team_id: UUID, user_id: UUID
) -> bool:
    return await conn.fetchval(REMOVE_MEMBER, tenant_id, team_id, user_id) is not None


async def missing_teams(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, ids: list[UUID]
) -> list[UUID]:
    """Which of `ids` are not teams of the tenant."""
    return [r[0] for r in await conn.fetch(MISSING_TEAMS, tenant_id, ids)]


async def add_domain_members(
    conn: asyncpg.Connection, tenant_id: UUID, memberships: list[tuple[str, UUID]]
) -> list[asyncpg.Record]:
    """Add (team id, user id) memberships of the tenant, `added_by` domain, in one statement."""
    if not memberships:
        return []
    team_ids, user_ids = zip(*memberships, strict=True)
    return await conn.fetch(ADD_DOMAIN_MEMBERS, tenant_id, list(team_ids), list(user_ids))


async def teams_of(
    conn: asyncpg.Connection | asyncpg.Pool, user_ids: list[UUID]
) -> dict[UUID, list[dict[str, Any]]]:
    """Each user's teams ({id, name}), for a page of users in one query."""
    teams: dict[UUID, list[dict[str, Any]]] = {u: [] for u in user_ids}
    for row in await conn.fetch(USER_TEAMS, user_ids):
        teams[row["user_id"]].append({"id": str(row["id"]), "name": row["name"]})
    return teams
