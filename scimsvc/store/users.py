"""SQL for SCIM users: the rows SCIM sees (linked users), read, locked, written with their outbox row, listed.

The SCIM resource is kept as JSONB beside the columns that filters and paging use. The rest of the users
table's SQL is in modules of its own: a POSTed new user, one at a time or batched (store/new_users.py);
the operators' list, CSV export and hard delete (store/user_admin.py); the state the worker applies
(store/user_states.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from schemas.user import PRODUCT_SCHEMA
from scimsvc.contract import ResourceType
from scimsvc.scim.filters.sql import Column
from scimsvc.store import outbox, pages
from scimsvc.store.by_key import of_tenant

# How filter attributes map onto real columns (served by the indexes in 0001_init.sql); every other
# attribute is read from the `resource` JSONB.
RESOURCE_FILTER_COLUMNS: dict[str, Column] = {
    "id": Column("u.id", "uuid", nullable=False),
    "username": Column("u.user_name", "string", nullable=False),
    "externalid": Column("u.external_id", "string"),
    "displayname": Column("u.display_name", "string"),
    "active": Column("u.active", "boolean", nullable=False),
    "meta.created": Column("u.created_at", "dateTime", nullable=False),
    "meta.lastmodified": Column("u.updated_at", "dateTime", nullable=False),
}
# The product state lives in columns the worker maintains, not in the stored resource.
FILTER_COLUMNS: dict[str, Column] = {
    **RESOURCE_FILTER_COLUMNS,
    f"{PRODUCT_SCHEMA}:provisioningState".lower(): Column("u.provisioning_state", "string", nullable=False),
    f"{PRODUCT_SCHEMA}:provisionedAt".lower(): Column("u.provisioned_at", "dateTime"),
}
RESOURCE_COLUMN = "u.resource"
# Multi-valued sub-attributes with an expression index of their lower-cased values (0008_filter_indexes.sql).
ELEMENT_INDEXES: dict[str, str] = {
    "emails.value": "(lower(jsonb_path_query_array(u.resource, '$.emails[*].value')::text)::jsonb)",
}
STABLE_ORDER = "u.created_at, u.id"  # total: paging never skips or repeats a user (users_tenant_paging)

USER_COLUMNS = (
    "u.id, u.tenant_id, u.user_name, u.active, u.scim_linked, u.resource, u.version, "
    "u.provisioning_state, u.provisioned_at, u.license, u.waiting_since, u.created_at, u.updated_at"
)
# What a list's rows are read for: rendering (`scim/resources.py:render_user`) and the page's position
# (created_at, id). Fewer columns to decode on every GET /Users than USER_COLUMNS.
LISTED_COLUMNS = (
    "u.id, u.active, u.resource, u.version, u.provisioning_state, u.provisioned_at, u.license, "
    "u.waiting_since, u.created_at, u.updated_at"
)

SELECT_USER = f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = $2 AND {of_tenant('u')} AND u.scim_linked"
SELECT_USER_FOR_UPDATE = SELECT_USER + " FOR UPDATE"
SELECT_BY_USER_NAME_FOR_UPDATE = f"""
SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = $1 AND lower(u.user_name) = lower($2) FOR UPDATE
"""
INSERT_USER = f"""
INSERT INTO users AS u (tenant_id, user_name, external_id, display_name, active, resource)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {USER_COLUMNS}
"""


def with_outbox(write: str, *, change: str, request_id: str, write_by: str) -> str:
    """One statement: `write` (an INSERT or UPDATE of `users AS u`) and the outbox row of the user it
    wrote, returned with `outbox_id`; nothing at all when `write` writes no row, and nothing either, with
    an error, when it reaches PostgreSQL after `write_by` (`in_time`, migration 0013)."""
    changes = outbox.insert_changes_from(
        "u",
        ResourceType.USER,
        row="u",
        change=change,
        payload="jsonb_build_object('active', u.active)",
        request_id=request_id,
        where=f"in_time({write_by})",
    )
    return f"""
WITH u AS (
    {write}
    RETURNING {USER_COLUMNS}
), change AS (
    {changes}
)
SELECT u.*, change.id AS outbox_id FROM u, change
"""


UPDATE_USER = f"""
UPDATE users AS u
SET user_name = $3, external_id = $4, display_name = $5, active = $6, resource = $7,
    scim_linked = true, version = u.version + 1, updated_at = now(), provisioning_state = 'pending'
WHERE u.id = $2 AND {of_tenant("u")}
RETURNING {USER_COLUMNS}
"""
UNLINK_USER = f"""
UPDATE users AS u
SET scim_linked = false, active = false, version = u.version + 1, updated_at = now(),
    provisioning_state = 'pending'
WHERE u.id = $2 AND {of_tenant("u")} AND u.scim_linked
RETURNING u.id
"""
SELECT_DISPLAY_NAMES = f"""
SELECT u.id, coalesce(u.display_name, u.user_name) AS display_name
FROM users u WHERE u.id = ANY($2::uuid[]) AND {of_tenant("u")} AND u.scim_linked
"""


def resource_columns(resource: dict[str, Any]) -> tuple[Any, ...]:
    """The values a SCIM user resource is stored in: userName, externalId, displayName, active, itself."""
    return (
        resource["userName"],
        resource.get("externalId"),
        resource.get("displayName"),
        resource.get("active", True),
        resource,
    )


async def get_user(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, user_id: UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    """A SCIM-linked user of the tenant (unlinked users are invisible to SCIM)."""
    return await conn.fetchrow(SELECT_USER_FOR_UPDATE if for_update else SELECT_USER, tenant_id, user_id)


async def lock_by_user_name(
    conn: asyncpg.Connection, tenant_id: UUID, user_name: str
) -> asyncpg.Record | None:
    """The tenant's user with this userName (case-insensitive), linked or not, locked for update."""
    return await conn.fetchrow(SELECT_BY_USER_NAME_FOR_UPDATE, tenant_id, user_name)


async def insert_user(conn: asyncpg.Connection, tenant_id: UUID, resource: dict[str, Any]) -> asyncpg.Record:
    """Insert a user; raises asyncpg.UniqueViolationError if the userName is taken."""
    return await conn.fetchrow(INSERT_USER, tenant_id, *resource_columns(resource))


async def update_user(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, resource: dict[str, Any]
) -> asyncpg.Record:
    """Replace a user's resource (and re-link it if it was unlinked); bumps the version."""
    return await conn.fetchrow(UPDATE_USER, tenant_id, user_id, *resource_columns(resource))


async def unlink_user(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> bool:
    """Deactivate a user and hide it from SCIM (the SCIM DELETE); False if not found."""
    return await conn.fetchval(UNLINK_USER, tenant_id, user_id) is not None


async def display_names(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, user_ids: list[UUID]
) -> dict[UUID, str]:
    """displayName (else userName) of those of `user_ids` that are linked users of the tenant."""
    rows = await conn.fetch(SELECT_DISPLAY_NAMES, tenant_id, user_ids)
    return {r["id"]: r["display_name"] for r in rows}


async def list_users(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    where: str,
    params: list[Any],
    offset: int,
    limit: int,
    order_by: str = STABLE_ORDER,
    after: tuple[datetime, UUID, int] | None = None,
) -> tuple[int, list[asyncpg.Record]]:
    """One page of the tenant's linked users matching `where` (compiled from a filter, `$1` = tenant id),
    with its total.

    `order_by` (from `scim.sorting.order_by`) ends with the total order (created_at, id), so walking
    startIndex never skips or repeats a user. `after` (only with the default order) is where a walk's
    previous page ended, (created_at, id), and the total it counted: the page is read from there
    instead of by skipping `offset` rows, and answers with that total.
    """
    # `where` is produced by filters.compile_filter: values are in `params`, never in the text.
    condition = f"u.tenant_id = $1 AND u.scim_linked AND ({where})"
    count_sql = f"SELECT count(*) FROM users u WHERE {condition}"
    count_params, skip, total = params, offset, None
    if after is not None:
        if order_by != STABLE_ORDER:
            raise ValueError("a page can start after a position only in the default order")
        created_at, user_id, total = after
        params = [*params, created_at, user_id]
        condition += f" AND (u.created_at, u.id) > (${len(params) - 1}, ${len(params)})"
        skip = 0
    sql = pages.page_sql(
        table="users u",
        columns=LISTED_COLUMNS,
        condition=condition,
        order_by=order_by,
        first_param=len(params) + 1,
    )
    return await pages.fetch_page(
        conn,
        sql,
        params,
        offset=offset,
        skip=skip,
        limit=limit,
        count_sql=count_sql,
        count_params=count_params,
        total=total,
    )


# Fresh planner statistics of `users` (worker/statistics.py says when). It gives up rather than waits for a
# table autovacuum is working on; a role that does not own the table gets PostgreSQL's warning and nothing
# is done. Only the columns a new organization's plans turn on: `tenant_id` (how many rows a tenant has)
# and those the predicates of the tenant-led partial indexes name; any ANALYZE also counts the table's
# rows. The rest (the `resource` JSON, the expression indexes, among them the emails' path evaluated on
# every sampled row) is left to autovacuum's whole ANALYZE: at 300,000 users 0.20 s of PostgreSQL
# instead of 0.49 (the same sample of 30,000 rows).
ANALYZE_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '500ms'"
ANALYZE_USERS = "ANALYZE users (tenant_id, scim_linked, active, license, waiting_since)"


async def analyze_users(pool: asyncpg.Pool) -> None:
    """ANALYZE `users`, waiting at most 500 ms for its lock (raises on that timeout, as on any error)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(ANALYZE_LOCK_TIMEOUT)
        await conn.execute(ANALYZE_USERS)
