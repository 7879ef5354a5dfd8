"""A worker killed with SIGKILL in the middle of applying a change: a new worker ends exactly where an
uninterrupted one would have."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import asyncpg

from scimsvc.web.app import create_app
from tests.conftest import OwnRedis, Processes, make_tenant, service_env, unique_email, user_body, wait_until
from tests.test_groups import make_group

PUSH_MEMBERS = 20_000
WAVE = 2_000
SEATS = 700


async def blocked_on(db: asyncpg.Connection, statement: str) -> bool:
    """A backend of this database waits for a lock in the middle of `statement` (the worker's apply)."""
    return bool(
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query ILIKE $1",
            f"%{statement}%",
        )
    )


async def unapplied(db: asyncpg.Connection, tenant_id: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant_id
    )


async def all_applied(db: asyncpg.Connection, tenant_id: str) -> bool:
    return await unapplied(db, tenant_id) == 0


async def app_on(aiohttp_client: Any, settings: Any, redis: OwnRedis) -> Any:
    # A private Redis: the killed worker's job stays "in progress" there, out of every other test's queue.
    return await aiohttp_client(create_app(dataclasses.replace(settings, redis_url=redis.url)))


async def test_worker_killed_mid_push_of_20k_members_then_a_new_worker_makes_the_team_exact(
    aiohttp_client, settings, db, database_url, own_redis, processes: Processes
):
    client = await app_on(aiohttp_client, settings, own_redis)
    tenant = await make_tenant(client)
    ids = [
        r[0]
        for r in await db.fetch(
            "INSERT INTO users (tenant_id, user_name, resource) "
            "SELECT $1::uuid, n, jsonb_build_object('userName', n) FROM "
            "(SELECT 'push' || i || '@example.com' AS n FROM generate_series(1, $2::int) AS i) AS s "
            "RETURNING id::text",
            tenant.id,
            PUSH_MEMBERS + 3_500,
        )
    ]
    env = service_env(database_url, redis_url=own_redis.url, SCIMSVC_SWEEP_AFTER_SECONDS="0")
    group = await make_group(client, tenant, ids[:5_000])
    team_id = str(await db.fetchval("SELECT team_id FROM groups WHERE id = $1::uuid", group["id"]))
    await db.execute(  # added by hand on the product side: a push removes them
        "INSERT INTO team_members (team_id, user_id, added_by) SELECT $1::uuid, u, 'admin' "
        "FROM unnest($2::uuid[]) AS u ON CONFLICT DO NOTHING",
        team_id,
        ids[-500:],
    )
    worker = await processes.worker(env)
    await wait_until(lambda: all_applied(db, tenant.id), within=300, what="the group's link to apply")
    # Statistics as autovacuum would have them after such a load, whatever earlier tests left behind.
    await db.execute("ANALYZE users, group_members, team_members")

    pushed = ids[3_000:-500]  # 20,000: 2,000 stay, 3,000 leave, 18,000 join; the 500 by hand leave
    blocker = await asyncpg.connect(database_url)
    try:
        # The test holds one of the new members' team rows in an open transaction: the push's insert waits
        # on it halfway through, after the removals and part of the additions.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "INSERT INTO team_members (team_id, user_id, added_by) VALUES ($1::uuid, $2::uuid, 'admin')",
            team_id,
            pushed[PUSH_MEMBERS // 2],
        )
        resp = await client.put(
            f"/scim/v2/Groups/{group['id']}",
            json={"displayName": group["displayName"], "members": [{"value": m} for m in pushed]},
            headers=tenant.headers,
        )
        assert resp.status == 200, await resp.text()
        await wait_until(
            lambda: blocked_on(db, "INSERT INTO team_members"), within=300, what="the push mid-apply"
        )
        await processes.kill(worker)
        await tx.rollback()
    finally:
        await blocker.close()

    await processes.worker(env)  # its start-up sweep re-enqueues the group
    await wait_until(lambda: all_applied(db, tenant.id), within=300, what="the new worker to apply the push")
    members = await db.fetch(
        "SELECT user_id::text, added_by FROM team_members WHERE team_id = $1::uuid", team_id
    )
    assert {r["user_id"] for r in members} == set(pushed)
    assert {r["added_by"] for r in members} == {"scim"}
    licenses = await db.fetchval(
        "SELECT count(*) FROM users WHERE tenant_id = $1::uuid AND license IS NOT NULL", tenant.id
    )
    assert licenses == 0  # a push never touches licenses


async def test_worker_killed_mid_provisioning_wave_then_a_new_worker_allocates_seats_exactly_once(
    aiohttp_client, settings, db, database_url, own_redis, processes: Processes
):
    client = await app_on(aiohttp_client, settings, own_redis)
    tenant = await make_tenant(client, seats=SEATS)
    env = service_env(database_url, redis_url=own_redis.url, SCIMSVC_SWEEP_AFTER_SECONDS="0")
    gate = asyncio.Semaphore(32)

    async def create() -> str:
        async with gate:
            resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
            assert resp.status == 201, await resp.text()
            return (await resp.json())["id"]

    await asyncio.gather(*(create() for _ in range(WAVE)))
    # First come, first served: the order of the users' create rows in the outbox.
    fifo = [
        r[0]
        for r in await db.fetch(
            "SELECT resource_id::text FROM outbox WHERE tenant_id = $1::uuid AND resource_type = 'user' "
            "ORDER BY id",
            tenant.id,
        )
    ]
    assert len(fifo) == WAVE

    blocker = await asyncpg.connect(database_url)
    try:
        # A user of the third batch of 500 is locked by the test: the worker commits two batches and stops
        # halfway through the third, where it is killed.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM users WHERE id = $1::uuid FOR UPDATE", fifo[1_200])
        worker = await processes.worker(env)
        await wait_until(lambda: blocked_on(db, "UPDATE users"), within=300, what="the wave mid-apply")
        applied_before_kill = WAVE - await unapplied(db, tenant.id)
        await processes.kill(worker)
        await tx.rollback()
    finally:
        await blocker.close()
    assert 0 < applied_before_kill < WAVE

    await processes.worker(env)
    await wait_until(lambda: all_applied(db, tenant.id), within=300, what="the new worker to finish the wave")
    rows = await db.fetch(
        "SELECT id::text, license, provisioning_state FROM users WHERE tenant_id = $1::uuid", tenant.id
    )
    license_of = {r["id"]: r["license"] for r in rows}
    assert [license_of[u] for u in fifo] == ["full"] * SEATS + ["free_restricted"] * (WAVE - SEATS)
    assert {r["provisioning_state"] for r in rows} == {"provisioned"}
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
    }
    attempts = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant.id
    )
    assert attempts == 0
