"""Redis flushed, then killed and restarted, during a provisioning wave: every accepted write is applied
(the sweeper re-enqueues what Redis lost) and nothing is applied twice in a way a user could see."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any

import redis.asyncio as aioredis

from scimsvc.web.app import create_app
from tests.conftest import Processes, make_tenant, service_env, unique_email, user_body, wait_until
from tests.test_notices import rename

WAVE = 1_200
SEATS = 300
RENAMES = 60


async def test_redis_flushed_and_restarted_mid_wave_loses_nothing_and_doubles_nothing(
    aiohttp_client,
    settings,
    db,
    database_url,
    own_redis,
    processes: Processes,
    smtp,  # noqa: F811
):
    inbox, smtp_port = smtp
    client = await aiohttp_client(create_app(dataclasses.replace(settings, redis_url=own_redis.url)))
    tenant = await make_tenant(client, seats=SEATS)
    env = service_env(
        database_url,
        redis_url=own_redis.url,
        SCIMSVC_SWEEP_AFTER_SECONDS="1",
        SCIMSVC_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
    )
    workers = [await processes.worker(env)]
    restarted_workers = 0
    created: list[dict[str, Any]] = []
    renamed: dict[str, tuple[str, str]] = {}  # user id -> (old, new) address, acknowledged
    gate = asyncio.Semaphore(16)

    async def create() -> None:
        async with gate:
            resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
            assert resp.status == 201, await resp.text()
            created.append(await resp.json())

    async def rename_one(user: dict[str, Any]) -> None:
        async with gate:
            new = unique_email("renamed")
            resp = await rename(client, tenant, user, new)
            assert resp.status == 200, await resp.text()
            renamed[user["id"]] = (user["userName"], new)

    async def wave() -> None:
        await asyncio.gather(*(create() for _ in range(WAVE)))

    async def renames() -> None:
        for i in range(0, RENAMES, 10):  # spread over the wave by its progress, some while Redis is gone
            progress = RENAMES + i * (WAVE - RENAMES) // RENAMES
            await wait_until(lambda n=progress: len(created) >= n, within=300, what=f"{progress} users")
            await asyncio.gather(*(rename_one(u) for u in created[i : i + 10]))

    async def faults() -> None:
        await wait_until(lambda: len(created) >= WAVE // 4, within=300, what="a quarter of the wave")
        admin = aioredis.from_url(own_redis.url)
        try:
            await admin.flushall()  # every queued wake-up, in-progress marker and result is gone
        finally:
            await admin.aclose()
        await wait_until(lambda: len(created) >= WAVE * 3 // 4, within=300, what="most of the wave")
        own_redis.stop()  # Redis dies; writes keep being acknowledged (PostgreSQL is the record)

    await asyncio.gather(wave(), renames(), faults())
    assert len(created) == WAVE and len(renamed) == RENAMES
    # Redis comes back empty, on the same port, after the last write: no wake-up of the front end
    # names the last quarter of the wave, only the sweeper can bring it in.
    own_redis.start()

    async def settled() -> bool:
        nonlocal restarted_workers
        # A worker that gave up on the lost Redis is restarted, as its supervisor would.
        for i, proc in enumerate(workers):
            if proc.returncode is not None:
                workers[i] = await processes.worker(env)
                restarted_workers += 1
        pending = await db.fetchval(
            "SELECT (SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL)"
            " + (SELECT count(*) FROM notices WHERE tenant_id = $1::uuid AND status = 'pending')",
            tenant.id,
        )
        return pending == 0

    await wait_until(settled, within=300, what="every accepted write and notice to be applied", every=0.25)

    users = await db.fetch(
        "SELECT id::text, user_name, license, provisioning_state FROM users WHERE tenant_id = $1::uuid",
        tenant.id,
    )
    assert {u["id"] for u in users} == {c["id"] for c in created}
    assert {u["provisioning_state"] for u in users} == {"provisioned"}
    names = {u["id"]: u["user_name"] for u in users}
    assert all(names[uid] == new for uid, (_, new) in renamed.items())
    # No seat counted twice: exactly the seats are full, and each user has one license decision audited.
    assert Counter(u["license"] for u in users) == {"full": SEATS, "free_restricted": WAVE - SEATS}
    audit = await db.fetch(
        "SELECT action, count(*) AS n, count(DISTINCT user_id) AS users FROM audit_log "
        "WHERE tenant_id = $1::uuid AND user_id IS NOT NULL GROUP BY action",  # the users' rows
        tenant.id,
    )
    assert {r["action"]: (r["n"], r["users"]) for r in audit} == {
        "allocation": (SEATS, SEATS),
        "license_change": (WAVE - SEATS, WAVE - SEATS),
        # Everyone without a seat waits for one (the waiting rule, README.md: seats and licenses).
        "waiting": (WAVE - SEATS, WAVE - SEATS),
        "email_change": (RENAMES, RENAMES),
    }
    # No double notice: one message to the old and one to the new address of each change, each once.
    expected = Counter(addr for pair in renamed.values() for addr in pair)
    received = Counter(rcpt for rcpts, _ in inbox.messages for rcpt in rcpts if rcpt in expected)
    assert received == expected, restarted_workers
