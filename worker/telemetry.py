"""What a worker tells operators: that it is alive (a heartbeat), how each job ended, what retention deleted.

Outcomes go to Redis (totals of every worker for /ops/queue) and to this process's Prometheus metrics,
served on `SCIMSVC_WORKER_METRICS_PORT` (each replica is scraped; Prometheus sums them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from arq import Retry
from arq.worker import Function, func
from prometheus_client import Counter, Histogram, start_http_server
from redis.exceptions import RedisError

from scimsvc.ops import job_stats

log = logging.getLogger("scimsvc.applied")
heartbeat_log = logging.getLogger("scimsvc.heartbeat")
# Each worker beats every 10 s; /ops/queue counts it alive for SCIMSVC_WORKER_HEARTBEAT_STALE_SECONDS (30).
HEARTBEAT_INTERVAL_SECONDS = 10.0
JOBS = Counter("scimsvc_jobs", "Worker jobs by function and outcome", ["function", "outcome"])
JOB_SECONDS = Histogram(
    "scimsvc_job_duration_seconds",
    "Worker job run time by function",
    ["function"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RETENTION_ROWS_DELETED = Counter(
    "scimsvc_retention_rows_deleted", "Rows deleted by retention, by table", ["table"]
)
# Webhook attempts by outcome (delivered, failed: no 2xx answer or none at all, refused: not sent, the
# target may not be reached) and their latency; no tenant or endpoint label, so the series stay few.
WEBHOOK_ATTEMPTS = Counter("scimsvc_webhook_attempts", "Webhook delivery attempts by outcome", ["outcome"])
WEBHOOK_SECONDS = Histogram(
    "scimsvc_webhook_attempt_duration_seconds",
    "Time from sending a webhook to its answer (or to the error)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
# Not `..._endpoints_disabled`: that is the web front end's gauge of the endpoints off now (ops/metrics.py),
# and a counter of that base name would clash with it where both are scraped into one place.
WEBHOOK_ENDPOINT_DISABLINGS = Counter(
    "scimsvc_webhook_endpoint_disablings", "Webhook endpoints the worker disabled after failing too long"
)
_metrics_served = False


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def heartbeat(ctx: dict[str, Any]) -> None:
    """Record that this worker is alive; with what it runs and since when."""
    await job_stats.beat(
        ctx["redis"],
        ctx["settings"].queue_name,
        ctx["worker_id"],
        {"host": socket.gethostname(), "pid": os.getpid(), "started": ctx["worker_started"]},
    )


async def keep_beating(ctx: dict[str, Any], *, every: float = HEARTBEAT_INTERVAL_SECONDS) -> None:
    """This process's own heartbeat loop, until cancelled.

    Not an arq cron job: arq runs a cron job once per tick across all workers of a queue, so with several
    workers each would beat only now and then and look dead between beats. A failed beat (Redis down) is
    logged and the next one tried on time.
    """
    while True:
        await asyncio.sleep(every)
        try:
            await heartbeat(ctx)
        except Exception as exc:  # noqa: BLE001 - a lost beat is logged; the loop must outlive any of them
            heartbeat_log.warning("heartbeat not recorded: %r", exc)


def counted(
    coroutine: Callable[..., Awaitable[Any]], *, name: str | None = None, max_tries: int | None = None
) -> Function:
    """An arq job function, queued as `name` (default: the coroutine's), that also counts its starts and
    outcomes (succeeded, retried, failed)."""

    name = name or coroutine.__name__

    async def outcome(ctx: dict[str, Any], what: str) -> None:
        JOBS.labels(name, what).inc()
        await job_stats.count_job(ctx["redis"], ctx["settings"].queue_name, what)

    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        await outcome(ctx, "started")
        started = time.perf_counter()
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except Retry:
            await outcome(ctx, "retried")
            raise
        except Exception:
            await outcome(ctx, "failed")
            raise
        finally:
            JOB_SECONDS.labels(name).observe(time.perf_counter() - started)
        await outcome(ctx, "succeeded")
        return result

    return func(run, name=name, max_tries=max_tries)


async def started(ctx: dict[str, Any]) -> None:
    """on_startup part: serve metrics (once per process), name this worker, beat now and every 10 s."""
    global _metrics_served
    port = ctx["settings"].worker_metrics_port
    if port and not _metrics_served:
        start_http_server(port)
        _metrics_served = True
    ctx["worker_id"] = new_worker_id()
    ctx["worker_started"] = time.time()
    await heartbeat(ctx)
    ctx["heartbeat_task"] = asyncio.create_task(keep_beating(ctx), name="scimsvc-heartbeat")


async def stopped(ctx: dict[str, Any]) -> None:
    """on_shutdown part: stop beating; a worker that stops cleanly is no longer counted as alive."""
    task: asyncio.Task[None] | None = ctx.pop("heartbeat_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # no beat can land after the record is removed below
    if "worker_id" in ctx:
        try:
            await job_stats.forget(ctx["redis"], ctx["settings"].queue_name, ctx["worker_id"])
        except (RedisError, OSError) as exc:  # readers drop it once stale; shutting down goes on
            heartbeat_log.warning("heartbeat record not removed: %r", exc)


def log_applied(resource_type: str, rows: Sequence[Mapping[str, Any]], *, resource_id: Any = None) -> None:
    """One line per applied outbox row, with the request id of the IdP call that made the change.

    Following a request id through the logs leads from the web front end's line to these.
    """
    for row in rows:
        log.info(
            "applied %s change %s",
            resource_type,
            row["change"],
            extra={
                "request_id": row["request_id"],
                "resource_type": resource_type,
                "resource_id": str(row.get("resource_id") or resource_id),
                "outbox_id": row["id"],
            },
        )


def webhook_attempted(outcome: str, seconds: float) -> None:
    """Count one webhook attempt (`delivered`, `failed` or `refused`) and its latency."""
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    if outcome != "refused":
        WEBHOOK_SECONDS.observe(seconds)


def webhook_endpoint_disabled() -> None:
    """Count an endpoint the worker disabled."""
    WEBHOOK_ENDPOINT_DISABLINGS.inc()
