"""SQL for the provisioning log: rows written in batches by the web front end, read newest first, and what
the rows' requests led to (their outbox rows and audit rows)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg


class LogEntry(NamedTuple):
    """One SCIM request of a tenant as its log row holds it (never a token, never the body). A tuple, and
    `at` in seconds since the epoch (`time.time()`): made on every SCIM request, it must be cheap."""

    tenant_id: UUID
    at: float
    request_id: str
    idp: str
    method: str
    endpoint: str
    resource_type: str | None
    resource_id: UUID | None
    user_name: str | None
    summary: str
    status: int
    scim_type: str | None
    detail: str | None
    duration_ms: float
    outbox_ids: tuple[int, ...] = ()


# One statement for a whole batch. The join with tenants skips the rows of a tenant deleted since its
# request (its foreign key would otherwise fail the batch). outbox_ids travel as text ('{1,2}'): unnest
# cannot take an array of arrays of different lengths.
INSERT_ENTRIES = """
INSERT INTO provisioning_log (tenant_id, at, request_id, idp, method, endpoint, resource_type, resource_id,
                              user_name, summary, status, scim_type, detail, duration_ms, outbox_ids)
SELECT v.tenant_id, to_timestamp(v.at), v.request_id, v.idp, v.method, v.endpoint, v.resource_type,
       v.resource_id, v.user_name, v.summary, v.status, v.scim_type, v.detail, v.duration_ms,
       v.outbox_ids::bigint[]
FROM unnest($1::uuid[], $2::float8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::uuid[], $9::text[], $10::text[], $11::smallint[], $12::text[], $13::text[], $14::real[],
            $15::text[])
    WITH ORDINALITY AS v(tenant_id, at, request_id, idp, method, endpoint, resource_type, resource_id,
                         user_name, summary, status, scim_type, detail, duration_ms, outbox_ids, n)
JOIN tenants t ON t.id = v.tenant_id
ORDER BY v.n
"""


async def insert_entries(pool: asyncpg.Pool, entries: list[LogEntry]) -> int:
    """Write a batch of log rows in one statement; returns how many were written (not a deleted tenant's)."""
    if not entries:
        return 0
    status = await pool.execute(
        INSERT_ENTRIES,
        [e.tenant_id for e in entries],
        [e.at for e in entries],
        [e.request_id for e in entries],
        [e.idp for e in entries],
        [e.method for e in entries],
        [e.endpoint for e in entries],
        [e.resource_type for e in entries],
        [e.resource_id for e in entries],
        [e.user_name for e in entries],
        [e.summary for e in entries],
        [e.status for e in entries],
        [e.scim_type for e in entries],
        [e.detail for e in entries],
        [e.duration_ms for e in entries],
        ["{" + ",".join(map(str, e.outbox_ids)) + "}" for e in entries],
    )
    return int(status.rsplit(" ", 1)[-1])


ENTRY_COLUMNS = """id, at, request_id, idp, method, endpoint, resource_type, resource_id, user_name, summary,
       status, scim_type, detail, duration_ms, outbox_ids"""
# $2 status class (2 for 2xx, ...), $3/$4 since/until, $5 older than this id, $6 the page size; $7 is
# the resource id or the userName of the variant. One statement per variant so each uses its index
# (the resource and userName indexes are partial).
_PAGE = f"""
SELECT {ENTRY_COLUMNS}
FROM provisioning_log
WHERE tenant_id = $1
  AND ($2::int IS NULL OR status / 100 = $2)
  AND ($3::timestamptz IS NULL OR at >= $3)
  AND ($4::timestamptz IS NULL OR at < $4)
  AND ($5::bigint IS NULL OR id < $5)
  {{extra}}
ORDER BY id DESC
LIMIT $6
"""
SELECT_PAGE = _PAGE.format(extra="")
SELECT_PAGE_OF_RESOURCE = _PAGE.format(
    extra="AND resource_id IS NOT NULL AND resource_id = $7 AND resource_type = $8"
)
SELECT_PAGE_OF_USER_NAME = _PAGE.format(extra="AND user_name IS NOT NULL AND lower(user_name) = lower($7)")


async def log_page(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    status_class: int | None,
    resource: tuple[str, UUID] | None,
    user_name: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Log rows of the tenant, newest first, of one resource (type, id) or userName if given."""
    args = (tenant_id, status_class, since, until, before_id, limit)
    if resource is not None:
        return await pool.fetch(SELECT_PAGE_OF_RESOURCE, *args, resource[1], resource[0])
    if user_name is not None:
        return await pool.fetch(SELECT_PAGE_OF_USER_NAME, *args, user_name)
    return await pool.fetch(SELECT_PAGE, *args)


SELECT_OUTBOX_ROWS = """
SELECT id, resource_type, resource_id, change, applied_at, attempts, last_error
FROM outbox
WHERE tenant_id = $1 AND id = ANY ($2::bigint[])
"""
# What a page's entries led to, per entry key (request id, user id or NULL): rows that carry the request id
# and, for a user's entry, name that user. The request id is the client's X-Request-Id when it sent one, so
# two requests may share it: the user keeps them apart, and `$4` rows per key bound what a reused id loads.
# The two branches of each lateral are exclusive (one-time filters on k.user_id): with a user, the audit
# rows come through (tenant_id, request_id) or (tenant_id, user_id), whichever the planner finds narrower.
SELECT_AUDIT_OF_ENTRIES = """
SELECT k.n, a.id, a.user_id, a.action, a.actor, a.detail, a.request_id, a.created_at
FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS k(request_id, user_id, n)
CROSS JOIN LATERAL (
    (SELECT id, user_id, action, actor, detail, request_id, created_at
     FROM audit_log
     WHERE k.user_id IS NULL AND tenant_id = $1 AND request_id IS NOT NULL AND request_id = k.request_id
     ORDER BY id LIMIT $4)
    UNION ALL
    (SELECT id, user_id, action, actor, detail, request_id, created_at
     FROM audit_log
     WHERE k.user_id IS NOT NULL AND tenant_id = $1 AND request_id IS NOT NULL
       AND request_id = k.request_id AND user_id = k.user_id
     ORDER BY id LIMIT $4)
) a
ORDER BY k.n, a.id
"""
SELECT_EVENTS_OF_ENTRIES = """
SELECT k.n, e.id, e.type, e.request_id, e.data
FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS k(request_id, user_id, n)
CROSS JOIN LATERAL (
    SELECT id, type, request_id, data
    FROM events
    WHERE tenant_id = $1 AND request_id IS NOT NULL AND request_id = k.request_id
      AND (k.user_id IS NULL OR data -> 'user' ->> 'id' = k.user_id::text)
    ORDER BY id LIMIT $4
) e
ORDER BY k.n, e.id
"""


class OutcomeKey(NamedTuple):
    """What an entry's outcome rows are matched on: its request id, and its user when it is a user's."""

    request_id: str
    user_id: UUID | None


async def outbox_rows(pool: asyncpg.Pool, tenant_id: UUID, ids: list[int]) -> list[asyncpg.Record]:
    """The tenant's outbox rows with these ids that still exist (retention deletes applied ones)."""
    if not ids:
        return []
    return await pool.fetch(SELECT_OUTBOX_ROWS, tenant_id, ids)


async def _of_entries(
    pool: asyncpg.Pool, sql: str, tenant_id: UUID, keys: list[OutcomeKey], limit: int
) -> dict[OutcomeKey, list[asyncpg.Record]]:
    found: dict[OutcomeKey, list[asyncpg.Record]] = {k: [] for k in keys}
    if keys:
        rows = await pool.fetch(
            sql, tenant_id, [k.request_id for k in keys], [k.user_id for k in keys], limit
        )
        for r in rows:
            found[keys[r["n"] - 1]].append(r)
    return found


async def audit_of_entries(
    pool: asyncpg.Pool, tenant_id: UUID, keys: list[OutcomeKey], *, limit: int
) -> dict[OutcomeKey, list[asyncpg.Record]]:
    """The tenant's audit rows of each key (its request id, and its user if any), oldest first, at most
    `limit` per key."""
    return await _of_entries(pool, SELECT_AUDIT_OF_ENTRIES, tenant_id, keys, limit)


async def events_of_entries(
    pool: asyncpg.Pool, tenant_id: UUID, keys: list[OutcomeKey], *, limit: int
) -> dict[OutcomeKey, list[asyncpg.Record]]:
    """The tenant's events of each key (its request id, and its user if any), in order, at most `limit`
    per key."""
    return await _of_entries(pool, SELECT_EVENTS_OF_ENTRIES, tenant_id, keys, limit)
