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
    DRAIN_TENANTS_MAX,
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


async def enqueue_user_drains(
    redis: ArqRedis, *, queue_name: str, wakeups: list[tuple[UUID, list[int] | None]], wait: float = 1.0
) -> None:
    """Ask the workers to apply the pending user rows of these tenants, each given with the rows its wake-up
    is for (None: drain it whatever): tenants woken together are drained together, one `DRAIN_TENANTS` job
    for up to `DRAIN_TENANTS_MAX` of them (the worker applies them in one transaction); a tenant alone gets
    a `DRAIN_USERS` job."""
    chunks = [wakeups[i : i + DRAIN_TENANTS_MAX] for i in range(0, len(wakeups), DRAIN_TENANTS_MAX)]
    await asyncio.gather(
        *(
            _enqueue(redis, queue_name, wait, DRAIN_TENANTS, [[str(t), ids] for t, ids in chunk])
            if len(chunk) > 1
            else enqueue_drain_users(
                redis, queue_name=queue_name, tenant_id=chunk[0][0], outbox_ids=chunk[0][1], wait=wait
            )
            for chunk in chunks
        )
    )


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
