"""SQL for users. The SCIM resource is kept as JSONB beside the columns that filters and paging use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from schemas.user import PRODUCT_SCHEMA
from scimsvc.scim.filters import Column
from scimsvc.store import pages
from scimsvc.store.batches import Batcher
from scimsvc.store.db import fetch_in_time

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

SELECT_USER = f"SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = $1 AND u.id = $2 AND u.scim_linked"
SELECT_USER_FOR_UPDATE = SELECT_USER + " FOR UPDATE"
SELECT_BY_USER_NAME_FOR_UPDATE = f"""
SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = $1 AND lower(u.user_name) = lower($2) FOR UPDATE
"""
INSERT_USER = f"""
INSERT INTO users AS u (tenant_id, user_name, external_id, display_name, active, resource)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {USER_COLUMNS}
"""


def _with_outbox(write: str, *, change: str, request_id: str, write_by: str) -> str:
    """One statement: `write` (an INSERT or UPDATE of `users AS u`) and the outbox row of the user it
    wrote, returned with `outbox_id`; nothing at all when `write` writes no row, and nothing either, with
    an error, when it reaches PostgreSQL after `write_by` (`in_time`, migration 0013)."""
    return f"""
WITH u AS (
    {write}
    RETURNING {USER_COLUMNS}
), change AS (
    INSERT INTO outbox (tenant_id, resource_type, resource_id, change, payload, request_id)
    SELECT u.tenant_id, 'user', u.id, {change}, jsonb_build_object('active', u.active), {request_id} FROM u
    WHERE in_time({write_by})
    RETURNING id
)
SELECT u.*, change.id AS outbox_id FROM u, change
"""


# A new userName is one statement: the user and its "create" outbox row commit together without an explicit
# transaction (a statement is atomic), saving the BEGIN, lock and COMMIT round trips. A taken userName,
# linked or not, inserts nothing and returns no row.
INSERT_NEW_USER = _with_outbox(
    """INSERT INTO users AS u (tenant_id, user_name, external_id, display_name, active, resource)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (tenant_id, lower(user_name)) DO NOTHING""",
    change="'create'",
    request_id="$7",
    write_by="$8",
)
# How long a batch waits for a row lock: a name in it that another transaction is writing right then (a
# front end inserting it, a PATCH or the worker updating that user). Past it the batch fails with nothing
# written and its users go one by one, so only that user waits, and the batch is never the one a
# deadlock check (deadlock_timeout, 1 s) finds waiting. The statement sets it for its own transaction in
# `waits`, which every row it inserts is read after: no BEGIN, SET and COMMIT round trips.
BATCH_LOCK_TIMEOUT = "500ms"
# INSERT_NEW_USER for many users at once (store/batches.py): each user with its own "create" outbox row,
# a taken userName skipped. Ids are drawn first, so each row written maps back to its own place in the
# arrays (`batch_row`, 1-based). Users go in by name, and one name's spellings in arrival order: two batches
# that meet on names wait for each other in one order, and the first request of a name is the one created.
INSERT_NEW_USERS = f"""
WITH waits AS MATERIALIZED (
    SELECT set_config('lock_timeout', '{BATCH_LOCK_TIMEOUT}', true)
), v AS MATERIALIZED (
    SELECT gen_random_uuid() AS id, v.*
    FROM waits, unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::jsonb[], $7::text[])
        WITH ORDINALITY AS v(tenant_id, user_name, external_id, display_name, active, resource, request_id, n)
), u AS (
    INSERT INTO users AS u (id, tenant_id, user_name, external_id, display_name, active, resource)
    SELECT v.id, v.tenant_id, v.user_name, v.external_id, v.display_name, v.active, v.resource
    FROM v ORDER BY v.tenant_id, lower(v.user_name), v.n
    ON CONFLICT (tenant_id, lower(user_name)) DO NOTHING
    RETURNING {USER_COLUMNS}
), made AS (
    SELECT u.*, v.n AS batch_row, v.request_id FROM u JOIN v ON v.id = u.id
), change AS (
    INSERT INTO outbox (tenant_id, resource_type, resource_id, change, payload, request_id)
    SELECT m.tenant_id, 'user', m.id, 'create', jsonb_build_object('active', m.active), m.request_id
    FROM made m WHERE in_time($8) ORDER BY m.batch_row
    RETURNING id, resource_id
)
SELECT m.*, change.id AS outbox_id FROM made m JOIN change ON change.resource_id = m.id
"""
UPDATE_USER = f"""
UPDATE users AS u
SET user_name = $3, external_id = $4, display_name = $5, active = $6, resource = $7,
    scim_linked = true, version = u.version + 1, updated_at = now(), provisioning_state = 'pending'
WHERE u.tenant_id = $1 AND u.id = $2
RETURNING {USER_COLUMNS}
"""
# A user's new resource saved with its outbox row in one statement, if nobody changed the user since it
# was read at version $8 (then nothing is written and nothing returned).
UPDATE_READ_USER = _with_outbox(
    """UPDATE users AS u
    SET user_name = $3, external_id = $4, display_name = $5, active = $6, resource = $7,
        version = u.version + 1, updated_at = now(), provisioning_state = 'pending'
    WHERE u.tenant_id = $1 AND u.id = $2 AND u.version = $8 AND u.scim_linked""",
    change="$9",
    request_id="$10",
    write_by="$11",
)
UNLINK_USER = """
UPDATE users AS u
SET scim_linked = false, active = false, version = u.version + 1, updated_at = now(),
    provisioning_state = 'pending'
WHERE u.tenant_id = $1 AND u.id = $2 AND u.scim_linked
RETURNING u.id
"""
SELECT_DISPLAY_NAMES = """
SELECT u.id, coalesce(u.display_name, u.user_name) AS display_name
FROM users u WHERE u.tenant_id = $1 AND u.id = ANY($2::uuid[]) AND u.scim_linked
"""
# The worker records a batch's applied state in one statement (one new row version per user): each user's
# license, its place on the waiting list (as scimsvc/product/seats.py:waiting_since decided it) and its
# provisioning state.
APPLY_USER_STATES = """
UPDATE users u SET
    license = v.license,
    waiting_since = v.waiting_since,
    provisioning_state = CASE WHEN u.active AND u.scim_linked THEN 'provisioned' ELSE 'deprovisioned' END,
    provisioned_at = now()
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS v(id, license, waiting_since)
WHERE u.id = v.id
RETURNING u.id, u.provisioning_state = 'provisioned' AS provisioned
"""


def _columns(resource: dict[str, Any]) -> tuple[Any, ...]:
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
    return await conn.fetchrow(INSERT_USER, tenant_id, *_columns(resource))


class NewUser(NamedTuple):
    """A POSTed user with a new userName, as `insert_new_user` writes it."""

    tenant_id: UUID
    resource: dict[str, Any]
    request_id: str | None


NewUserInserts = Batcher[NewUser, asyncpg.Record | None]


async def insert_new_user(
    inserts: NewUserInserts | asyncpg.Pool,
    tenant_id: UUID,
    resource: dict[str, Any],
    *,
    request_id: str | None,
) -> asyncpg.Record | None:
    """Insert a user and its "create" outbox row, atomically; None (nothing written) if the name is taken.

    Through `inserts` (`new_user_inserts`), users that arrive together go in by one statement. The row
    carries `outbox_id`, the outbox row to wake the worker for.
    """
    user = NewUser(tenant_id, resource, request_id)
    if isinstance(inserts, asyncpg.Pool):
        return await _insert_one(inserts, user)
    return await inserts.submit(user)


async def _insert_one(pool: asyncpg.Pool, user: NewUser) -> asyncpg.Record | None:
    rows = await fetch_in_time(
        pool, INSERT_NEW_USER, user.tenant_id, *_columns(user.resource), user.request_id
    )
    return rows[0] if rows else None


async def _insert_many(pool: asyncpg.Pool, users: Sequence[NewUser]) -> list[asyncpg.Record | None]:
    columns = zip(*(_columns(user.resource) for user in users), strict=True)
    rows = await fetch_in_time(
        pool,
        INSERT_NEW_USERS,
        [user.tenant_id for user in users],
        *columns,
        [user.request_id for user in users],
    )
    made = {row["batch_row"]: row for row in rows}
    return [made.get(n) for n in range(1, len(users) + 1)]


def new_user_inserts(pool: asyncpg.Pool) -> NewUserInserts:
    """A batcher of new-user inserts into `pool` (one per pool: the app's)."""
    return Batcher(
        pool,
        one=_insert_one,
        many=_insert_many,
        # A name is in one batch at a time: a second POST of it (an IdP's retry) waits for the first.
        key=lambda user: (user.tenant_id, user.resource["userName"].lower()),
        # Two batches out at once: one fills while the other is in PostgreSQL, and one waiting for a lock
        # (up to BATCH_LOCK_TIMEOUT) does not stop every POST of this process.
        in_flight=2,
    )


async def update_user(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, resource: dict[str, Any]
) -> asyncpg.Record:
    """Replace a user's resource (and re-link it if it was unlinked); bumps the version."""
    return await conn.fetchrow(UPDATE_USER, tenant_id, user_id, *_columns(resource))


async def update_read_user(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    user_id: UUID,
    resource: dict[str, Any],
    *,
    version: int,
    change: str,
    request_id: str | None,
) -> asyncpg.Record | None:
    """Save a linked user read at `version` and its `change` outbox row, atomically; None (nothing
    written) if the user has changed since. The row carries `outbox_id`."""
    rows = await fetch_in_time(
        conn, UPDATE_READ_USER, tenant_id, user_id, *_columns(resource), version, change, request_id
    )
    return rows[0] if rows else None


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
        columns=USER_COLUMNS,
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


async def apply_user_states(
    conn: asyncpg.Connection, applied: list[tuple[UUID, str | None, datetime | None]]
) -> list[UUID]:
    """Record (user id, license, waiting since or None) and the provisioning state of many users; returns
    those now provisioned (active and linked), in the order given."""
    if not applied:
        return []
    ids, kinds, since = (list(column) for column in zip(*applied, strict=True))
    rows = await conn.fetch(APPLY_USER_STATES, ids, kinds, since)
    provisioned = {r["id"] for r in rows if r["provisioned"]}
    return [user_id for user_id in ids if user_id in provisioned]


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


# Team and group memberships go with the row (ON DELETE CASCADE); boards are handed over before.
HARD_DELETE_USER = "DELETE FROM users WHERE tenant_id = $1 AND id = $2 RETURNING user_name, license"


async def hard_delete_user(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> asyncpg.Record | None:
    """Remove the product user for good; returns what it was (userName, license), None if absent."""
    return await conn.fetchrow(HARD_DELETE_USER, tenant_id, user_id)
