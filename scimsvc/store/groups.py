"""SQL for SCIM groups and their desired members (the linked team and its sync are in store/teams.py).

A group's members are rows in `group_members` (never a JSON list), so every change is a fixed number of
statements whatever the group's size: ids travel as one uuid[] parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.scim.filters.sql import Column, Rows
from scimsvc.store import pages
from scimsvc.store.by_key import of_tenant

# How filter attributes map onto real columns (indexes in 0005_teams.sql); others read `resource`.
FILTER_COLUMNS: dict[str, Column] = {
    "id": Column("g.id", "uuid", nullable=False),
    "displayname": Column("g.display_name", "string", nullable=False),
    "externalid": Column("g.external_id", "string"),
    "meta.created": Column("g.created_at", "dateTime", nullable=False),
    "meta.lastmodified": Column("g.updated_at", "dateTime", nullable=False),
}
# `members` lives in rows: a filter on it is an EXISTS over the group's member rows.
FILTER_ROWS: dict[str, Rows] = {
    "members": Rows(
        source=(
            "group_members gm JOIN users mu ON mu.id = gm.user_id AND mu.tenant_id = g.tenant_id "
            "WHERE gm.group_id = g.id AND mu.scim_linked"
        ),
        columns={
            "value": Column("gm.user_id", "uuid", nullable=False),
            "display": Column("coalesce(mu.display_name, mu.user_name)", "string", nullable=False),
            "type": Column("'User'", "string", nullable=False),
        },
    )
}
RESOURCE_COLUMN = "g.resource"
STABLE_ORDER = "g.created_at, g.id"  # total: paging never skips or repeats a group (groups_tenant_paging)

GROUP_COLUMNS = (
    "g.id, g.tenant_id, g.display_name, g.external_id, g.team_id, g.resource, g.version, "
    "g.created_at, g.updated_at"
)
SELECT_GROUP = f"SELECT {GROUP_COLUMNS} FROM groups g WHERE g.tenant_id = $1 AND g.id = $2"
SELECT_GROUP_FOR_UPDATE = SELECT_GROUP + " FOR UPDATE"
INSERT_GROUP = f"""
INSERT INTO groups AS g (tenant_id, display_name, external_id, team_id, resource)
VALUES ($1, $2, $3, $4, $5)
RETURNING {GROUP_COLUMNS}
"""
UPDATE_GROUP = f"""
UPDATE groups AS g
SET display_name = $3, external_id = $4, resource = $5, version = g.version + 1, updated_at = now()
WHERE g.tenant_id = $1 AND g.id = $2
RETURNING {GROUP_COLUMNS}
"""
# A re-link (services/groups.py, services/teams.py): only a group linked to no team gets one. The group's
# SCIM resource (version, lastModified) does not change: the link is the product's, not the IdP's.
LINK_GROUP = """
UPDATE groups SET team_id = $3 WHERE tenant_id = $1 AND id = $2 AND team_id IS NULL RETURNING id
"""
# The groups a team page offers to link: the tenant's groups linked to no team, with their member counts
# counted up to $3 at most (a page view reads at most $2 × $3 index entries, however big the groups).
SELECT_UNLINKED = """
SELECT g.id, g.display_name,
       (SELECT count(*) FROM (SELECT 1 FROM group_members gm WHERE gm.group_id = g.id LIMIT $3) m)
           AS member_count
FROM groups g
WHERE g.tenant_id = $1 AND g.team_id IS NULL
ORDER BY g.display_name, g.id
LIMIT $2
"""
DELETE_GROUP = "DELETE FROM groups WHERE tenant_id = $1 AND id = $2 RETURNING id"

# Which of the ids are not SCIM-linked users of the tenant (one query for any number of ids). The ones that
# are stay locked (KEY SHARE) until the write commits, so a member is never a user deleted meanwhile: a SCIM
# DELETE or hard delete that locked the user first commits first and the user is reported missing; one
# that comes later waits for this write, then takes the user out of the group.
MISSING_USERS = """
WITH found AS MATERIALIZED (
    SELECT u.id FROM users u WHERE u.tenant_id = $1 AND u.scim_linked AND u.id = ANY($2::uuid[])
    FOR KEY SHARE
)
SELECT x FROM unnest($2::uuid[]) AS x
EXCEPT
SELECT id FROM found
"""
ADD_MEMBERS = """
INSERT INTO group_members (group_id, user_id)
SELECT g.id, x FROM groups g CROSS JOIN unnest($3::uuid[]) AS x
WHERE g.tenant_id = $1 AND g.id = $2
ON CONFLICT (group_id, user_id) DO NOTHING
"""
REMOVE_MEMBERS = """
DELETE FROM group_members gm USING groups g
WHERE g.tenant_id = $1 AND g.id = $2 AND gm.group_id = g.id AND gm.user_id = ANY($3::uuid[])
"""
# A push, in one statement (the id list travels once). Each step has only plans linear in its rows,
# whatever the statistics say (they are often stale: a group of 50,000 may have been empty when its
# table was last analyzed, and a parameter array is always guessed at 10 elements):
# - the current members and the new list meet in a FULL JOIN, which is only ever hashed or merged;
# - the new ids are looked up by users' primary key (one array scan) and locked like MISSING_USERS locks
#   them; each is then tested against the found ids with a hashed subplan, never a scan per id;
# - gone rows are deleted by row id (a TID scan): with no other condition on the table there is no
#   index scan that would test each row against the whole array.
# Ids already in the group are not checked again: every group_members row is a SCIM-linked user of the
# group's tenant (each write checks it, a SCIM DELETE takes the user out of its groups, deleting a user
# deletes its rows). The group row is locked by the caller, so the rows read are the rows changed.
PUSH_MEMBERS = """
WITH wanted AS MATERIALIZED (SELECT unnest($3::uuid[]) AS user_id),
diff AS MATERIALIZED (
    SELECT w.user_id AS new_id, gm.ctid AS gone_row
    FROM wanted w FULL JOIN (SELECT ctid, user_id FROM group_members WHERE group_id = $2) gm
        ON gm.user_id = w.user_id
    WHERE w.user_id IS NULL OR gm.user_id IS NULL
),
found AS MATERIALIZED (
    SELECT u.id FROM users u
    WHERE u.id = ANY(ARRAY(SELECT new_id FROM diff WHERE new_id IS NOT NULL))
      AND u.tenant_id = $1 AND u.scim_linked
    FOR KEY SHARE
),
new AS MATERIALIZED (
    SELECT d.new_id, d.new_id IN (SELECT id FROM found) AS known FROM diff d WHERE d.new_id IS NOT NULL
),
removed AS (
    DELETE FROM group_members gm
    WHERE gm.ctid = ANY(ARRAY(SELECT gone_row FROM diff WHERE gone_row IS NOT NULL))
      AND NOT EXISTS (SELECT FROM new WHERE NOT known)
),
added AS (
    INSERT INTO group_members (group_id, user_id)
    SELECT $2, new_id FROM new WHERE known AND NOT EXISTS (SELECT FROM new WHERE NOT known)
    ORDER BY new_id
)
SELECT new_id FROM new WHERE NOT known ORDER BY new_id
"""
SELECT_MEMBERS = """
SELECT gm.group_id, gm.user_id, coalesce(u.display_name, u.user_name) AS display
FROM group_members gm JOIN users u ON u.id = gm.user_id AND u.tenant_id = $1 AND u.scim_linked
WHERE gm.group_id = ANY($2::uuid[])
ORDER BY gm.group_id, gm.user_id
"""
# A SCIM DELETE of a user takes it out of every group (its team memberships stay).
FORGET_USER = """
WITH gone AS (
    DELETE FROM group_members gm USING groups g
    WHERE g.tenant_id = $1 AND gm.group_id = g.id AND gm.user_id = $2
    RETURNING gm.group_id
)
UPDATE groups g SET version = g.version + 1, updated_at = now()
WHERE g.tenant_id = $1 AND g.id IN (SELECT group_id FROM gone)
"""
# The same for SCIM-deleted users, set-based, as the worker applies their deletes: a member that a group
# write committed just as the user's one-statement DELETE began (store/user_deletes.py) goes.
FORGET_UNLINKED_USERS = f"""
WITH gone AS (
    DELETE FROM group_members gm USING groups g, users u
    WHERE g.tenant_id = $1 AND gm.group_id = g.id AND gm.user_id = u.id
      AND u.id = ANY($2::uuid[]) AND {of_tenant("u")} AND NOT u.scim_linked
    RETURNING gm.group_id
)
UPDATE groups g SET version = g.version + 1, updated_at = now()
WHERE g.tenant_id = $1 AND g.id IN (SELECT group_id FROM gone)
"""


async def get_group(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, group_id: UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    """A group of the tenant, optionally locked for update."""
    return await conn.fetchrow(SELECT_GROUP_FOR_UPDATE if for_update else SELECT_GROUP, tenant_id, group_id)


def _columns(resource: dict[str, Any]) -> tuple[Any, ...]:
    return resource["displayName"], resource.get("externalId"), resource


async def insert_group(
    conn: asyncpg.Connection, tenant_id: UUID, team_id: UUID, resource: dict[str, Any]
) -> asyncpg.Record:
    """A new group linked to `team_id`; raises UniqueViolationError if another group links it."""
    display_name, external_id, stored = _columns(resource)
    return await conn.fetchrow(INSERT_GROUP, tenant_id, display_name, external_id, team_id, stored)


async def update_group(
    conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID, resource: dict[str, Any]
) -> asyncpg.Record:
    """Replace the group's resource (never its team link); bumps the version."""
    return await conn.fetchrow(UPDATE_GROUP, tenant_id, group_id, *_columns(resource))


async def delete_group(conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID) -> bool:
    """Delete a group and its desired members; its team and the team's members stay."""
    return await conn.fetchval(DELETE_GROUP, tenant_id, group_id) is not None


async def missing_users(conn: asyncpg.Connection, tenant_id: UUID, user_ids: Sequence[str]) -> list[UUID]:
    """Those of `user_ids` that are not SCIM-linked users of the tenant, sorted."""
    if not user_ids:
        return []
    return sorted(r[0] for r in await conn.fetch(MISSING_USERS, tenant_id, list(user_ids)))


async def add_members(
    conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID, user_ids: Sequence[str]
) -> None:
    """Add ids to the group's desired members (present ones stay)."""
    if user_ids:
        await conn.execute(ADD_MEMBERS, tenant_id, group_id, list(user_ids))


async def remove_members(
    conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID, user_ids: Sequence[str]
) -> None:
    """Remove ids from the group's desired members (absent ones are ignored)."""
    if user_ids:
        await conn.execute(REMOVE_MEMBERS, tenant_id, group_id, list(user_ids))


async def push_members(
    conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID, user_ids: Sequence[str]
) -> list[UUID]:
    """Make the locked group's desired members exactly `user_ids` (distinct ids), in one statement.

    Returns those of `user_ids` that are not SCIM-linked users of the tenant, sorted; when there are any,
    nothing is written.
    """
    return [r[0] for r in await conn.fetch(PUSH_MEMBERS, tenant_id, group_id, list(user_ids))]


async def members_of(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, group_ids: Sequence[UUID]
) -> dict[UUID, list[tuple[UUID, str]]]:
    """Each group's members as (user id, displayName else userName), by user id, in one query."""
    members: dict[UUID, list[tuple[UUID, str]]] = {g: [] for g in group_ids}
    if group_ids:
        for row in await conn.fetch(SELECT_MEMBERS, tenant_id, list(group_ids)):
            members[row["group_id"]].append((row["user_id"], row["display"]))
    return members


async def forget_user(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> None:
    """Take a SCIM-deleted user out of every group's desired members (bumping those groups' versions)."""
    await conn.execute(FORGET_USER, tenant_id, user_id)


async def forget_unlinked_users(conn: asyncpg.Connection, tenant_id: UUID, user_ids: Sequence[UUID]) -> None:
    """Take those of `user_ids` that are SCIM-deleted out of every group's desired members."""
    if user_ids:
        await conn.execute(FORGET_UNLINKED_USERS, tenant_id, list(user_ids))


async def list_groups(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    where: str,
    params: list[Any],
    offset: int,
    limit: int,
    order_by: str = STABLE_ORDER,
) -> tuple[int, list[asyncpg.Record]]:
    """One page of the tenant's groups matching `where` (compiled from a filter, `$1` = tenant id),
    in `order_by` order (ending with the total (created_at, id)), with the exact total."""
    # `where` is produced by filters.compile_filter: values are in `params`, never in the text.
    condition = f"g.tenant_id = $1 AND ({where})"
    sql = pages.page_sql(
        table="groups g",
        columns=GROUP_COLUMNS,
        condition=condition,
        order_by=order_by,
        first_param=len(params) + 1,
    )
    count_sql = f"SELECT count(*) FROM groups g WHERE {condition}"
    return await pages.fetch_page(
        conn, sql, params, offset=offset, limit=limit, count_sql=count_sql, count_params=params
    )


async def link_group(conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID, team_id: UUID) -> bool:
    """Link the tenant's unlinked group to a team; False if it is linked already (or not the tenant's).
    Raises UniqueViolationError if another group is linked to that team."""
    return await conn.fetchval(LINK_GROUP, tenant_id, group_id, team_id) is not None


async def unlinked_groups(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, *, limit: int, count_up_to: int
) -> list[asyncpg.Record]:
    """Up to `limit` of the tenant's groups linked to no team (id, display_name, member_count: counted up to
    `count_up_to` at most), by name."""
    return await conn.fetch(SELECT_UNLINKED, tenant_id, limit, count_up_to)
