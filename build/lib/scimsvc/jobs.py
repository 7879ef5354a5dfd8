"""Waking the worker: enqueueing an arq job that drains one resource's outbox rows."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from arq.connections import ArqRedis

APPLY_OUTBOX = "apply_outbox"

log = logging.getLogger(__name__)


async def enqueue_apply(
    redis: ArqRedis, *, queue_name: str, resource_type: str, resource_id: UUID, wait: float = 1.0
) -> bool:
    """Ask a worker to drain the resource's outbox; False (logged) if Redis could not take the job.

    A failure loses nothing: the outbox row is committed and the sweeper re-enqueues it.
    """
    try:
        await asyncio.wait_for(
            redis.enqueue_job(APPLY_OUTBOX, resource_type, str(resource_id), _queue_name=queue_name),
            wait,
        )
    except Exception as exc:  # noqa: BLE001 - Redis is disposable; the sweeper covers every failure
        log.warning("enqueue failed for %s %s (the sweeper will retry): %r", resource_type, resource_id, exc)
        return False
    return True
