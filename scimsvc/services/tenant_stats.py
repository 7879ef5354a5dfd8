"""Per-organization figures for operators (README.md, Operating it): one tenant's, and a bounded top list.

They replace /metrics series labelled by tenant, whose number grew with the organizations on every scrape
of every replica (scimsvc/ops/metrics.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.scim.errors import not_found
from scimsvc.scim.resources import scim_datetime
from scimsvc.store import tenant_stats as store

# The window the request counts cover, by the minute (store/tenant_stats.py).
WINDOW_SECONDS = 3600


async def tenant_stats(conn: asyncpg.Pool | asyncpg.Connection, tenant_id: UUID) -> dict[str, Any]:
    """A tenant's figures (404 if unknown)."""
    row = await store.tenant_stats(conn, tenant_id, window_seconds=WINDOW_SECONDS)
    if row is None:
        raise not_found(f"tenant {tenant_id} not found")
    used = row["seats_used"]
    return {
        "tenant_id": str(tenant_id),
        "users": row["users"],
        "active_users": row["active_users"],
        "seats": row["seats"],
        "seats_used": used,
        "seats_free": max(row["seats"] - used, 0),
        "waiting": row["waiting"],
        "groups": row["groups"],
        "active_tokens": row["active_tokens"],
        "token_last_used_at": scim_datetime(row["token_last_used_at"]),
        "outbox_pending_rows": row["outbox_pending_rows"],
        "outbox_oldest_age_seconds": _age(row["outbox_oldest_age_seconds"]),
        "last_hour": _requests(row),
    }


async def top_tenants(conn: asyncpg.Pool | asyncpg.Connection, *, by: str, limit: int) -> dict[str, Any]:
    """The tenants with the most SCIM requests, 429s or 5xx answers in the last hour: `by` one of
    schemas/tenant_stats.py's TOP_ORDERS and `limit` at most its TOP_MAX (TopTenantsQuerySchema checks
    both)."""
    rows = await store.top_tenants(conn, by=by, limit=limit, window_seconds=WINDOW_SECONDS)
    return {
        "by": by,
        "window_seconds": WINDOW_SECONDS,
        "tenants": [
            {"tenant_id": str(r["tenant_id"]), "name": r["name"], "last_hour": _requests(r)} for r in rows
        ],
    }


def _requests(row: Mapping[str, Any]) -> dict[str, int]:
    return {
        "requests": row["requests"],
        "rate_limited": row["rate_limited"],
        "server_errors": row["server_errors"],
    }


def _age(seconds: float | None) -> float | None:
    return round(seconds, 1) if seconds is not None else None
