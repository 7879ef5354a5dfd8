"""Per-organization figures for the admin API (README.md, Operating it): what /metrics no longer labels by
tenant. Each is read on demand, for one tenant or a bounded top list, never on a scrape."""

from __future__ import annotations

from uuid import UUID

import asyncpg

# The provisioning log's first row of the window, through its age index: rows are written in id order
# as they happen, so the window of one tenant is then a range of its (tenant_id, id) index.
WINDOW_START = """
SELECT id FROM provisioning_log WHERE at >= now() - make_interval(secs => $1) ORDER BY at LIMIT 1
"""

TENANT_STATS = """
SELECT t.seats,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id) AS users,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.active) AS active_users,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.license = 'full') AS seats_used,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.waiting_since IS NOT NULL) AS waiting,
       (SELECT count(*) FROM groups g WHERE g.tenant_id = t.id) AS groups,
       (SELECT count(*) FROM scim_tokens k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL
            AND (k.expires_at IS NULL OR k.expires_at > now())) AS active_tokens,
       (SELECT max(k.last_used_at) FROM scim_tokens k WHERE k.tenant_id = t.id) AS token_last_used_at,
       o.pending AS outbox_pending_rows, o.oldest_age AS outbox_oldest_age_seconds,
       l.requests, l.rate_limited, l.server_errors
FROM tenants t
CROSS JOIN LATERAL (
    SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at))::float8 AS oldest_age
    FROM outbox WHERE tenant_id = t.id AND applied_at IS NULL
) AS o
CROSS JOIN LATERAL (
    SELECT count(*) AS requests, count(*) FILTER (WHERE status = 429) AS rate_limited,
           count(*) FILTER (WHERE status >= 500) AS server_errors
    FROM provisioning_log WHERE tenant_id = t.id AND id >= $2
) AS l
WHERE t.id = $1
"""

TOP_TENANTS = """
SELECT l.tenant_id, t.name, l.requests, l.rate_limited, l.server_errors
FROM (
    SELECT tenant_id, count(*) AS requests, count(*) FILTER (WHERE status = 429) AS rate_limited,
           count(*) FILTER (WHERE status >= 500) AS server_errors
    FROM provisioning_log WHERE id >= $1 GROUP BY tenant_id
) AS l
JOIN tenants t ON t.id = l.tenant_id
WHERE CASE $2::text WHEN 'rate_limited' THEN l.rate_limited WHEN 'server_errors' THEN l.server_errors
      ELSE l.requests END > 0
ORDER BY CASE $2::text WHEN 'rate_limited' THEN l.rate_limited WHEN 'server_errors' THEN l.server_errors
         ELSE l.requests END DESC, l.tenant_id
LIMIT $3
"""

# Beyond every id: a window with no row of the log counts nothing.
NO_ROWS = 2**63 - 1


async def _window_start(conn: asyncpg.Pool | asyncpg.Connection, seconds: float) -> int:
    first = await conn.fetchval(WINDOW_START, seconds)
    return NO_ROWS if first is None else int(first)


async def tenant_stats(
    conn: asyncpg.Pool | asyncpg.Connection, tenant_id: UUID, *, window_seconds: float
) -> asyncpg.Record | None:
    """One tenant's users, seats, groups, tokens, outbox backlog and its SCIM requests (answered, refused
    with 429, failed with a 5xx) over the last `window_seconds` of the provisioning log; None if unknown."""
    start = await _window_start(conn, window_seconds)
    return await conn.fetchrow(TENANT_STATS, tenant_id, start)


async def top_tenants(
    conn: asyncpg.Pool | asyncpg.Connection, *, by: str, limit: int, window_seconds: float
) -> list[asyncpg.Record]:
    """The `limit` tenants with the most requests, 429s or 5xx (`by`) over the last `window_seconds`."""
    start = await _window_start(conn, window_seconds)
    return await conn.fetch(TOP_TENANTS, start, by, limit)
