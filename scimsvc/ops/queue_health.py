"""Whether provisioning keeps up: the arq queue, the outbox lag, worker heartbeats, and a verdict."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from arq.constants import health_check_key_suffix, in_progress_key_prefix, retry_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError

from scimsvc.ops import job_stats
from scimsvc.settings import Settings
from scimsvc.store import ops, webhook_deliveries

INSPECT_JOBS = 1000  # jobs in progress are the oldest in the queue: look at this many for them
FAILING_ENDPOINTS_SHOWN = 10
NO_SIGNING_KEY = "webhook deliveries wait: SCIMSVC_WEBHOOK_SIGNING_KEY is empty, so they cannot be signed"


def queue_status(
    *,
    pending_rows: int,
    oldest_age_seconds: float | None,
    live_workers: int,
    failed_last_hour: int,
    degraded_after: float,
    stalled_after: float,
    webhooks_due_seconds: float | None = None,
) -> tuple[str, list[str]]:
    """ok, degraded or stalled, with the reasons an operator should read.

    `webhooks_due_seconds`: how long the longest-due webhook delivery has waited for a worker. Past
    `degraded_after` the deliverers do not keep up: degraded, never stalled (provisioning goes on). A
    receiver that is down does not count: its deliveries wait for their retry, they are not due.
    """
    stalled, degraded = [], []
    if pending_rows and live_workers == 0:
        stalled.append(f"{pending_rows} outbox rows wait and no worker is alive")
    if oldest_age_seconds is not None and oldest_age_seconds > stalled_after:
        stalled.append(
            f"the oldest unapplied change is {oldest_age_seconds:.0f} s old (limit {stalled_after:.0f} s)"
        )
    elif oldest_age_seconds is not None and oldest_age_seconds > degraded_after:
        degraded.append(
            f"the oldest unapplied change is {oldest_age_seconds:.0f} s old (over {degraded_after:.0f} s)"
        )
    if webhooks_due_seconds is not None and webhooks_due_seconds > degraded_after:
        degraded.append(
            f"a due webhook delivery has waited {webhooks_due_seconds:.0f} s for a worker "
            f"(over {degraded_after:.0f} s)"
        )
    if failed_last_hour:
        degraded.append(f"{failed_last_hour} jobs failed in the last hour")
    if live_workers == 0 and not pending_rows:
        degraded.append("no worker heartbeat: new changes would wait")
    if stalled:
        return "stalled", stalled + degraded
    if degraded:
        return "degraded", degraded
    return "ok", []


async def _arq_queue(redis: Redis, queue: str) -> dict[str, Any]:
    queued = await redis.zcard(queue)
    job_ids = await redis.zrange(queue, 0, INSPECT_JOBS - 1)
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            jid = job_id.decode() if isinstance(job_id, bytes) else job_id
            pipe.exists(in_progress_key_prefix + jid)
            pipe.exists(retry_key_prefix + jid)
        flags = await pipe.execute() if job_ids else []
        pipe.get(queue + health_check_key_suffix)
        pipe.pttl(queue + health_check_key_suffix)
        health, ttl = await pipe.execute()
    in_progress = sum(flags[0::2])
    return {
        "queued": queued,
        "in_progress": in_progress,
        "waiting": queued - in_progress,
        "retrying": sum(flags[1::2]),
        "arq_health_check": {
            "value": health.decode() if isinstance(health, bytes) else health,
            "expires_in_seconds": round(ttl / 1000, 1) if ttl and ttl > 0 else None,
        },
    }


async def queue_health(pool: asyncpg.Pool, redis: Redis, settings: Settings) -> dict[str, Any]:
    """Everything `/ops/queue` shows. Redis being down is reported, not raised."""
    now = time.time()
    lag = await ops.outbox_lag(pool, limit=10)
    body: dict[str, Any] = {
        "outbox": {
            "pending_rows": lag.pending_rows,
            "failing_rows": lag.failing_rows,
            "oldest_age_seconds": lag.oldest_age_seconds,
            "oldest_by_tenant": lag.by_tenant,
        },
        "webhooks": await webhooks_part(pool),
    }
    try:
        body["queue"] = await _arq_queue(redis, settings.queue_name)
        body["jobs_last_hour"] = await job_stats.jobs_last_hour(redis, settings.queue_name, now=now)
        body["workers"] = await job_stats.workers(redis, settings.queue_name, now=now)
    except (RedisError, OSError) as exc:
        body["redis_error"] = repr(exc)
        body["queue"], body["jobs_last_hour"], body["workers"] = None, None, []
    stale = settings.worker_heartbeat_stale_seconds
    live = [w for w in body["workers"] if w["age_seconds"] <= stale]
    failed = (body["jobs_last_hour"] or {}).get("failed", 0)
    status, reasons = queue_status(
        pending_rows=lag.pending_rows,
        oldest_age_seconds=lag.oldest_age_seconds,
        live_workers=len(live),
        failed_last_hour=failed,
        degraded_after=settings.queue_degraded_after_seconds,
        stalled_after=settings.queue_stalled_after_seconds,
        webhooks_due_seconds=body["webhooks"]["oldest_due_seconds"],
    )
    if body["webhooks"]["pending_deliveries"] and not settings.webhook_signing_key:
        status, reasons = ("degraded" if status == "ok" else status), [*reasons, NO_SIGNING_KEY]
    if "redis_error" in body:
        status, reasons = "stalled", ["Redis cannot be reached: jobs cannot be queued", *reasons]
    body["live_workers"] = len(live)
    body["status"], body["reasons"] = status, reasons
    return body


async def webhooks_part(pool: asyncpg.Pool) -> dict[str, Any]:
    """The webhook deliveries waiting, the oldest undelivered event's age, and the endpoints in trouble."""
    backlog = await webhook_deliveries.backlog(pool)
    shown = (
        await webhook_deliveries.failing_endpoints(pool, limit=FAILING_ENDPOINTS_SHOWN)
        if backlog.failing_endpoints or backlog.disabled_endpoints
        else []
    )
    return {
        "pending_deliveries": backlog.pending,
        "due_deliveries": backlog.due,
        "oldest_undelivered_age_seconds": backlog.oldest_age_seconds,
        "oldest_due_seconds": backlog.oldest_due_seconds,
        "failing_endpoints": backlog.failing_endpoints,
        "disabled_endpoints": backlog.disabled_endpoints,
        "endpoints_failing_longest": shown,
    }
