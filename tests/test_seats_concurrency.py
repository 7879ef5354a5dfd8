"""500 concurrent creates against 100 seats with 3 worker processes: exactly 100 full, nothing left over."""

from __future__ import annotations

import asyncio

from tests.conftest import service_env, unique_email, user_body, wait_until


async def test_500_creates_100_seats_3_worker_processes(client, new_tenant, db, database_url, processes):
    tenant = await new_tenant(seats=100)
    for _ in range(3):
        await processes.worker(service_env(database_url))
    gate = asyncio.Semaphore(50)

    async def create() -> int:
        async with gate:
            resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
            return resp.status

    statuses = await asyncio.gather(*(create() for _ in range(500)))
    assert statuses == [201] * 500

    async def drained() -> bool:
        return not await db.fetchval(
            "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant.id
        )

    await wait_until(drained, within=300, what="the workers to drain the outbox", every=0.25)

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
            "SELECT action, count(*) AS n FROM audit_log WHERE tenant_id = $1::uuid AND user_id IS NOT NULL "
            "GROUP BY 1",
            tenant.id,
        )
    }
    assert audit == {"allocation": 100, "license_change": 400, "waiting": 400}
    # The 400 without a seat wait in the order their users arrived (their create's outbox row, the order
    # the worker applies them in), first come first served.
    waiting = await db.fetch(
        "SELECT id FROM users WHERE tenant_id = $1::uuid AND waiting_since IS NOT NULL "
        "ORDER BY waiting_since, id",
        tenant.id,
    )
    arrived = await db.fetch(
        "SELECT o.resource_id AS id FROM outbox o JOIN users u ON u.id = o.resource_id "
        "WHERE o.tenant_id = $1::uuid AND o.resource_type = 'user' AND u.license <> 'full' ORDER BY o.id",
        tenant.id,
    )
    assert len(waiting) == 400 and [r["id"] for r in waiting] == [r["id"] for r in arrived]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM users WHERE tenant_id = $1::uuid AND provisioning_state <> 'provisioned'",
            tenant.id,
        )
        == 0
    )
