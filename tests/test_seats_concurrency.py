"""500 concurrent creates against 100 seats with 3 worker processes: exactly 100 full, nothing left over."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from tests.conftest import QUEUE_NAME, REDIS_URL, unique_email, user_body


async def test_500_creates_100_seats_3_worker_processes(client, new_tenant, db, database_url):
    tenant = await new_tenant(seats=100)
    env = {
        **os.environ,
        "SCIMSVC_DATABASE_URL": database_url,
        "SCIMSVC_REDIS_URL": REDIS_URL,
        "SCIMSVC_QUEUE_NAME": QUEUE_NAME,
        "SCIMSVC_LOG_LEVEL": "WARNING",
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scimsvc.cli",
            "worker",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    try:
        gate = asyncio.Semaphore(50)

        async def create() -> int:
            async with gate:
                resp = await client.post(
                    "/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers
                )
                return resp.status

        statuses = await asyncio.gather(*(create() for _ in range(500)))
        assert statuses == [201] * 500

        deadline = time.monotonic() + 90
        while await db.fetchval(
            "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant.id
        ):
            assert time.monotonic() < deadline, "the workers did not drain the outbox in 90 s"
            await asyncio.sleep(0.25)
    finally:
        for proc in workers:  # only the processes this test started
            proc.terminate()
        for proc in workers:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()

    licenses = {
        r["license"]: r["n"]
        for r in await db.fetch(
            "SELECT license, count(*) AS n FROM users WHERE tenant_id = $1::uuid GROUP BY 1", tenant.id
        )
    }
    assert licenses == {"full": 100, "free_restricted": 400}
    audit = {
        r["action"]: r["n"]
        for r in await db.fetch(
            "SELECT action, count(*) AS n FROM audit_log WHERE tenant_id = $1::uuid GROUP BY 1", tenant.id
        )
    }
    assert audit == {"allocation": 100, "license_change": 400}
    assert (
        await db.fetchval(
            "SELECT count(*) FROM users WHERE tenant_id = $1::uuid AND provisioning_state <> 'provisioned'",
            tenant.id,
        )
        == 0
    )
