"""Every worker process reports itself: with several `scimsvc worker` processes on one queue, /ops/queue
counts each of them alive for as long as it runs, and forgets one that stops cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from scimsvc.ops import job_stats
from scimsvc.web.app import create_app
from tests.conftest import ADMIN_HEADERS, RUN_ID, Processes, free_port, service_env, wait_until
from worker.telemetry import keep_beating

WORKERS = 3
WATCH_SECONDS = 65  # longer than the staleness limit (30 s) twice over: a worker that misses beats shows


async def queue_report(client: Any) -> dict[str, Any]:
    resp = await client.get("/ops/queue", headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_each_of_three_workers_stays_alive_on_every_read_for_a_minute(
    aiohttp_client, settings, processes: Processes
):
    queue_name = f"scimsvc:test:{RUN_ID}:heartbeats:{uuid.uuid4().hex[:6]}"
    client = await aiohttp_client(create_app(dataclasses.replace(settings, queue_name=queue_name)))
    env = service_env(settings.database_url, queue_name=queue_name)
    workers = [await processes.worker(env) for _ in range(WORKERS)]
    pids = {w.pid for w in workers}

    async def all_beating() -> bool:
        assert all(w.returncode is None for w in workers), "a scimsvc worker exited"
        report = await queue_report(client)
        return {w["pid"] for w in report["workers"]} == pids and report["live_workers"] == WORKERS

    await wait_until(all_beating, within=90, what=f"{WORKERS} workers to report themselves", every=0.5)

    reads, started = 0, time.monotonic()
    while time.monotonic() - started < WATCH_SECONDS:
        report = await queue_report(client)
        reads += 1
        assert all(w.returncode is None for w in workers), "a scimsvc worker exited"
        assert report["live_workers"] == WORKERS, (reads, report["workers"])
        assert {w["pid"] for w in report["workers"]} == pids, (reads, report["workers"])
        await asyncio.sleep(1)
    assert reads >= 10  # the loop above really read along the whole minute

    # One stops cleanly (SIGTERM; a SIGKILL after 60 s would not exit 0): its record is gone the moment it
    # has exited, the others stay alive.
    leaving = workers[0]
    assert await processes.stop(leaving) == 0
    report = await queue_report(client)
    assert leaving.pid not in {w["pid"] for w in report["workers"]}
    assert report["live_workers"] == WORKERS - 1


async def test_the_heartbeat_loop_outlives_failed_beats_and_beats_once_redis_answers(settings, caplog):
    """Beats that fail (Redis unreachable) are logged and the loop goes on; the next reachable one lands."""
    queue_name = f"scimsvc:test:{RUN_ID}:heartbeats:{uuid.uuid4().hex[:6]}"
    unreachable = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    reachable = aioredis.from_url(settings.redis_url)
    ctx: dict[str, Any] = {
        "redis": unreachable,
        "settings": dataclasses.replace(settings, queue_name=queue_name),
        "worker_id": "test-worker-" + uuid.uuid4().hex[:6],
        "worker_started": time.time(),
    }
    loop = asyncio.create_task(keep_beating(ctx, every=0.05))
    try:
        with caplog.at_level(logging.WARNING, logger="scimsvc.heartbeat"):

            def failed_beats() -> int:
                assert not loop.done(), "the heartbeat loop ended on a failed beat"
                return sum("heartbeat not recorded" in r.getMessage() for r in caplog.records)

            await wait_until(lambda: failed_beats() >= 3, within=60, what="three failed beats")
        assert not loop.done()

        ctx["redis"] = reachable
        await wait_until(
            lambda: _has_beat(reachable, queue_name, ctx["worker_id"]), within=60, what="a beat in Redis"
        )
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await unreachable.aclose()
        await reachable.aclose()


async def _has_beat(redis: aioredis.Redis, queue: str, worker_id: str) -> bool:
    return any(w["id"] == worker_id for w in await job_stats.workers(redis, queue))
