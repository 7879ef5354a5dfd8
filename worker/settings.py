"""arq worker settings: `scimsvc worker` (or `arq worker.settings.WorkerSettings`) runs these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from arq.connections import RedisSettings
from arq.cron import cron

from scimsvc.contract import APPLY_OUTBOX, DELIVER_NOTICES, DELIVER_WEBHOOKS, DRAIN_TENANTS, DRAIN_USERS
from scimsvc.settings import Settings
from scimsvc.store.db import create_pool
from worker.jobs import (
    JOB_TIMEOUT_SECONDS,
    MAX_TRIES,
    apply_outbox,
    drain_tenants,
    drain_users,
    start_jobs,
    sweep_outbox,
)
from worker.notices import deliver_notices
from worker.retention import purge_expired
from worker.telemetry import counted
from worker.telemetry import started as heartbeat_started
from worker.telemetry import stopped as heartbeat_stopped
from worker.webhooks import deliver_webhooks, start_sending, stop_sending

# arq polls its queue this often (its default is 0.5 s): a wake-up waits at most this long to start, which
# is most of a small change's apply time; 10 polls a second per worker cost Redis next to nothing.
POLL_DELAY_SECONDS = 0.1
# How long the worker waits for a new Redis connection (arq's default is 1 s). arq opens them as jobs need
# them, mid-job; a connect timed out there fails the job's bookkeeping and, in burst mode, the run. A
# loopback connect took over 1 s once on a loaded machine (a clean-clone test run). The worker answers no
# client, so it can wait longer; a refused connection (Redis down) still fails at once.
REDIS_CONNECT_SECONDS = 5
# The jobs the front end and the worker queue, under the names of the contract (scimsvc/contract.py).
JOBS: dict[str, Callable[..., Awaitable[Any]]] = {
    APPLY_OUTBOX: apply_outbox,
    DRAIN_USERS: drain_users,
    DRAIN_TENANTS: drain_tenants,
    DELIVER_NOTICES: deliver_notices,
    DELIVER_WEBHOOKS: deliver_webhooks,
}


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker` built from scimsvc settings."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        start_jobs(ctx)
        ctx["pool"] = await create_pool(
            settings.database_url,
            min_size=1,
            max_size=max(2, settings.worker_max_jobs // 2),
            pooler=settings.database_pooler,
        )
        await start_sending(ctx)
        await heartbeat_started(ctx)  # a heartbeat task of this process: a cron job runs on one worker a tick

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await heartbeat_stopped(ctx)
        await stop_sending(ctx)
        if "pool" in ctx:
            await ctx["pool"].close()

    q = settings.queue_name
    return {
        # Each job counts its outcome in Redis for /ops/queue (totals across every worker).
        "functions": [counted(job, name=name) for name, job in JOBS.items()],
        "cron_jobs": [
            # Named for the queue: arq keys a cron run by its name and time alone, so two deployments (or
            # test runs) on one Redis would otherwise each skip the ticks the other ran first.
            cron(sweep_outbox, name=f"cron:sweep_outbox@{q}", second={0, 15, 30, 45}, run_at_startup=True),
            cron(purge_expired, name=f"cron:purge_expired@{q}", minute=set(range(0, 60, 5)), second=25),
            cron(
                deliver_notices, name=f"cron:deliver_notices@{q}", second={5, 20, 35, 50}, run_at_startup=True
            ),
            # Retries come due without a wake-up; a wake-up lost with Redis is covered here too.
            cron(
                deliver_webhooks,
                name=f"cron:deliver_webhooks@{q}",
                second=set(range(0, 60, 5)),
                run_at_startup=True,
            ),
        ],
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "redis_settings": replace(
            RedisSettings.from_dsn(settings.redis_url), conn_timeout=REDIS_CONNECT_SECONDS
        ),
        "queue_name": settings.queue_name,
        "health_check_interval": 10,
        "max_jobs": settings.worker_max_jobs,
        # A stop (SIGTERM/SIGINT) stops taking jobs and lets running ones finish for this long before
        # cancelling them (arq re-runs what it cancelled); 0 cancels at once.
        "job_completion_wait": settings.worker_shutdown_seconds,
        "job_timeout": JOB_TIMEOUT_SECONDS,
        "keep_result": 60,
        "max_tries": MAX_TRIES,
    }


# For `arq worker.settings.WorkerSettings`: arq reads a class's attributes; built from the environment.
WorkerSettings = type(
    "WorkerSettings", (), {**worker_settings(Settings.from_env()), "poll_delay": POLL_DELAY_SECONDS}
)
