"""Per-organization figures for the admin API (README.md, Operating it): what /metrics no longer labels by
tenant. Each is read on demand, for one tenant or a bounded top list, never on a scrape."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from scimsvc.store.outbox import PENDING_OF_TENANT

# Request counts come from tenant_request_minutes (the provisioning log's writer adds each batch's): the
# window is the minutes that started less than $N seconds ago, so it covers the last `window_seconds` to
# within a minute. A tenant's window is a range of the primary key, the top list one of the age index:
# one row per active tenant and minute, however many requests they counted.
TENANT_STATS = f"""
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
    FROM outbox WHERE tenant_id = t.id AND {PENDING_OF_TENANT}
) AS o
CROSS JOIN LATERAL (
    SELECT coalesce(sum(requests), 0)::bigint AS requests,
           coalesce(sum(rate_limited), 0)::bigint AS rate_limited,
           coalesce(sum(server_errors), 0)::bigint AS server_errors
    FROM tenant_request_minutes
    WHERE tenant_id = t.id AND minute > now() - make_interval(secs => $2)
) AS l
WHERE t.id = $1
"""

TOP_TENANTS = """
SELECT l.tenant_id, t.name, l.requests, l.rate_limited, l.server_errors
FROM (
    SELECT tenant_id, sum(requests)::bigint AS requests, sum(rate_limited)::bigint AS rate_limited,
           sum(server_errors)::bigint AS server_errors
    FROM tenant_request_minutes
    WHERE minute > now() - make_interval(secs => $1)
    GROUP BY tenant_id
) AS l
JOIN tenants t ON t.id = l.tenant_id
WHERE CASE $2::text WHEN 'rate_limited' THEN l.rate_limited WHEN 'server_errors' THEN l.server_errors
      ELSE l.requests END > 0
ORDER BY CASE $2::text WHEN 'rate_limited' THEN l.rate_limited WHEN 'server_errors' THEN l.server_errors
         ELSE l.requests END DESC, l.tenant_id
LIMIT $3
"""


async def tenant_stats(
    conn: asyncpg.Pool | asyncpg.Connection, tenant_id: UUID, *, window_seconds: float
) -> asyncpg.Record | None:
    """One tenant's users, seats, groups, tokens, outbox backlog and its SCIM requests (answered, refused
    with 429, failed with a 5xx) over the last `window_seconds` (by the minute); None if unknown."""
    return await conn.fetchrow(TENANT_STATS, tenant_id, window_seconds)


async def top_tenants(
    conn: asyncpg.Pool | asyncpg.Connection, *, by: str, limit: int, window_seconds: float
) -> list[asyncpg.Record]:
    """The `limit` tenants with the most requests, 429s or 5xx (`by`) over the last `window_seconds`."""
    return await conn.fetch(TOP_TENANTS, window_seconds, by, limit)
