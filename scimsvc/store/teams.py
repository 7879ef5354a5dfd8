"""SQL for teams and their members: the admin API (Teams API), domain teams, and a SCIM group's linked team.

A group (store/groups.py) links to one team; the worker makes that team's members follow the group's
desired members (`push_to_team`, `add_to_team`, `remove_from_team`, run by worker/groups.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.store.by_key import of_tenant

TEAM_COLUMNS = """
t.id, t.name, t.created_at, t.updated_at,
(SELECT count(*) FROM team_members m WHERE m.team_id = t.id) AS member_count,
g.id AS group_id, g.display_name AS group_display_name,
(SELECT count(*) FROM group_members gm WHERE gm.group_id = g.id) AS group_member_count
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
# The name it had comes back too (for the audit row): read under the row's lock, so no rename slips between.
RENAME_TEAM = """
UPDATE teams t SET name = $3, updated_at = now()
FROM (SELECT id, name FROM teams WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE) old
WHERE t.id = old.id
RETURNING old.name
"""
DELETE_TEAM = "DELETE FROM teams WHERE tenant_id = $1 AND id = $2 RETURNING name"
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
    SELECT t.id AS team_id, t.name AS team_name, u.id AS user_id
    FROM teams t JOIN users u ON u.tenant_id = t.tenant_id
    WHERE t.tenant_id = $1 AND t.id = $2 AND u.id = $3
    FOR KEY SHARE OF t, u
), added AS (
    INSERT INTO team_members (team_id, user_id, added_by) SELECT team_id, user_id, $4 FROM target
    ON CONFLICT (team_id, user_id) DO NOTHING
    RETURNING user_id
)
SELECT team_name, EXISTS (SELECT 1 FROM added) AS added FROM target
"""
REMOVE_MEMBER = """
DELETE FROM team_members m USING teams t
WHERE t.tenant_id = $1 AND t.id = $2 AND m.team_id = t.id AND m.user_id = $3
RETURNING t.name AS team_name
"""
MISSING_TEAMS = """
SELECT x FROM unnest($2::uuid[]) AS x
EXCEPT SELECT id FROM teams WHERE tenant_id = $1 AND id = ANY($2::uuid[])
"""
# Memberships decided by the domain-team rule (scimsvc/product/domain_teams.py); the join skips teams
# deleted since, and the teams joined stay locked (KEY SHARE) until commit, so one deleted meanwhile takes
# these rows with it.
# Returns the memberships made (a user already a member made none), with the team's name for its event.
ADD_DOMAIN_MEMBERS = f"""
WITH added AS (
    INSERT INTO team_members (team_id, user_id, added_by)
    SELECT t.id, u.id, 'domain'
    FROM unnest($2::text[], $3::uuid[]) AS v(team_id, user_id)
    JOIN teams t ON t.tenant_id = $1 AND t.id::text = v.team_id
    JOIN users u ON u.id = v.user_id AND {of_tenant("u")}
    FOR KEY SHARE OF t, u
    ON CONFLICT (team_id, user_id) DO NOTHING
    RETURNING team_id, user_id
)
SELECT a.team_id, a.user_id, t.name AS team_name FROM added a JOIN teams t ON t.id = a.team_id
"""
USER_TEAMS = """
SELECT m.user_id, t.id, t.name FROM team_members m JOIN teams t ON t.id = m.team_id
WHERE m.user_id = ANY($1::uuid[]) ORDER BY t.name, t.id
"""


async def create_team(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, name: str) -> asyncpg.Record:
    """A new team; raises UniqueViolationError if the tenant has one of that exact name."""
    return await conn.fetchrow(INSERT_TEAM, tenant_id, name)


SELECT_TENANT_TEAM_NAMES = "SELECT id, name FROM teams WHERE tenant_id = $1"


async def tenant_team_names(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> list[asyncpg.Record]:
    """The tenant's teams' ids and names, nothing counted (the settings page's domain teams)."""
    return await conn.fetch(SELECT_TENANT_TEAM_NAMES, tenant_id)


async def list_teams(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, *, only: UUID | None = None
) -> list[asyncpg.Record]:
    """The tenant's teams with member counts and the SCIM group linked to each, by name."""
    return await conn.fetch(SELECT_TEAMS, tenant_id, only)


async def rename_team(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, team_id: UUID, name: str
) -> str | None:
    """Rename a team (its linked group keeps its own name): the name it had, or None if it is not the
    tenant's; raises UniqueViolationError if the new name is taken."""
    previous: str | None = await conn.fetchval(RENAME_TEAM, tenant_id, team_id, name)
    return previous


async def delete_team(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, team_id: UUID) -> str | None:
    """Delete a team and its memberships (a linked group stays, unlinked; its boards lose their team): the
    name it had, or None if it is not the tenant's."""
    name: str | None = await conn.fetchval(DELETE_TEAM, tenant_id, team_id)
    return name


async def members_page(
    conn: asyncpg.Connection | asyncpg.Pool, team_id: UUID, *, after: UUID | None, limit: int
) -> list[asyncpg.Record]:
    """Members by user id, from `after` on (keyset paging)."""
    return await conn.fetch(SELECT_MEMBERS, team_id, after, limit)


async def add_member(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, team_id: UUID, user_id: UUID, *, added_by: str
) -> asyncpg.Record | None:
    """Add a user of the tenant to one of its teams (already a member: nothing changes): the team's name
    and whether the user was `added`; None when the team or the user is not the tenant's."""
    return await conn.fetchrow(ADD_MEMBER, tenant_id, team_id, user_id, added_by)


async def remove_member(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, team_id: UUID, user_id: UUID
) -> str | None:
    """Take a user out of one of the tenant's teams: the team's name, or None if it was not a member."""
    team_name: str | None = await conn.fetchval(REMOVE_MEMBER, tenant_id, team_id, user_id)
    return team_name


async def missing_teams(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, ids: list[UUID]
) -> list[UUID]:
    """Which of `ids` are not teams of the tenant."""
    return [r[0] for r in await conn.fetch(MISSING_TEAMS, tenant_id, ids)]


async def add_domain_members(
    conn: asyncpg.Connection, tenant_id: UUID, memberships: list[tuple[str, UUID]]
) -> list[asyncpg.Record]:
    """Add (team id, user id) memberships of the tenant, `added_by` domain, in one statement; returns those
    made (team_id, user_id, team_name)."""
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


# --- A SCIM group's team: a new group links to an existing team by its exact name ----------------------

# The team a new group links to: exactly its name (case-sensitive), and the group already linked to it.
SELECT_TEAM_BY_NAME = """
SELECT t.id, t.name, g.id AS group_id, g.display_name AS group_display_name
FROM teams t LEFT JOIN groups g ON g.team_id = t.id
WHERE t.tenant_id = $1 AND t.name = $2
FOR UPDATE OF t
"""
# A team of the tenant by id, locked, with the group linked to it (an explicit re-link, services/teams.py).
SELECT_TEAM_FOR_LINK = """
SELECT t.id, t.name, g.id AS group_id, g.display_name AS group_display_name
FROM teams t LEFT JOIN groups g ON g.team_id = t.id
WHERE t.tenant_id = $1 AND t.id = $2
FOR UPDATE OF t
"""
SELECT_TEAM_NAMES_LIKE = """
SELECT name FROM teams WHERE tenant_id = $1 AND lower(name) = lower($2) ORDER BY name LIMIT 3
"""


async def lock_team_by_name(conn: asyncpg.Connection, tenant_id: UUID, name: str) -> asyncpg.Record | None:
    """The tenant's team named exactly `name` (id, name, group_id of the group linked to it), locked."""
    return await conn.fetchrow(SELECT_TEAM_BY_NAME, tenant_id, name)


async def lock_team(conn: asyncpg.Connection, tenant_id: UUID, team_id: UUID) -> asyncpg.Record | None:
    """The tenant's team `team_id` (id, name, group_id of the group linked to it), locked; None if not the
    tenant's."""
    return await conn.fetchrow(SELECT_TEAM_FOR_LINK, tenant_id, team_id)


async def team_names_like(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, name: str) -> list[str]:
    """Names of the tenant's teams equal to `name` but for case (for a helpful error)."""
    return [r["name"] for r in await conn.fetch(SELECT_TEAM_NAMES_LIKE, tenant_id, name)]


# --- The worker's side: the linked team follows the group ----------------------------------------------

# The group's tenant and linked team, with both names (for events); nothing when the group is gone or its
# team was deleted.
SELECT_LINK = """
SELECT g.tenant_id, g.team_id, g.display_name, t.name AS team_name
FROM groups g JOIN teams t ON t.id = g.team_id AND t.tenant_id = g.tenant_id
WHERE g.id = $1
"""
SELECT_TEAM_NAMES = "SELECT id, name FROM teams WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
# Members the tenant's domain_teams put there stay: that rule holds whatever the IdP's groups say.
PUSH_REMOVE = """
DELETE FROM team_members tm USING teams t
WHERE t.tenant_id = $1 AND t.id = $2 AND tm.team_id = t.id AND tm.added_by <> 'domain'
  AND NOT EXISTS (SELECT 1 FROM group_members gm WHERE gm.group_id = $3 AND gm.user_id = tm.user_id)
RETURNING tm.user_id
"""
# The team and the users it gains are locked (KEY SHARE) until the apply commits: a team or user deleted
# meanwhile either went first (and is skipped here) or waits and then takes these rows with it. Only the
# members the team lacks are looked up and locked: an EXCEPT (hashed or sorted, never a scan per member,
# whatever the statistics say) and one primary-key array scan of users.
PUSH_ADD = """
WITH joining AS MATERIALIZED (
    SELECT user_id FROM group_members WHERE group_id = $3
    EXCEPT
    SELECT user_id FROM team_members WHERE team_id = $2
)
INSERT INTO team_members (team_id, user_id, added_by)
SELECT t.id, u.id, 'scim'
FROM teams t
JOIN users u ON u.tenant_id = t.tenant_id AND u.id = ANY(ARRAY(SELECT user_id FROM joining))
WHERE t.tenant_id = $1 AND t.id = $2
FOR KEY SHARE OF t, u
ON CONFLICT (team_id, user_id) DO NOTHING
RETURNING user_id
"""
# Incremental: only the named users, and only those the group still has (a later removal is applied
# from its own row anyway); their other teams are never touched.
TEAM_ADD = """
INSERT INTO team_members (team_id, user_id, added_by)
SELECT t.id, u.id, 'scim'
FROM teams t
JOIN users u ON u.tenant_id = t.tenant_id AND u.id = ANY($4::uuid[])
WHERE t.tenant_id = $1 AND t.id = $2
  AND EXISTS (SELECT 1 FROM group_members gm WHERE gm.group_id = $3 AND gm.user_id = u.id)
FOR KEY SHARE OF t, u
ON CONFLICT (team_id, user_id) DO NOTHING
RETURNING user_id
"""
TEAM_REMOVE = """
DELETE FROM team_members tm USING teams t
WHERE t.tenant_id = $1 AND t.id = $2 AND tm.team_id = t.id AND tm.user_id = ANY($3::uuid[])
RETURNING tm.user_id
"""


async def linked_team(conn: asyncpg.Connection, group_id: UUID) -> asyncpg.Record | None:
    """(tenant_id, team_id, display_name, team_name) of the group and its team, or None if the group or its
    team no longer exists."""
    return await conn.fetchrow(SELECT_LINK, group_id)


async def team_names(conn: asyncpg.Connection, tenant_id: UUID, team_ids: list[UUID]) -> dict[UUID, str]:
    """The names of those of the tenant's teams that still exist."""
    if not team_ids:
        return {}
    return {r["id"]: r["name"] for r in await conn.fetch(SELECT_TEAM_NAMES, tenant_id, team_ids)}


# The statements below return who actually joined or left: a user already a member (or already gone) is
# not in the answer, so an event is written only for a change that happened.


async def push_to_team(
    conn: asyncpg.Connection, tenant_id: UUID, team_id: UUID, group_id: UUID
) -> tuple[list[UUID], list[UUID]]:
    """Make the team's members exactly the group's members (manual additions go; domain members stay);
    returns (users who left, users who joined)."""
    removed = await conn.fetch(PUSH_REMOVE, tenant_id, team_id, group_id)
    added = await conn.fetch(PUSH_ADD, tenant_id, team_id, group_id)
    return [r[0] for r in removed], [r[0] for r in added]


async def add_group_to_team(
    conn: asyncpg.Connection, tenant_id: UUID, team_id: UUID, group_id: UUID
) -> list[UUID]:
    """A (re-)link: every member of the group joins the team, nobody leaves; returns the users who joined.
    "Nobody leaves" is this step's: a re-link by a PUT then applies the PUT, a push, which removes whoever
    is not in the group (README.md, SCIM Groups and teams); by PATCH or by hand nobody leaves."""
    return [r[0] for r in await conn.fetch(PUSH_ADD, tenant_id, team_id, group_id)]


async def add_to_team(
    conn: asyncpg.Connection, tenant_id: UUID, team_id: UUID, group_id: UUID, user_ids: Sequence[str]
) -> list[UUID]:
    """Add the named users (still members of the group) to the team; existing members stay as they are.
    Returns the users who joined."""
    if not user_ids:
        return []
    return [r[0] for r in await conn.fetch(TEAM_ADD, tenant_id, team_id, group_id, list(user_ids))]


async def remove_from_team(
    conn: asyncpg.Connection, tenant_id: UUID, team_id: UUID, user_ids: Sequence[str]
) -> list[UUID]:
    """Remove the named users from the team (they stay in the subscription and their other teams); returns
    the users who left."""
    if not user_ids:
        return []
    return [r[0] for r in await conn.fetch(TEAM_REMOVE, tenant_id, team_id, list(user_ids))]
