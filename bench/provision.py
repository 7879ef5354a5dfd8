"""Provision N users through HTTP and report acknowledgement throughput and worker apply rate.

    .venv/bin/python bench/provision.py [--users 20000] [--concurrency 64] [--workers 1]

Runs against the local PostgreSQL and Redis with its own database and queue (both removed at the end),
its own `scimsvc serve` and `scimsvc worker` processes (stopped by pid at the end), on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
import uuid

import aiohttp
import asyncpg

from scimsvc.store.migrations import migrate

SERVER = os.environ.get("SCIMSVC_BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main(users: int, concurrency: int, worker_count: int) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    db_url = f"{SERVER}/scimsvc_bench_{run}"
    port = free_port()
    env = {
        **os.environ,
        "SCIMSVC_DATABASE_URL": db_url,
        "SCIMSVC_QUEUE_NAME": f"scimsvc:bench:{run}:queue",
        "SCIMSVC_LOG_LEVEL": "WARNING",
        "SCIMSVC_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    await migrate(db_url)
    procs = []
    try:
        out = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scimsvc.cli",
            "tenant",
            "create",
            "bench",
            "--seats",
            str(users // 2),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        text = (await out.communicate())[0].decode()
        token = next(line.split()[-1] for line in text.splitlines() if line.startswith("SCIM token:"))
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "scimsvc.cli", "serve", "--port", str(port), env=env
            )
        )
        for _ in range(worker_count):
            procs.append(
                await asyncio.create_subprocess_exec(sys.executable, "-m", "scimsvc.cli", "worker", env=env)
            )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        base = f"http://127.0.0.1:{port}/scim/v2"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
            for _ in range(100):
                try:
                    async with http.get(f"{base}/ServiceProviderConfig", headers=headers) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            latencies: list[float] = []
            queue = iter(range(users))

            async def client() -> None:
                for i in queue:
                    body = {
                        "userName": f"u{i}.{run}@bench.example",
                        "name": {"givenName": "B", "familyName": str(i)},
                    }
                    start = time.perf_counter()
                    async with http.post(f"{base}/Users", json=body, headers=headers) as resp:
                        await resp.read()
                        assert resp.status == 201, resp.status
                    latencies.append(time.perf_counter() - start)

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            acked = time.perf_counter() - started
        conn = await asyncpg.connect(db_url)
        try:
            while await conn.fetchval("SELECT count(*) FROM outbox WHERE applied_at IS NULL"):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            applied = time.perf_counter() - started
            first, last = await conn.fetchrow("SELECT min(created_at), max(applied_at) FROM outbox")
        finally:
            await conn.close()
        latencies.sort()
        return {
            "users": users,
            "concurrency": concurrency,
            "workers": worker_count,
            "ack_per_s": round(users / acked, 1),
            "ack_p50_ms": round(statistics.median(latencies) * 1000, 2),
            "ack_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "all_applied_s": round(applied, 2),
            "apply_jobs_per_s": round(users / (last - first).total_seconds(), 1),
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await proc.wait()
        admin = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "scimsvc_bench_{run}" WITH (FORCE)')
        finally:
            await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    figures = asyncio.run(main(args.users, args.concurrency, args.workers))
    for key, value in figures.items():
        print(f"{key:>18}: {value}")
    print(json.dumps(figures))
