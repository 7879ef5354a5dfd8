"""arq jobs: drain outbox rows in order (users per tenant, in batches; others per resource); sweep.

The jobs and what their rows may say are named in `scimsvc.contract`; worker/settings.py registers them.
Every applied change's events are recorded in the transaction that applies it (`SCIMSVC_EVENTS`, README.md,
What happened); a commit that queued webhook deliveries wakes their deliverer.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
from arq import Retry

from scimsvc.contract import DELIVER_NOTICES, ChangeKind, ResourceType
from scimsvc.enqueue import enqueue_apply, enqueue_deliver_webhooks, enqueue_drain_users, enqueue_user_drains
from scimsvc.product.events import NewEvent
from scimsvc.settings import Settings
from scimsvc.store import licenses, outbox
from scimsvc.store.events import record_events
from worker.groups import apply_group_changes
from worker.seats import apply_manual_assignments, apply_tenant_licensing, follow_license_rules
from worker.statistics import UsersStatistics
from worker.telemetry import log_applied
from worker.user_drain import DrainResult, drain_tenant_users, drain_tenants_at_once

log = logging.getLogger(__name__)

# An applier applies a run of one resource's rows and returns the events of what changed.
Applier = Callable[[asyncpg.Connection, UUID, list[asyncpg.Record]], Awaitable[list[NewEvent]]]
MAX_TRIES = 5
# arq cancels a job running longer than this (worker/settings.py); long jobs plan their work within it.
JOB_TIMEOUT_SECONDS = 300
# A licensing row with one of these keys changed who waits or which license a user gets (flexible licenses
# turned on or off, SCIM turned back on; migration 0021): every user is decided again
# (worker/seats.py:follow_license_rules) before the row is marked applied.
RULE_KEYS = frozenset({"flexible_licenses", "scim_enabled"})


def rule_changed(rows: list[asyncpg.Record]) -> bool:
    """Whether these tenant rows change the license rules (`RULE_KEYS`)."""
    return any(r["change"] == ChangeKind.LICENSING and RULE_KEYS & (r["payload"] or {}).keys() for r in rows)


async def apply_tenant_changes(
    conn: asyncpg.Connection, tenant_id: UUID, changes: list[asyncpg.Record]
) -> list[NewEvent]:
    """Apply operators' assignments, then re-run the tenant-wide part of allocation: seats freed or added
    go to the waiting list."""
    events: list[NewEvent] = []
    assignments = [c for c in changes if c["change"] == ChangeKind.MANUAL_LICENSE]
    if assignments:
        events += await apply_manual_assignments(conn, tenant_id, assignments)
    return events + await apply_tenant_licensing(conn, tenant_id, request_id=changes[-1]["request_id"])


USER_DRAINS = "user_drains"  # ctx key: the running user drain of each tenant in this process
USERS_STATISTICS = "users_statistics"  # ctx key: when this process analyzes `users` (worker/statistics.py)


def start_jobs(ctx: dict[str, Any]) -> None:
    """Set up, at the worker's startup, what its jobs share. arq hands each job a copy of the startup ctx:
    a value one job adds to its own ctx is seen by no other job."""
    ctx[USER_DRAINS] = weakref.WeakValueDictionary()
    ctx[USERS_STATISTICS] = UsersStatistics()


# Users are not in APPLIERS: they are drained per tenant, in batches (`drain_users`, worker/user_drain.py).
APPLIERS: dict[ResourceType, Applier] = {
    ResourceType.TENANT: apply_tenant_changes,
    ResourceType.GROUP: apply_group_changes,
}


async def drain_users(ctx: dict[str, Any], tenant_id: str, outbox_ids: list[int] | None = None) -> int:
    """Apply the tenant's pending user rows in batches; returns how many rows were applied.

    `outbox_ids` are the rows that caused the wake-up: when a drain has applied them already, the job is a
    duplicate and does nothing, so bursts of wake-ups for one tenant collapse into a few drains.
    """
    pool: asyncpg.Pool = ctx["pool"]
    settings: Settings = ctx["settings"]
    job_try = ctx.get("job_try", 1)
    tid = UUID(tenant_id)
    # Wake-ups that arrive together run together: in this process they wait for the tenant's running
    # drain and then, mostly, find their rows applied, instead of queueing on the tenant lock.
    drains: weakref.WeakValueDictionary[UUID, asyncio.Lock] = ctx[USER_DRAINS]
    running = drains.setdefault(tid, asyncio.Lock())
    async with running:
        if outbox_ids and job_try == 1 and not await outbox.any_unapplied(pool, outbox_ids):
            return 0
        result = await drain_tenant_users(pool, tid, events=settings.events)
    await _after_drain(ctx, result)
    if result.more:
        await enqueue_drain_users(ctx["redis"], queue_name=settings.queue_name, tenant_id=tid)
    if result.failed:
        log.error("%d users of tenant %s could not be applied (try %s)", len(result.failed), tid, job_try)
        if job_try < MAX_TRIES:
            raise Retry(defer=2**job_try)
    return result.applied


async def drain_tenants(ctx: dict[str, Any], wakeups: list[list[Any]]) -> int:
    """Apply the pending user rows of tenants woken together, in one transaction
    (worker/user_drain.py:drain_tenants_at_once); returns how many rows were applied. `wakeups`: [tenant_id,
    outbox_ids or None] pairs, as `drain_users` takes them.

    Tenants whose rows a drain has applied already are left out; a tenant the transaction could not take
    whole (another drain holds it, it has more rows than its share, the transaction failed) gets a
    `drain_users` job of its own.
    """
    pool: asyncpg.Pool = ctx["pool"]
    settings: Settings = ctx["settings"]
    ids_of: dict[UUID, list[int] | None] = {UUID(t): ids for t, ids in wakeups}
    given = [i for ids in ids_of.values() if ids for i in ids]
    pending = await outbox.tenants_with_unapplied(pool, given) if given else set()
    tenants = [t for t, ids in ids_of.items() if not ids or t in pending]
    if not tenants:
        return 0
    result = await drain_tenants_at_once(pool, tenants, events=settings.events)
    await _after_drain(ctx, result)
    for tid in result.left:
        await enqueue_drain_users(
            ctx["redis"], queue_name=settings.queue_name, tenant_id=tid, outbox_ids=ids_of[tid]
        )
    return result.applied


async def _after_drain(ctx: dict[str, Any], result: DrainResult) -> None:
    """What follows a drain's commits: the statistics' count of new users, the webhook deliverer woken for
    the deliveries its events queued, the email-change notices sent."""
    await ctx[USERS_STATISTICS].after_drain(ctx["pool"], result.created)
    if result.deliveries:
        await enqueue_deliver_webhooks(ctx["redis"], queue_name=ctx["settings"].queue_name)
    if result.email_changed:
        await _send_notices(ctx)


async def apply_outbox(ctx: dict[str, Any], resource_type: str, resource_id: str) -> int:
    """Apply the resource's unapplied outbox rows in id order; returns how many were applied.

    A per-resource advisory lock serializes workers, so two jobs for one resource never interleave,
    and rows are stamped applied in the same transaction as their effect: a crash applies nothing.
    A user is applied by draining its tenant (its rows and any others pending there).
    """
    pool: asyncpg.Pool = ctx["pool"]
    settings: Settings = ctx["settings"]
    kind, rid = ResourceType(resource_type), UUID(resource_id)
    deliveries = 0
    if kind == ResourceType.USER:
        tenant_id = await outbox.pending_tenant(pool, kind, rid)
        return 0 if tenant_id is None else await drain_users(ctx, str(tenant_id))
    try:
        seen = 0  # a tenant's rows up to this id were read before its users were decided again (if at all)
        if kind == ResourceType.TENANT:
            seen, deliveries = await _follow_rules(pool, rid, events=settings.events)
        async with pool.acquire() as conn, conn.transaction():
            await outbox.lock_resource(conn, kind, rid)
            if kind == ResourceType.TENANT:
                # The tenant's allocation lock before its rows are read: an operator's assignment is
                # committed under it, so none committed meanwhile is left out while a seat it was
                # promised goes to the waiting list (worker/seats.py).
                await licenses.lock_tenant_licensing(conn, rid)
            rows = await outbox.pending_changes(conn, kind, rid)
            if kind == ResourceType.TENANT and rule_changed([r for r in rows if r["id"] > seen]):
                # A rule change recorded since the users were decided waits for its own run.
                rows = [r for r in rows if r["id"] <= seen]
                await enqueue_apply(
                    ctx["redis"], queue_name=settings.queue_name, resource_type=kind, resource_id=rid
                )
            if not rows:
                return 0
            events = await APPLIERS[kind](conn, rid, rows)
            if settings.events:
                deliveries += await record_events(conn, rows[0]["tenant_id"], events)
            await outbox.mark_applied(conn, [r["id"] for r in rows])
    except Exception as exc:
        await outbox.record_failure(pool, kind, rid, repr(exc))
        job_try = ctx.get("job_try", 1)
        log.exception("applying %s %s failed (try %s)", resource_type, resource_id, job_try)
        if job_try < MAX_TRIES:
            raise Retry(defer=2**job_try) from exc
        raise
    log_applied(kind, rows, resource_id=rid)
    if deliveries:
        await enqueue_deliver_webhooks(ctx["redis"], queue_name=settings.queue_name)
    if any("previous_user_name" in r["payload"] for r in rows):
        await _send_notices(ctx)
    return len(rows)


async def _follow_rules(pool: asyncpg.Pool, tenant_id: UUID, *, events: bool) -> tuple[int, int]:
    """When the tenant's pending rows change its license rules, decide every user again, in batches of
    their own transactions (worker/seats.py:follow_license_rules), before the rows are marked applied:
    returns the last row id read (rows after it were not seen) and the webhook deliveries queued."""
    rows = await outbox.pending_changes(pool, ResourceType.TENANT, tenant_id)
    if not rule_changed(rows):
        return (rows[-1]["id"] if rows else 0), 0
    request_id = [r for r in rows if r["change"] == ChangeKind.LICENSING][-1]["request_id"]
    deliveries = await follow_license_rules(pool, tenant_id, request_id=request_id, events=events)
    return rows[-1]["id"], deliveries


async def _send_notices(ctx: dict[str, Any]) -> None:
    # The email-change notices were committed with the change; send them now (the cron job sends them
    # anyway if this wake-up is lost).
    await ctx["redis"].enqueue_job(DELIVER_NOTICES, _queue_name=ctx["settings"].queue_name)


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    """Re-enqueue resources whose rows are still unapplied (lost Redis, crashed worker).

    Users are re-enqueued as drains of their tenants, together (`enqueue_user_drains`).
    """
    settings: Settings = ctx["settings"]
    stale = await outbox.stale_resources(ctx["pool"], older_than_seconds=settings.sweep_after_seconds)
    tenants: dict[UUID, None] = {}
    for row in stale:
        kind = ResourceType(row["resource_type"])
        if kind == ResourceType.USER:
            tenants[row["tenant_id"]] = None
            continue
        await enqueue_apply(
            ctx["redis"],
            queue_name=settings.queue_name,
            resource_type=kind,
            resource_id=row["resource_id"],
        )
    await enqueue_user_drains(
        ctx["redis"], queue_name=settings.queue_name, wakeups=[(t, None) for t in tenants]
    )
    if stale:
        log.info("sweeper re-enqueued %d resources", len(stale))
    return len(stale)
