"""SQL for sending webhook deliveries: claim the due ones with a lease, record what each attempt did, keep
endpoints' health (failing since, disabled), and the backlog operators watch.

A claim moves a delivery's `next_attempt_at` ahead by a lease: a worker killed mid-attempt leaves it due again
once the lease ends, so every delivery is sent at least once (README.md, What happened, Webhook delivery).
Deliveries are queued by `store/events.py:record_events` (and replays); endpoints are managed by the admin
API. Locks are taken in one order (endpoints by id, then deliveries by id) so that two workers recording at
once, or a worker recording while another disables the endpoint, never deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from scimsvc.contract import AuditAction
from scimsvc.store.audit import audit_action
from scimsvc.store.events import told_data

# Due deliveries, oldest due first, with their event and endpoint. A delivery of an endpoint disabled
# since it was queued is not sent: it is failed here with an attempt saying why (a replay sends it again).
CLAIM_DUE = f"""
WITH due AS (
    SELECT d.id, w.enabled, w.disabled_reason
    FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
    WHERE d.state = 'pending' AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at
    LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET
        attempts = d.attempts + CASE WHEN due.enabled THEN 1 ELSE 0 END,
        next_attempt_at = now() + make_interval(secs => $2),
        state = CASE WHEN due.enabled THEN 'pending' ELSE 'failed' END,
        finished_at = CASE WHEN due.enabled THEN NULL ELSE now() END
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, due.enabled, due.disabled_reason
), dropped AS (
    INSERT INTO webhook_attempts (delivery_id, status, latency_ms, excerpt)
    SELECT id, NULL, 0, left($3 || coalesce(' (' || disabled_reason || ')', ''), 200)
    FROM claimed WHERE NOT enabled
)
SELECT c.id, c.attempts, c.endpoint_id, w.url, w.secret_generation,
       coalesce(w.previous_until > now(), false) AS previous_valid,
       e.id AS event_id, e.type, e.tenant_id, e.seq, e.occurred_at, e.request_id, {told_data("e")} AS data
FROM claimed c
JOIN events e ON e.id = c.event_id
JOIN webhook_endpoints w ON w.id = c.endpoint_id
WHERE c.enabled
ORDER BY e.tenant_id, e.seq
"""
# An endpoint's health after a batch: a success clears `failing_since`; a failure starts it; a failure
# while it has been failing past the limit disables the endpoint. Only rows that change are locked and
# written, so a healthy endpoint's row is not rewritten on every batch.
UPDATE_ENDPOINT_HEALTH = """
WITH v AS (
    SELECT * FROM unnest($1::uuid[], $2::bool[]) AS v(id, ok)
), changing AS (
    SELECT w.id, v.ok,
           coalesce(NOT v.ok AND w.enabled AND w.failing_since <= now() - make_interval(hours => $3), false)
               AS disabling
    FROM webhook_endpoints w JOIN v ON v.id = w.id
    WHERE (v.ok AND w.failing_since IS NOT NULL)
       OR (NOT v.ok AND (w.failing_since IS NULL
                         OR (w.enabled AND w.failing_since <= now() - make_interval(hours => $3))))
    ORDER BY w.id
    FOR NO KEY UPDATE OF w  -- leaves the KEY SHARE of concurrent delivery inserts free
)
UPDATE webhook_endpoints w SET
    failing_since = CASE WHEN c.ok THEN NULL ELSE coalesce(w.failing_since, now()) END,
    enabled = w.enabled AND NOT c.disabling,
    disabled_reason = CASE WHEN c.disabling THEN $4 ELSE w.disabled_reason END,
    updated_at = CASE WHEN c.disabling THEN now() ELSE w.updated_at END
FROM changing c
WHERE w.id = c.id
RETURNING w.id, w.tenant_id, w.url, c.disabling
"""
# Each attempt, and what it makes of its delivery: delivered; failed once it has been retried for the
# whole retry period; else due again after the backoff. Only the claim's holder moves a pending delivery
# (its `attempts` are still the claim's): a recorder that outlived its lease, whose delivery another worker
# has claimed since, must not replace that worker's lease with its backoff. A delivered attempt counts
# whoever made it, even on a delivery failed meanwhile (its endpoint was disabled while it was being sent):
# the receiver has the event. A delivery deleted with its endpoint while being sent gets no attempt row
# (locking the rows that exist makes a concurrent delete wait, or be seen).
RECORD_ATTEMPTS = """
WITH v AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::real[], $5::text[], $6::bool[], $7::float8[])
        AS v(id, claimed, status, latency_ms, excerpt, delivered, retry_in)
), live AS (
    SELECT d.id, d.state, d.attempts, d.created_at <= now() - make_interval(hours => $8) AS expired
    FROM webhook_deliveries d JOIN v ON v.id = d.id
    ORDER BY d.id
    FOR UPDATE OF d
), attempts AS (
    INSERT INTO webhook_attempts (delivery_id, status, latency_ms, excerpt)
    SELECT v.id, v.status, v.latency_ms, v.excerpt FROM v JOIN live l ON l.id = v.id
)
UPDATE webhook_deliveries d SET
    state = CASE WHEN v.delivered THEN 'delivered' WHEN l.expired THEN 'failed' ELSE 'pending' END,
    finished_at = CASE WHEN v.delivered OR l.expired THEN now() END,
    next_attempt_at = CASE WHEN v.delivered OR l.expired THEN d.next_attempt_at
                           ELSE now() + make_interval(secs => v.retry_in) END
FROM v JOIN live l ON l.id = v.id
WHERE d.id = v.id
  AND ((l.state = 'pending' AND l.attempts = v.claimed) OR (v.delivered AND l.state <> 'delivered'))
"""
# What was still pending for endpoints just disabled is not sent: failed, with an attempt saying why (the
# batch's own deliveries, $3, have theirs already). One another lane is sending right now is failed too;
# if its answer is a 2xx, RECORD_ATTEMPTS makes it delivered.
FAIL_PENDING_OF_ENDPOINTS = """
WITH locked AS (
    SELECT id FROM webhook_deliveries
    WHERE endpoint_id = ANY ($1::uuid[]) AND state = 'pending'
    ORDER BY id
    FOR UPDATE
), failed AS (
    UPDATE webhook_deliveries d SET state = 'failed', finished_at = now()
    FROM locked WHERE d.id = locked.id
    RETURNING d.id
)
INSERT INTO webhook_attempts (delivery_id, status, latency_ms, excerpt)
SELECT id, NULL, 0, $2 FROM failed WHERE id <> ALL ($3::bigint[])
"""
# Locks are taken in order, but a batch's own deliveries and the pending ones of an endpoint it disables
# are two statements: a rare cycle with another worker is run again rather than reasoned away.
DEADLOCK_TRIES = 3
ANY_PENDING = "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE state = 'pending')"
# The backlog, set-based over the pending deliveries' partial indexes (the oldest: the first entry of
# webhook_deliveries_pending_age, migration 0018) and the endpoints table.
BACKLOG = """
SELECT
    (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending') AS pending,
    (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= now()) AS due,
    (SELECT extract(epoch FROM now() - min(created_at))::float8
     FROM webhook_deliveries WHERE state = 'pending') AS oldest_age,
    (SELECT extract(epoch FROM now() - min(next_attempt_at))::float8
     FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= now()) AS oldest_due_age,
    (SELECT count(*) FROM webhook_endpoints WHERE enabled AND failing_since IS NOT NULL) AS failing,
    (SELECT count(*) FROM webhook_endpoints WHERE NOT enabled) AS disabled
"""
# The endpoints failing longest, for the operator's view: the host only (a URL's path or query may hold
# a receiver's own token). Each one's pending deliveries are counted in webhook_deliveries_pending_endpoint
# (migration 0018), not among every delivery it ever had.
FAILING_ENDPOINTS = """
SELECT w.id, w.tenant_id, t.name AS tenant_name, w.url, w.enabled, w.disabled_reason,
       extract(epoch FROM now() - w.failing_since)::float8 AS failing_for,
       (SELECT count(*) FROM webhook_deliveries d
        WHERE d.endpoint_id = w.id AND d.state = 'pending') AS pending
FROM webhook_endpoints w LEFT JOIN tenants t ON t.id = w.tenant_id
WHERE w.failing_since IS NOT NULL
ORDER BY w.failing_since
LIMIT $1
"""


@dataclass(frozen=True)
class Attempt:
    """What one attempt of one delivery did: `status` None when no answer came (or none was asked)."""

    delivery_id: int
    claimed_attempts: int  # the delivery's `attempts` as its claim made them: the claim is still ours
    endpoint_id: UUID
    status: int | None
    latency_ms: float
    excerpt: str
    delivered: bool
    retry_in_seconds: float  # when not delivered: the backoff before the next attempt


@dataclass(frozen=True)
class DisabledEndpoint:
    """An endpoint this batch disabled: it had been failing for longer than the limit."""

    id: UUID
    tenant_id: UUID | None
    url: str


@dataclass(frozen=True)
class Backlog:
    """The deliveries waiting and the endpoints in trouble, across every tenant."""

    pending: int  # deliveries not yet delivered nor given up
    due: int  # pending deliveries whose time has come (not waiting for a retry or a lease)
    oldest_age_seconds: float | None  # the oldest pending delivery (≈ its event's age)
    oldest_due_seconds: float | None  # how long the longest-due delivery has waited for a worker
    failing_endpoints: int  # enabled, their last attempts failed
    disabled_endpoints: int


async def claim_due(
    pool: asyncpg.Pool, *, limit: int, lease_seconds: float, not_sent: str
) -> list[asyncpg.Record]:
    """Claim up to `limit` due deliveries for `lease_seconds`, with their event and endpoint, in
    (tenant, sequence) order; deliveries of disabled endpoints are failed instead (`not_sent` says why)."""
    return await pool.fetch(CLAIM_DUE, limit, float(lease_seconds), not_sent)


async def record_attempts(
    pool: asyncpg.Pool,
    attempts: list[Attempt],
    *,
    retry_hours: int,
    disable_after_hours: int,
    disabled_reason: str,
    not_sent: str,
) -> list[DisabledEndpoint]:
    """Record a batch's attempts, their deliveries' new state and their endpoints' health in one
    transaction; an endpoint failing past `disable_after_hours` is disabled, audited, and its pending
    deliveries failed. Returns the endpoints disabled."""
    if not attempts:
        return []
    health: dict[UUID, bool] = {}
    for a in attempts:  # one success in the batch clears the endpoint's failing streak
        health[a.endpoint_id] = health.get(a.endpoint_id, False) or a.delivered
    for tries_left in reversed(range(DEADLOCK_TRIES)):
        try:
            return await _record(
                pool,
                attempts,
                health,
                retry_hours=retry_hours,
                disable_after_hours=disable_after_hours,
                disabled_reason=disabled_reason,
                not_sent=not_sent,
            )
        except asyncpg.DeadlockDetectedError:
            if not tries_left:
                raise
    raise AssertionError("unreachable")


async def _record(
    pool: asyncpg.Pool,
    attempts: list[Attempt],
    health: dict[UUID, bool],
    *,
    retry_hours: int,
    disable_after_hours: int,
    disabled_reason: str,
    not_sent: str,
) -> list[DisabledEndpoint]:
    ids = sorted(health)
    async with pool.acquire() as conn, conn.transaction():
        changed = await conn.fetch(
            UPDATE_ENDPOINT_HEALTH,
            ids,
            [health[i] for i in ids],
            disable_after_hours,
            disabled_reason,
        )
        await conn.execute(
            RECORD_ATTEMPTS,
            [a.delivery_id for a in attempts],
            [a.claimed_attempts for a in attempts],
            [a.status for a in attempts],
            [a.latency_ms for a in attempts],
            [a.excerpt for a in attempts],
            [a.delivered for a in attempts],
            [a.retry_in_seconds for a in attempts],
            retry_hours,
        )
        disabled = [
            DisabledEndpoint(id=r["id"], tenant_id=r["tenant_id"], url=r["url"])
            for r in changed
            if r["disabling"]
        ]
        for endpoint in disabled:  # rare: one row each
            await audit_action(
                conn,
                endpoint.tenant_id,
                AuditAction.WEBHOOK_DISABLED,
                actor="worker",
                detail={"endpoint_id": str(endpoint.id), "reason": disabled_reason},
            )
        if disabled:
            batch = [a.delivery_id for a in attempts]
            await conn.execute(FAIL_PENDING_OF_ENDPOINTS, [e.id for e in disabled], not_sent, batch)
    return disabled


async def any_pending(conn: asyncpg.Pool | asyncpg.Connection) -> bool:
    """Whether any delivery waits to be sent."""
    found: bool = await conn.fetchval(ANY_PENDING)
    return found


async def backlog(conn: asyncpg.Pool | asyncpg.Connection) -> Backlog:
    """The webhook backlog across every tenant (for /ops/queue and the metrics)."""
    row = await conn.fetchrow(BACKLOG)
    return Backlog(
        pending=row["pending"],
        due=row["due"],
        oldest_age_seconds=_rounded(row["oldest_age"]),
        oldest_due_seconds=_rounded(row["oldest_due_age"]),
        failing_endpoints=row["failing"],
        disabled_endpoints=row["disabled"],
    )


async def failing_endpoints(conn: asyncpg.Pool | asyncpg.Connection, *, limit: int) -> list[dict[str, Any]]:
    """The endpoints failing longest (enabled or disabled), each with its pending deliveries; the URL's
    host only."""
    return [
        {
            "id": str(r["id"]),
            "tenant_id": str(r["tenant_id"]) if r["tenant_id"] else None,
            "tenant_name": r["tenant_name"],
            "host": urlsplit(r["url"]).hostname or "",
            "enabled": r["enabled"],
            "disabled_reason": r["disabled_reason"],
            "failing_for_seconds": _rounded(r["failing_for"]),
            "pending_deliveries": r["pending"],
        }
        for r in await conn.fetch(FAILING_ENDPOINTS, limit)
    ]


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(max(seconds, 0.0), 1)
