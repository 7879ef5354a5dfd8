"""arq jobs: drain one resource's outbox rows in order; sweep rows that no job picked up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
from arq import Retry

from scimsvc.jobs import enqueue_apply
from scimsvc.settings import Settings
from scimsvc.store import outbox, teams
from scimsvc.store import users as user_store
from worker.groups import apply_group_changes
from worker.notices import DELIVER_NOTICES
from worker.seats import allocate_license, apply_tenant_licensing

log = logging.getLogger(__name__)

# Changes that (re)provision a user: it then joins its email domain's teams (DESIGN §5).
PROVISIONED = frozenset({"create", "relink"})

Applier = Callable[[asyncpg.Connection, UUID, list[asyncpg.Record]], Awaitable[None]]
MAX_TRIES = 5


async def apply_user_changes(conn: asyncpg.Connection, user_id: UUID, changes: list[asyncpg.Record]) -> None:
    """Bring the user's product state (provisioning state, license) to its latest desired state.

    The desired state is the user row itself, so applying any run of its changes is idempotent.
    """
    kinds = [c["change"] for c in changes]
    await allocate_license(conn, user_id, changes=kinds, request_id=changes[-1]["request_id"])
    await user_store.apply_provisioning_state(conn, user_id)
    if PROVISIONED & set(kinds):
        await teams.add_domain_members(conn, [user_id])


async def apply_tenant_changes(
    conn: asyncpg.Connection, tenant_id: UUID, changes: list[asyncpg.Record]
) -> None:
    """Re-run the tenant-wide part of allocation after its licensing settings changed."""
    await apply_tenant_licensing(conn, tenant_id, request_id=changes[-1]["request_id"])


APPLIERS: dict[str, Applier] = {
    "user": apply_user_changes,
    "tenant": apply_tenant_changes,
    "group": apply_group_changes,
}


async def apply_outbox(ctx: dict[str, Any], resource_type: str, resource_id: str) -> int:
    """Apply the resource's unapplied outbox rows in id order; returns how many were applied.

    A per-resource advisory lock serializes workers, so two jobs for one resource never interleave,
    and rows are stamped applied in the same transaction as their effect: a crash applies nothing.
    """
    pool: asyncpg.Pool = ctx["pool"]
    rid = UUID(resource_id)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.lock_resource(conn, resource_type, rid)
            rows = await outbox.pending_changes(conn, resource_type, rid)
            if not rows:
                return 0
            await APPLIERS[resource_type](conn, rid, rows)
            await outbox.mark_applied(conn, [r["id"] for r in rows])
    except Exception as exc:
        await outbox.record_failure(pool, resource_type, rid, repr(exc))
        job_try = ctx.get("job_try", 1)
        log.exception("applying %s %s failed (try %s)", resource_type, resource_id, job_try)
        if job_try < MAX_TRIES:
            raise Retry(defer=2**job_try) from exc
        raise
    if any("previous_user_name" in r["payload"] for r in rows):
        # The email-change notices were committed with the change; send them now (the cron job
        # sends them anyway if this wake-up is lost).
        await ctx["redis"].enqueue_job(DELIVER_NOTICES, _queue_name=ctx["settings"].queue_name)
    return len(rows)


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    """Re-enqueue resources whose rows are still unapplied (lost Redis, crashed worker)."""
    settings: Settings = ctx["settings"]
    stale = await outbox.stale_resources(ctx["pool"], older_than_seconds=settings.sweep_after_seconds)
    for row in stale:
        await enqueue_apply(
            ctx["redis"],
            queue_name=settings.queue_name,
            resource_type=row["resource_type"],
            resource_id=row["resource_id"],
        )
    if stale:
        log.info("sweeper re-enqueued %d resources", len(stale))
    return len(stale)
