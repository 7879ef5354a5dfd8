"""Webhook delivery throughput: events delivered per second by one worker to one and to ten receivers.

    .venv/bin/python bench/webhooks.py [--events 5000] [--json]

For each case, `--events` events are recorded first (with `store/events.py:record_events`, deliveries
queued with them, no worker running): one tenant with one endpoint, then ten tenants with one endpoint
each (the events split between them). Then one `scimsvc worker` starts and sends them to local receivers
(aiohttp servers in this process, on 127.0.0.1, answering 200 at once, each verifying nothing: the worker
is measured, not the receivers). Reported: deliveries per second, from the first request a receiver gets
until the database says every delivery is delivered, the worker's CPU time per delivery over that span
(a figure other load on the machine moves less), the attempts recorded and the distinct webhook ids the
receivers got.

Runs against the local PostgreSQL and Redis with its own database and queue (removed at the end) and
its own worker process (stopped by pid); see bench/harness.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Run, free_port  # noqa: E402

from scimsvc.product.events import EventType, NewEvent  # noqa: E402
from scimsvc.store.events import record_events  # noqa: E402

SIGNING_KEY = "bench-webhook-signing-key"


@dataclass
class Receiver:
    """A receiver answering 200 at once; it counts the distinct webhook ids and notes the first arrival."""

    port: int = field(default_factory=free_port)
    ids: set[str] = field(default_factory=set)
    requests: int = 0
    first_at: float | None = None
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=1024).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.requests += 1
        self.ids.add(request.headers["webhook-id"])
        return web.Response(text="ok")


async def queue_events(conn: asyncpg.Connection, receivers: list[Receiver], events: int) -> None:
    """A tenant and an endpoint per receiver, and `events` events split between the tenants."""
    per_tenant = events // len(receivers)
    for receiver in receivers:
        tenant = await conn.fetchval(
            "INSERT INTO tenants (name) VALUES ($1) RETURNING id", f"bench-{uuid.uuid4().hex[:6]}"
        )
        await conn.execute(
            "INSERT INTO webhook_endpoints (tenant_id, url) VALUES ($1, $2)", tenant, receiver.url
        )
        for start in range(0, per_tenant, 1000):
            batch = [
                NewEvent(
                    EventType.USER_CREATED,
                    data={"user": {"id": str(uuid.uuid4()), "userName": f"user{start + i}@bench.example"}},
                )
                for i in range(min(1000, per_tenant - start))
            ]
            async with conn.transaction():
                await record_events(conn, tenant, batch)


async def delivered(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'"))


async def one_case(receivers_count: int, events: int) -> dict[str, Any]:
    receivers = [Receiver() for _ in range(receivers_count)]
    async with Run() as run:
        run.env |= {
            "SCIMSVC_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
            "SCIMSVC_WEBHOOK_ALLOW_HTTP": "true",
            "SCIMSVC_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        }
        for receiver in receivers:
            await receiver.start()
        try:
            await queue_events(run.conn, receivers, events)
            total = int(await run.conn.fetchval("SELECT count(*) FROM webhook_deliveries"))
            (worker,) = await run.start_workers(1)
            while not any(r.first_at for r in receivers):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            cpu_before = worker.cpu_seconds()
            while await delivered(run.conn) < total:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            done = time.perf_counter()
            cpu = worker.cpu_seconds() - cpu_before
            first = min(r.first_at for r in receivers if r.first_at is not None)
            seconds = done - first
            attempts = int(await run.conn.fetchval("SELECT count(*) FROM webhook_attempts"))
        finally:
            for receiver in receivers:
                await receiver.stop()
    return {
        "receivers": receivers_count,
        "deliveries": total,
        "seconds": round(seconds, 2),
        "per_s": round(total / seconds, 1),
        "worker_cpu_ms_per_delivery": round(1000 * cpu / total, 3),
        "attempts": attempts,
        "requests_received": sum(r.requests for r in receivers),
        "distinct_ids_received": sum(len(r.ids) for r in receivers),
    }


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=5000, help="events per case (default 5000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    results = [await one_case(n, args.events) for n in (1, 10)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{'receivers':>9} {'deliveries':>10} {'seconds':>8} {'per s':>8} {'worker CPU ms':>13} "
        f"{'attempts':>8} {'distinct':>8}"
    )
    for r in results:
        print(
            f"{r['receivers']:>9} {r['deliveries']:>10} {r['seconds']:>8} {r['per_s']:>8} "
            f"{r['worker_cpu_ms_per_delivery']:>13} {r['attempts']:>8} {r['distinct_ids_received']:>8}"
        )


if __name__ == "__main__":
    asyncio.run(main())
