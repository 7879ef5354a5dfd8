"""Asking the worker for the contract's jobs (`scimsvc.contract`): arq enqueues that never raise.

Redis only carries wake-up calls: every change is committed to the outbox first, so an enqueue that fails
loses nothing (it is logged) and the worker's sweeper re-enqueues whatever is left unapplied. The front
end's waker (`scimsvc.services.wakeups`) and the worker's own jobs (`worker.jobs`) both send through here.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from arq.connections import ArqRedis

from scimsvc.contract import (
    APPLY_OUTBOX,
    DELIVER_NOTICES,
    DELIVER_WEBHOOKS,
    DRAIN_TENANTS,
    DRAIN_USERS,
    ResourceType,
)

log = logging.getLogger(__name__)


async def enqueue_apply(
    redis: ArqRedis, *, queue_name: str, resource_type: ResourceType, resource_id: UUID, wait: float = 1.0
) -> bool:
    """Ask a worker to drain the resource's outbox; False (logged) if Redis could not take the job.

    A failure loses nothing: the outbox row is committed and the sweeper re-enqueues it.
    """
    return await _enqueue(redis, queue_name, wait, APPLY_OUTBOX, str(resource_type), str(resource_id))


async def enqueue_drain_users(
    redis: ArqRedis,
    *,
    queue_name: str,
    tenant_id: UUID,
    outbox_ids: list[int] | None = None,
    wait: float = 1.0,
) -> bool:
    """Ask a worker to apply the tenant's pending user rows; `outbox_ids`: the rows this wake-up is for.

    A worker skips the job when those rows are applied already, so duplicate wake-ups cost little.
    """
    return await _enqueue(redis, queue_name, wait, DRAIN_USERS, str(tenant_id), outbox_ids)


async def enqueue_drain_tenants(
    redis: ArqRedis, *, queue_name: str, wakeups: list[tuple[UUID, list[int] | None]], wait: float = 1.0
) -> bool:
    """Ask a worker to apply the pending user rows of these tenants together (`contract.DRAIN_TENANTS_MAX`
    at most), each given with the rows its wake-up is for (None: drain it whatever)."""
    args = [[str(tenant_id), ids] for tenant_id, ids in wakeups]
    return await _enqueue(redis, queue_name, wait, DRAIN_TENANTS, args)


async def enqueue_deliver_webhooks(redis: ArqRedis, *, queue_name: str, wait: float = 1.0) -> bool:
    """Ask a worker to send the webhook deliveries that are due, after a commit that queued some.

    A failure loses nothing: the deliveries are committed and the worker's cron job finds them.
    """
    return await _enqueue(redis, queue_name, wait, DELIVER_WEBHOOKS)


async def enqueue_deliver_notices(redis: ArqRedis, *, queue_name: str, wait: float = 1.0) -> bool:
    """Ask a worker to send the notices that are due (a sign-in link by email), after their commit.

    A failure loses nothing: the notices are committed and the worker's cron job finds them.
    """
    return await _enqueue(redis, queue_name, wait, DELIVER_NOTICES)


async def _enqueue(redis: ArqRedis, queue_name: str, wait: float, function: str, *args: object) -> bool:
    try:
        await asyncio.wait_for(redis.enqueue_job(function, *args, _queue_name=queue_name), wait)
    except Exception as exc:  # noqa: BLE001 - Redis is disposable; the sweeper covers every failure
        log.warning("enqueue of %s%r failed (the sweeper will retry): %r", function, args, exc)
        return False
    return True
