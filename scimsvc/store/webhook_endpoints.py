"""SQL for webhook endpoints as operators manage them: register, change, rotate, delete, list their deliveries
with each delivery's attempts, and replay events to one endpoint (README.md, What happened, Webhooks).

An endpoint belongs to a tenant or, with `tenant_id` NULL, to the operator (it hears every tenant). Every
statement that reads or changes one endpoint is scoped by its owner (`tenant_id IS NOT DISTINCT FROM $2`), so
an id reached through another tenant's URL (or an operator URL for a tenant's endpoint) names nothing. The
worker's side of the same tables is `store/webhook_deliveries.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

COLUMNS = """id, tenant_id, url, description, event_types, enabled, disabled_reason, failing_since,
    secret_generation, previous_until, created_at, updated_at"""
INSERT_ENDPOINT = f"""
INSERT INTO webhook_endpoints (tenant_id, url, description, event_types, enabled)
VALUES ($1, $2, $3, $4, $5)
RETURNING {COLUMNS}
"""
SELECT_ENDPOINTS = f"""
SELECT {COLUMNS} FROM webhook_endpoints WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY created_at, id
"""
SELECT_ENDPOINT = f"""
SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2
"""
# NO KEY UPDATE, not UPDATE: it serialises the endpoint's own changes but leaves free the KEY SHARE lock
# every delivery insert takes on it (store/events.py:RECORD_EVENTS): a long replay never stalls events.
SELECT_ENDPOINT_FOR_UPDATE = SELECT_ENDPOINT + " FOR NO KEY UPDATE"
# Turning an endpoint on again starts its failure clock afresh (the worker disables it again only after a
# whole new period of failures); turning it off by hand says so.
UPDATE_ENDPOINT = f"""
UPDATE webhook_endpoints SET
    url = COALESCE($3, url),
    description = COALESCE($4, description),
    event_types = COALESCE($5::text[], event_types),
    enabled = COALESCE($6, enabled),
    disabled_reason = CASE WHEN $6 IS TRUE THEN NULL
                           WHEN $6 IS FALSE AND enabled THEN $7
                           ELSE disabled_reason END,
    failing_since = CASE WHEN $6 IS TRUE AND NOT enabled THEN NULL ELSE failing_since END,
    updated_at = now()
WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2
RETURNING {COLUMNS}
"""
STOP_ENDPOINT = """
UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'being deleted', updated_at = now()
WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2
RETURNING id
"""
DELETE_ENDPOINT = f"""
DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2 RETURNING {COLUMNS}
"""
# The previous generation keeps signing (beside the new one) until `previous_until`. Within an overlap a
# second rotation would stop the secret receivers may still hold at once: it needs `force` ($4).
ROTATE_SECRET = f"""
UPDATE webhook_endpoints
SET secret_generation = secret_generation + 1, previous_until = now() + make_interval(hours => $3),
    updated_at = now()
WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2
  AND ($4 OR previous_until IS NULL OR previous_until <= now())
RETURNING {COLUMNS}
"""
SELECT_DELIVERIES = """
SELECT d.id, d.event_id, e.type AS event_type, d.tenant_id, d.state, d.attempts, d.next_attempt_at,
       d.created_at, d.finished_at
FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
WHERE d.endpoint_id = $1 AND ($2::bigint IS NULL OR d.id < $2)
ORDER BY d.id DESC
LIMIT $3
"""
# The latest attempts of each delivery (a delivery retried for days has a dozen or so; the cap bounds a page).
SELECT_ATTEMPTS = """
SELECT delivery_id, at, status, latency_ms, excerpt
FROM (
    SELECT a.*, row_number() OVER (PARTITION BY a.delivery_id ORDER BY a.id DESC) AS n
    FROM webhook_attempts a WHERE a.delivery_id = ANY ($1::bigint[])
) latest
WHERE n <= $2
ORDER BY delivery_id, id DESC
"""
# A replay is a new delivery of each event: the endpoint's own tenant's (every tenant's for the operator's),
# of the types it wants. Past the bound nothing is queued: the caller is told to replay a shorter range.
REPLAY_EVENT = """
INSERT INTO webhook_deliveries (endpoint_id, event_id, tenant_id)
SELECT w.id, e.id, e.tenant_id
FROM webhook_endpoints w JOIN events e ON e.id = $2 AND (w.tenant_id IS NULL OR e.tenant_id = w.tenant_id)
WHERE w.id = $1
RETURNING id
"""
# The endpoint's tenant ($5, NULL: every tenant) and types ($6) are parameters, not joined in: a tenant's
# events are read along (tenant_id, tx, id), every tenant's along (tx, id), oldest first, until the bound
# (events keep no index on occurred_at, which every event written would pay for; retention bounds what
# is read before the range).
_REPLAY_RANGE = """
WITH picked AS (
    SELECT e.id, e.tenant_id
    FROM events e
    WHERE e.occurred_at >= $2 AND e.occurred_at < $3
      AND {tenant}
      AND (cardinality($6::text[]) = 0 OR e.type = ANY ($6))
    ORDER BY e.tx, e.id
    LIMIT $4 + 1
), bound AS (
    SELECT count(*) > $4 AS over FROM picked
), queued AS (
    INSERT INTO webhook_deliveries (endpoint_id, event_id, tenant_id)
    SELECT $1, p.id, p.tenant_id FROM picked p CROSS JOIN bound WHERE NOT bound.over
    ORDER BY p.id
    RETURNING 1
)
SELECT (SELECT over FROM bound) AS over, (SELECT count(*) FROM queued) AS queued
"""
# Two statements, not `($5 IS NULL OR tenant_id = $5)`: a generic plan of that could not use the tenant index.
REPLAY_RANGE_OF_TENANT = _REPLAY_RANGE.format(tenant="e.tenant_id = $5")
REPLAY_RANGE_OF_EVERY_TENANT = _REPLAY_RANGE.format(tenant="$5::uuid IS NULL")
SELECT_EVENT_OF = """
SELECT e.id, e.type FROM events e
WHERE e.id = $1 AND ($2::uuid IS NULL OR e.tenant_id = $2)
"""


async def create_endpoint(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID | None,
    url: str,
    description: str,
    event_types: list[str],
    enabled: bool,
) -> asyncpg.Record:
    """A new endpoint of the tenant (None: the operator's, for every tenant), secret generation 1."""
    row: asyncpg.Record = await conn.fetchrow(
        INSERT_ENDPOINT, tenant_id, url, description, event_types, enabled
    )
    return row


async def list_endpoints(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID | None
) -> list[asyncpg.Record]:
    """The tenant's endpoints (None: the operator's), oldest first."""
    return await conn.fetch(SELECT_ENDPOINTS, tenant_id)


async def get_endpoint(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID | None,
    endpoint_id: UUID,
    *,
    for_update: bool = False,
) -> asyncpg.Record | None:
    """One endpoint of this owner (None: the operator's); locked for the transaction with `for_update`."""
    return await conn.fetchrow(
        SELECT_ENDPOINT_FOR_UPDATE if for_update else SELECT_ENDPOINT, endpoint_id, tenant_id
    )


async def update_endpoint(
    conn: asyncpg.Connection,
    tenant_id: UUID | None,
    endpoint_id: UUID,
    changes: Mapping[str, Any],
    *,
    disabled_reason: str,
) -> asyncpg.Record | None:
    """Change the given fields (url, description, event_types, enabled); None when not this owner's."""
    return await conn.fetchrow(
        UPDATE_ENDPOINT,
        endpoint_id,
        tenant_id,
        changes.get("url"),
        changes.get("description"),
        changes.get("event_types"),
        changes.get("enabled"),
        disabled_reason,
    )


async def stop_endpoint(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID | None, endpoint_id: UUID
) -> bool:
    """Disable the endpoint before it is deleted (False: not this owner's): once committed, no event queues
    a delivery for it, so the delete (with all its deliveries) waits on no event writer and stalls none."""
    return await conn.fetchval(STOP_ENDPOINT, endpoint_id, tenant_id) is not None


async def delete_endpoint(
    conn: asyncpg.Connection, tenant_id: UUID | None, endpoint_id: UUID
) -> asyncpg.Record | None:
    """Delete the endpoint with its deliveries and attempts; the deleted row (None: not this owner's)."""
    return await conn.fetchrow(DELETE_ENDPOINT, endpoint_id, tenant_id)


async def rotate_secret(
    conn: asyncpg.Connection, tenant_id: UUID | None, endpoint_id: UUID, *, overlap_hours: int, force: bool
) -> asyncpg.Record | None:
    """Move to the next secret generation; the previous one also signs for `overlap_hours`. None when
    there is no such endpoint, or (unless `force`) a previous secret still signs."""
    return await conn.fetchrow(ROTATE_SECRET, endpoint_id, tenant_id, overlap_hours, force)


async def deliveries_page(
    conn: asyncpg.Connection | asyncpg.Pool, endpoint_id: UUID, *, before_id: int | None, limit: int
) -> list[asyncpg.Record]:
    """The endpoint's deliveries, newest first, with their event's type; page on with `before_id`."""
    return await conn.fetch(SELECT_DELIVERIES, endpoint_id, before_id, limit)


async def attempts_of(
    conn: asyncpg.Connection | asyncpg.Pool, delivery_ids: list[int], *, per_delivery: int
) -> dict[int, list[asyncpg.Record]]:
    """The latest `per_delivery` attempts of each delivery, newest first, in one statement."""
    found: dict[int, list[asyncpg.Record]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        for row in await conn.fetch(SELECT_ATTEMPTS, delivery_ids, per_delivery):
            found[row["delivery_id"]].append(row)
    return found


async def event_of(conn: asyncpg.Connection, event_id: int, tenant_id: UUID | None) -> asyncpg.Record | None:
    """The event's id and type, if it is the tenant's (None: any tenant's)."""
    return await conn.fetchrow(SELECT_EVENT_OF, event_id, tenant_id)


async def replay_event(conn: asyncpg.Connection, endpoint_id: UUID, event_id: int) -> int:
    """Queue a new delivery of one event to the endpoint (an event it may hear); how many were queued."""
    return len(await conn.fetch(REPLAY_EVENT, endpoint_id, event_id))


async def replay_range(
    conn: asyncpg.Connection,
    endpoint: asyncpg.Record,
    *,
    since: datetime,
    until: datetime,
    limit: int,
) -> int | None:
    """Queue a new delivery to the endpoint of each event it wants that occurred in [since, until); how
    many, or None (nothing queued) when more than `limit` match."""
    sql = REPLAY_RANGE_OF_EVERY_TENANT if endpoint["tenant_id"] is None else REPLAY_RANGE_OF_TENANT
    row = await conn.fetchrow(
        sql, endpoint["id"], since, until, limit, endpoint["tenant_id"], endpoint["event_types"]
    )
    return None if row["over"] else int(row["queued"])
