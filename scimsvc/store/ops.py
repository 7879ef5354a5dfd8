"""What operators watch in the database: how far the worker is behind on the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from scimsvc.store.outbox import PENDING_BY_AGE

OUTBOX_TOTALS = f"""
SELECT count(*) AS pending, count(*) FILTER (WHERE attempts > 0) AS failing,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_age
FROM outbox WHERE {PENDING_BY_AGE}
"""
OLDEST_BY_TENANT = f"""
SELECT o.tenant_id, t.name, o.pending, extract(epoch FROM now() - o.oldest)::float8 AS oldest_age
FROM (
    SELECT tenant_id, count(*) AS pending, min(created_at) AS oldest
    FROM outbox WHERE {PENDING_BY_AGE} GROUP BY tenant_id
) AS o
JOIN tenants t ON t.id = o.tenant_id
ORDER BY o.oldest
LIMIT $1
"""


@dataclass(frozen=True)
class OutboxLag:
    pending_rows: int
    failing_rows: int  # unapplied rows whose last attempt failed (they are retried)
    oldest_age_seconds: float | None
    by_tenant: list[dict[str, Any]]  # the tenants waiting longest


async def outbox_lag(conn: asyncpg.Pool | asyncpg.Connection, *, limit: int) -> OutboxLag:
    totals = await conn.fetchrow(OUTBOX_TOTALS)
    rows = await conn.fetch(OLDEST_BY_TENANT, limit) if totals["pending"] and limit else []
    return OutboxLag(
        pending_rows=totals["pending"],
        failing_rows=totals["failing"],
        oldest_age_seconds=round(totals["oldest_age"], 1) if totals["oldest_age"] is not None else None,
        by_tenant=[
            {
                "tenant_id": str(r["tenant_id"]),
                "name": r["name"],
                "pending_rows": r["pending"],
                "oldest_age_seconds": round(r["oldest_age"], 1),
            }
            for r in rows
        ],
    )


# One set-based pass: the full licenses of every tenant (the users_tenant_full index), joined to the tenants.
SEAT_TOTALS = """
WITH used AS (SELECT tenant_id, count(*) AS used FROM users WHERE license = 'full' GROUP BY tenant_id)
SELECT count(*) AS tenants, coalesce(sum(t.seats), 0)::bigint AS seats,
       coalesce(sum(u.used), 0)::bigint AS used,
       count(*) FILTER (WHERE u.used > t.seats) AS over_allocated
FROM tenants t LEFT JOIN used u ON u.tenant_id = t.id
"""


async def seat_totals(conn: asyncpg.Pool | asyncpg.Connection) -> asyncpg.Record:
    """Tenants, their seats and full licenses held in all, and how many hold more than their seats."""
    row = await conn.fetchrow(SEAT_TOTALS)
    assert row is not None  # an aggregate always has its one row
    return row
