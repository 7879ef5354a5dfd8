"""Provision N users through HTTP and report acknowledgement throughput and worker apply rate.

    .venv/bin/python bench/provision.py [--users 20000] [--concurrency 64] [--workers 1] [--no-backlog]

Two phases, each with a tenant of its own whose seats cover half of the users:
- live: N POST /Users with the worker(s) running: acks/s, ack latency p50/p99, the time until every
  user is applied, and the apply rate while the front end is busy;
- backlog: with the worker(s) stopped, N more users are acknowledged; then the worker(s) start and drain
  them: the worker's own apply rate in users/s and arq jobs/s.

Runs against the local PostgreSQL and Redis with its own database and queue (both removed at the end),
its own `scimsvc serve` and `scimsvc worker` processes (stopped by pid at the end), on 127.0.0.1 only.
Rate limiting is off: this measures provisioning (bench/ratelimit.py measures the limiter).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from harness import PENDING, REDIS_URL, SERVER, free_port

from scimsvc.ops import job_stats
from scimsvc.store.migrations import migrate


class Bench:
    """One run's database, queue and processes."""

    def __init__(self, users: int, concurrency: int, worker_count: int) -> None:
        self.users, self.concurrency, self.worker_count = users, concurrency, worker_count
        self.run = uuid.uuid4().hex[:8]
        self.db_url = f"{SERVER}/scimsvc_bench_{self.run}"
        self.queue = f"scimsvc:bench:{self.run}:queue"
        self.port = free_port()
        self.env = {
            **os.environ,
            "SCIMSVC_DATABASE_URL": self.db_url,
            "SCIMSVC_REDIS_URL": REDIS_URL,
            "SCIMSVC_QUEUE_NAME": self.queue,
            "SCIMSVC_LOG_LEVEL": "WARNING",
            "SCIMSVC_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "SCIMSVC_RATE_LIMIT_ENABLED": "false",
        }
        self.serve: asyncio.subprocess.Process | None = None
        self.workers: list[asyncio.subprocess.Process] = []
        self.redis = aioredis.from_url(REDIS_URL)

    async def cli(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scimsvc.cli", *args, env=self.env, stdout=asyncio.subprocess.PIPE
        )
        return (await proc.communicate())[0].decode()

    async def tenant(self) -> tuple[str, str]:
        """A new tenant (seats for half of the users); returns (tenant id, SCIM token)."""
        text = await self.cli(
            "tenant", "create", f"bench-{uuid.uuid4().hex[:6]}", "--seats", str(self.users // 2)
        )
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        return fields["tenant id"].strip(), fields["SCIM token"].strip()

    async def start_workers(self) -> None:
        for _ in range(self.worker_count):
            self.workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "scimsvc.cli", "worker", env=self.env
                )
            )

    async def queue_idle(self) -> None:
        """Wait (up to 5 s) until the workers have run every queued job."""
        for _ in range(100):
            if not self.workers or not await self.redis.zcard(self.queue):
                return
            await asyncio.sleep(0.05)

    async def stop_workers(self) -> None:
        await self.queue_idle()  # no job is cut off mid-way
        for proc in self.workers:
            proc.terminate()
        for proc in self.workers:
            await proc.wait()
        self.workers = []

    def cpu_seconds(self, procs: list[asyncio.subprocess.Process]) -> float:
        """User + system CPU time of these processes so far (Linux /proc)."""
        total = 0.0
        for proc in procs:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    async def jobs_done(self) -> int:
        counts = await job_stats.jobs_last_hour(self.redis, self.queue)
        return counts["succeeded"] + counts["failed"] + counts["retried"]

    async def post_users(self, token: str) -> tuple[float, list[float]]:
        """POST the users with `concurrency` clients; returns (seconds, latencies)."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        base = f"http://127.0.0.1:{self.port}/scim/v2"
        tag = uuid.uuid4().hex[:6]
        latencies: list[float] = []
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(100):
                try:
                    async with http.get(f"{base}/ServiceProviderConfig", headers=headers) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            queue = iter(range(self.users))

            async def client() -> None:
                for i in queue:
                    body = {
                        "userName": f"u{i}.{tag}@bench.example",
                        "name": {"givenName": "B", "familyName": str(i)},
                    }
                    start = time.perf_counter()
                    async with http.post(f"{base}/Users", json=body, headers=headers) as resp:
                        await resp.read()
                        assert resp.status == 201, resp.status
                    latencies.append(time.perf_counter() - start)

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(self.concurrency)))
            return time.perf_counter() - started, latencies

    async def live(self) -> dict[str, Any]:
        tenant_id, token = await self.tenant()
        await self.start_workers()
        jobs_before = await self.jobs_done()
        assert self.serve is not None
        serve_cpu, worker_cpu = self.cpu_seconds([self.serve]), self.cpu_seconds(self.workers)
        started = time.perf_counter()
        acked, latencies = await self.post_users(token)
        while await self.conn.fetchval(PENDING, tenant_id):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        applied = time.perf_counter() - started
        first, last = await self.conn.fetchrow(
            "SELECT min(created_at), max(applied_at) FROM outbox WHERE tenant_id = $1::uuid", tenant_id
        )
        await self.queue_idle()
        jobs = await self.jobs_done() - jobs_before
        serve_cpu = self.cpu_seconds([self.serve]) - serve_cpu
        worker_cpu = self.cpu_seconds(self.workers) - worker_cpu
        latencies.sort()
        return {
            "ack_per_s": round(self.users / acked, 1),
            "ack_p50_ms": round(statistics.median(latencies) * 1000, 2),
            "ack_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "all_applied_s": round(applied, 2),
            "live_apply_users_per_s": round(self.users / (last - first).total_seconds(), 1),
            "live_jobs": jobs,
            "live_jobs_per_s": round(jobs / applied, 1),
            "serve_cpu_ms_per_user": round(serve_cpu * 1000 / self.users, 3),
            "live_worker_cpu_ms_per_user": round(worker_cpu * 1000 / self.users, 3),
        }

    async def backlog(self) -> dict[str, Any]:
        await self.stop_workers()
        tenant_id, token = await self.tenant()
        acked, _ = await self.post_users(token)
        await asyncio.sleep(0.5)  # the front end's last wake-ups reach the queue
        jobs_before = await self.jobs_done()
        await self.start_workers()
        # Timed from the first applied rows to the last, so the worker's start-up is not counted.
        while (pending := await self.conn.fetchval(PENDING, tenant_id)) == self.users:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        first_seen, left = time.perf_counter(), pending
        worker_cpu = self.cpu_seconds(self.workers)
        while await self.conn.fetchval(PENDING, tenant_id):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        drained = time.perf_counter() - first_seen
        worker_cpu = self.cpu_seconds(self.workers) - worker_cpu
        await self.queue_idle()  # count the wake-ups that found their rows applied too
        jobs = await self.jobs_done() - jobs_before
        return {
            "backlog_ack_per_s": round(self.users / acked, 1),
            "backlog_apply_users_per_s": round(left / drained, 1),
            "backlog_jobs": jobs,
            "backlog_jobs_per_s": round(jobs / drained, 1),
            "backlog_worker_cpu_ms_per_user": round(worker_cpu * 1000 / left, 3),
        }

    async def __aenter__(self) -> Bench:
        await migrate(self.db_url)
        self.conn = await asyncpg.connect(self.db_url)
        self.serve = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scimsvc.cli", "serve", "--port", str(self.port), env=self.env
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_workers()
        if self.serve is not None:
            self.serve.terminate()
            await self.serve.wait()
        await self.conn.close()
        admin = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "scimsvc_bench_{self.run}" WITH (FORCE)')
        finally:
            await admin.close()
        keys = [k async for k in self.redis.scan_iter(match=f"scimsvc:bench:{self.run}:*")]
        if keys:
            await self.redis.delete(*keys)
        await self.redis.aclose()


async def main(users: int, concurrency: int, worker_count: int, backlog: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"users": users, "concurrency": concurrency, "workers": worker_count}
    async with Bench(users, concurrency, worker_count) as bench:
        figures.update(await bench.live())
        if backlog:
            figures.update(await bench.backlog())
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-backlog", dest="backlog", action="store_false", help="skip the backlog phase")
    args = parser.parse_args()
    figures = asyncio.run(main(args.users, args.concurrency, args.workers, args.backlog))
    for key, value in figures.items():
        print(f"{key:>26}: {value}")
    print(json.dumps(figures))
