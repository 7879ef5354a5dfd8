"""What a worker tells operators: that it is alive (a heartbeat) and how each job ended (counters)."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Retry
from arq.worker import Function, func

from scimsvc import job_stats

HEARTBEAT_SECONDS = {0, 10, 20, 30, 40, 50}  # cron seconds: every 10 s


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def heartbeat(ctx: dict[str, Any]) -> None:
    """Cron job: this worker is alive; with what it runs and since when."""
    await job_stats.beat(
        ctx["redis"],
        ctx["settings"].queue_name,
        ctx["worker_id"],
        {"host": socket.gethostname(), "pid": os.getpid(), "started": ctx["worker_started"]},
    )


def counted(coroutine: Callable[..., Awaitable[Any]], *, max_tries: int | None = None) -> Function:
    """An arq job function that also counts its starts and outcomes (succeeded, retried, failed)."""

    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        redis, queue = ctx["redis"], ctx["settings"].queue_name
        await job_stats.count_job(redis, queue, "started")
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except Retry:
            await job_stats.count_job(redis, queue, "retried")
            raise
        except Exception:
            await job_stats.count_job(redis, queue, "failed")
            raise
        await job_stats.count_job(redis, queue, "succeeded")
        return result

    return func(run, name=coroutine.__name__, max_tries=max_tries)


async def started(ctx: dict[str, Any]) -> None:
    """on_startup part: name this worker and beat once at once."""
    ctx["worker_id"] = new_worker_id()
    ctx["worker_started"] = time.time()
    await heartbeat(ctx)


async def stopped(ctx: dict[str, Any]) -> None:
    """on_shutdown part: a worker that stops cleanly is no longer counted as alive."""
    if "worker_id" in ctx:
        await job_stats.forget(ctx["redis"], ctx["settings"].queue_name, ctx["worker_id"])
