"""The outbox: one row per SCIM write, committed with it; drained per resource, in id order.

What a row may say (resource types, change kinds) is `scimsvc.contract`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind, ResourceType
from scimsvc.store.by_key import of_tenant

# Pending rows (applied_at IS NULL) are found without asking PostgreSQL how many there are: ANALYZE samples
# a drained outbox and says "none", VACUUM leaves a partial index of pending rows counted empty, and under
# either estimate a scan of every pending row looks free. Statements on a resource's or a tenant's pending
# rows then skipped the keys they were given and filtered the pending rows of every tenant (migrations
# 0034, 0035). So applied_at has no statistics (a constant 0.5 % pending is assumed), and the paths are:
# - a resource's rows: outbox_resource (resource_type, resource_id, applied_at, id), and a tenant's oldest:
#   outbox_tenant_pending (tenant_id, resource_type, applied_at, created_at, id). Both index every row, so
#   the planner weighs them by the whole table and narrows the scan with every key it is given, `PENDING`
#   last;
# - the oldest pending rows of all (the sweeper, the queue's lag): outbox_pending_age (created_at), partial,
#   with a predicate spelled its own way. A partial index serves only statements whose conditions contain
#   its predicate, and PostgreSQL does not prove `x IS NOT FALSE` from `x`: no other statement can read it;
# - rows by id: the primary key.
PENDING = "applied_at IS NULL"
# A tenant's pending rows of every resource type: each type named, so that outbox_tenant_pending's scan is
# narrowed to pending rows (with the type left open it reads the tenant's applied history too).
_TYPES = ", ".join(f"'{t.value}'" for t in ResourceType)
PENDING_OF_TENANT = f"resource_type = ANY(ARRAY[{_TYPES}]) AND {PENDING}"
PENDING_BY_AGE = "(applied_at IS NULL) IS NOT FALSE"

OUTBOX_COLUMNS = "tenant_id, resource_type, resource_id, change, payload, request_id"
INSERT_CHANGE = f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"


def insert_changes_from(
    written: str,
    resource_type: ResourceType,
    *,
    row: str,
    change: str,
    payload: str,
    request_id: str,
    where: str = "true",
    order_by: str | None = None,
    returning: str = "id",
) -> str:
    """The text of an INSERT of one outbox row per resource a statement wrote: `written` names what it
    wrote (a CTE with its alias) and `row` that alias; `change`, `payload` and `request_id` are SQL
    expressions. Statements that write a resource and its row at once (store/users.py, new_users.py)
    build their outbox part here, so the outbox has one INSERT text with its column list.
    """
    order = f" ORDER BY {order_by}" if order_by else ""
    return (
        f"INSERT INTO outbox ({OUTBOX_COLUMNS})\n"
        f"    SELECT {row}.tenant_id, '{resource_type.value}', {row}.id, {change}, {payload}, {request_id}\n"
        f"    FROM {written} WHERE {where}{order}\n"
        f"    RETURNING {returning}"
    )


# One resource's rows are drained by one transaction at a time, whatever the number of workers.
LOCK_RESOURCE = "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || ($2::uuid)::text, 0))"
SELECT_PENDING = f"""
SELECT id, tenant_id, change, payload, request_id, created_at
FROM outbox
WHERE resource_type = $1 AND resource_id = $2 AND {PENDING}
ORDER BY id
"""


def pending_rows_of(resources: str, resource_type: str, columns: str) -> str:
    """SQL, a FROM clause: the resources `resources` yields (an expression of one uuid column, named
    `r.resource_id`), each with its pending rows (`columns` of alias `o`, a row per pending row).

    Each resource's rows are looked up by its id, one lookup per resource (OFFSET 0 keeps the lookup from
    being flattened into a join). Given ids as `resource_id = ANY(...)`, the planner expects ten of them and,
    whenever it expects few pending rows (a young or drained outbox), prefers reading every pending row of
    the type once to ten lookups: with thousands of organizations writing at once, the whole backlog.
    """
    return f"""{resources} AS r(resource_id)
CROSS JOIN LATERAL (
    SELECT {columns} FROM outbox
    WHERE resource_type = {resource_type} AND resource_id = r.resource_id AND {PENDING}
    OFFSET 0
) AS o"""


# A tenant's oldest pending rows name the resources of the next batch; all their pending rows come along,
# so each resource's rows still apply together and in id order. The oldest are taken by (created_at, id),
# the order of outbox_tenant_pending once `applied_at` (NULL in every row taken) leads: ordered by id, the
# planner walked the primary key through every applied row (migration 0033).
_BATCH_COLUMNS = "id, resource_id, change, payload, request_id"


def _oldest_of(tenant: str) -> str:
    """SQL: the distinct resources behind the `$3` oldest pending rows of type `$2` of the tenant `tenant`
    (an expression), but those in `$4`."""
    return f"""(
    SELECT DISTINCT resource_id FROM (
        SELECT resource_id FROM outbox
        WHERE tenant_id = {tenant} AND resource_type = $2 AND {PENDING} AND resource_id <> ALL($4::uuid[])
        ORDER BY applied_at, created_at, id
        LIMIT $3
    ) AS oldest
)"""


SELECT_TENANT_BATCH = f"""
SELECT o.id, o.resource_id, o.change, o.payload, o.request_id
FROM {pending_rows_of(_oldest_of("$1"), "$2", _BATCH_COLUMNS)}
ORDER BY o.id
"""
# The batches of several tenants ($1) in one statement, each taken as SELECT_TENANT_BATCH takes one.
SELECT_TENANTS_BATCH = f"""
SELECT t.id AS tenant_id, b.id, b.resource_id, b.change, b.payload, b.request_id
FROM unnest($1::uuid[]) AS t(id)
CROSS JOIN LATERAL (
    SELECT o.id, o.resource_id, o.change, o.payload, o.request_id
    FROM {pending_rows_of(_oldest_of("t.id"), "$2", _BATCH_COLUMNS)}
) AS b
ORDER BY b.id
"""
SELECT_PENDING_OF = f"""
SELECT o.id, o.resource_id, o.change, o.payload, o.request_id
FROM {pending_rows_of("(SELECT DISTINCT unnest($2::uuid[]))", "$1", _BATCH_COLUMNS)}
ORDER BY o.id
"""
ANY_UNAPPLIED = f"SELECT EXISTS (SELECT 1 FROM outbox WHERE id = ANY($1::bigint[]) AND {PENDING})"
TENANTS_WITH_UNAPPLIED = f"SELECT DISTINCT tenant_id FROM outbox WHERE id = ANY($1::bigint[]) AND {PENDING}"
SELECT_PENDING_TENANT = f"""
SELECT tenant_id FROM outbox
WHERE resource_type = $1 AND resource_id = $2 AND {PENDING}
LIMIT 1
"""
MARK_APPLIED = f"""
UPDATE outbox SET applied_at = now(), applied_tx = pg_current_xact_id(), attempts = attempts + 1
WHERE id = ANY($1::bigint[]) AND {PENDING}
"""
RECORD_FAILURE = f"""
UPDATE outbox SET attempts = attempts + 1, last_error = $3
WHERE resource_type = $1 AND resource_id = $2 AND {PENDING}
"""
SELECT_STALE = f"""
SELECT resource_type, resource_id, tenant_id
FROM outbox
WHERE {PENDING_BY_AGE} AND created_at < now() - make_interval(secs => $1)
GROUP BY resource_type, resource_id, tenant_id
ORDER BY min(id)
LIMIT $2
"""


async def record_change(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    resource_type: ResourceType,
    resource_id: UUID,
    change: ChangeKind,
    payload: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> int:
    """Add an outbox row; call inside the transaction that makes the change."""
    return await conn.fetchval(
        INSERT_CHANGE, tenant_id, resource_type, resource_id, change, payload or {}, request_id
    )


async def lock_resource(conn: asyncpg.Connection, resource_type: ResourceType, resource_id: UUID) -> None:
    """Hold the resource's drain lock until the current transaction ends."""
    await conn.execute(LOCK_RESOURCE, resource_type, resource_id)


async def pending_changes(
    conn: asyncpg.Connection | asyncpg.Pool, resource_type: ResourceType, resource_id: UUID
) -> list[asyncpg.Record]:
    """The resource's unapplied rows, oldest first."""
    return await conn.fetch(SELECT_PENDING, resource_type, resource_id)


async def tenant_batch(
    conn: asyncpg.Connection, tenant_id: UUID, resource_type: ResourceType, *, limit: int, skip: list[UUID]
) -> list[asyncpg.Record]:
    """Every pending row of the resources behind the tenant's `limit` oldest pending rows, by id.

    Call under the lock that serializes the tenant's drains of this resource type. `skip`: resources to
    leave out (e.g. ones that just failed).
    """
    return await conn.fetch(SELECT_TENANT_BATCH, tenant_id, resource_type, limit, skip)


async def tenants_batch(
    conn: asyncpg.Connection, tenant_ids: list[UUID], resource_type: ResourceType, *, limit: int
) -> list[asyncpg.Record]:
    """`tenant_batch` of each of these tenants (up to `limit` oldest rows each), with `tenant_id`, by id.

    Call holding the lock of every one of them."""
    return await conn.fetch(SELECT_TENANTS_BATCH, tenant_ids, resource_type, limit, [])


async def pending_of(
    conn: asyncpg.Connection, resource_type: ResourceType, resource_ids: list[UUID]
) -> list[asyncpg.Record]:
    """The pending rows of these resources, by id."""
    return await conn.fetch(SELECT_PENDING_OF, resource_type, resource_ids)


async def any_unapplied(conn: asyncpg.Connection | asyncpg.Pool, ids: list[int]) -> bool:
    """Whether any of these rows still waits to be applied."""
    return await conn.fetchval(ANY_UNAPPLIED, ids)


async def tenants_with_unapplied(conn: asyncpg.Connection | asyncpg.Pool, ids: list[int]) -> set[UUID]:
    """The tenants of those of these rows that still wait to be applied."""
    return {r["tenant_id"] for r in await conn.fetch(TENANTS_WITH_UNAPPLIED, ids)}


async def pending_tenant(
    conn: asyncpg.Connection | asyncpg.Pool, resource_type: ResourceType, resource_id: UUID
) -> UUID | None:
    """The tenant of a resource that has pending rows; None if it has none."""
    return await conn.fetchval(SELECT_PENDING_TENANT, resource_type, resource_id)


async def mark_applied(conn: asyncpg.Connection, ids: list[int]) -> None:
    """Stamp rows applied, in the transaction that applied their effect."""
    await conn.execute(MARK_APPLIED, ids)


async def record_failure(
    conn: asyncpg.Connection | asyncpg.Pool, resource_type: ResourceType, resource_id: UUID, error: str
) -> None:
    """Count a failed attempt on the resource's unapplied rows (the sweeper retries them)."""
    await conn.execute(RECORD_FAILURE, resource_type, resource_id, error[:2000])


async def stale_resources(
    conn: asyncpg.Connection | asyncpg.Pool, *, older_than_seconds: float, limit: int = 1000
) -> list[asyncpg.Record]:
    """Resources with rows still unapplied after `older_than_seconds`, oldest first."""
    return await conn.fetch(SELECT_STALE, float(older_than_seconds), limit)


# What is still to apply to one resource of a tenant (a user page's provisioning state, a team page's
# "applying…"): its unapplied rows by outbox_resource, the tenant checked on them.
SELECT_UNAPPLIED_OF = f"""
SELECT count(*) AS rows, coalesce(max(attempts), 0) AS attempts,
       (array_agg(last_error ORDER BY id DESC) FILTER (WHERE last_error IS NOT NULL))[1] AS last_error,
       min(created_at) AS since
FROM outbox
WHERE resource_type = $2 AND resource_id = $3 AND {PENDING} AND {of_tenant("outbox")}
"""


async def unapplied_of(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, resource_type: ResourceType, resource_id: UUID
) -> asyncpg.Record:
    """(rows, attempts, last_error, since) of the resource's rows the worker has not applied yet."""
    row: asyncpg.Record = await conn.fetchrow(SELECT_UNAPPLIED_OF, tenant_id, resource_type, resource_id)
    return row
