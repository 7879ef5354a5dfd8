"""The worker applies a tenant's pending users in batches: first come first served, FIFO waiting list,
duplicate wake-ups collapse, and one user that cannot be applied never holds up the others."""

from __future__ import annotations

import asyncio
import uuid

from scimsvc.services.wakeups import wakeups_sent
from scimsvc.store import licenses
from scimsvc.store.db import create_pool
from scimsvc.web.keys import REDIS
from tests.conftest import make_tenant, post_user, refusing_apply_of, run_worker
from worker import statistics
from worker.jobs import drain_users, start_jobs
from worker.user_drain import drain_tenant_users

PRODUCT = "urn:scimsvc:schemas:extension:product:2.0:User"


async def deactivate(client, tenant, user):
    patch = {"Operations": [{"op": "replace", "value": {"active": False}}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200, await resp.text()


async def license_of(db, user):
    return await db.fetchrow("SELECT license, waiting_since FROM users WHERE id = $1::uuid", user["id"])


async def test_many_pending_users_are_applied_in_one_batch_seats_in_arrival_order(
    client, new_tenant, db, settings
):
    tenant = await new_tenant(seats=3)
    users = [await post_user(client, tenant) for _ in range(10)]

    await run_worker(settings)

    licenses = [(await license_of(db, u))["license"] for u in users]
    assert licenses == ["full"] * 3 + ["free_restricted"] * 7
    batches = await db.fetchval(
        "SELECT count(DISTINCT applied_at) FROM outbox WHERE tenant_id = $1::uuid", tenant.id
    )
    assert batches == 1  # one transaction applied all ten users
    audit = await db.fetch(
        "SELECT user_id::text, action, actor FROM audit_log "
        "WHERE tenant_id = $1::uuid AND user_id IS NOT NULL ORDER BY id",
        tenant.id,
    )
    # The waiting rule: the seven who fell back for lack of a seat wait for one, in arrival order.
    assert [tuple(a) for a in audit] == [(u["id"], "allocation", "worker") for u in users[:3]] + [
        row
        for u in users[3:]
        for row in ((u["id"], "license_change", "worker"), (u["id"], "waiting", "worker"))
    ]
    waiting = await db.fetch(
        "SELECT id::text FROM users WHERE tenant_id = $1::uuid AND waiting_since IS NOT NULL "
        "ORDER BY waiting_since, id",
        tenant.id,
    )
    assert [w["id"] for w in waiting] == [u["id"] for u in users[3:]]
    states = await db.fetch(
        "SELECT DISTINCT provisioning_state FROM users WHERE tenant_id = $1::uuid", tenant.id
    )
    assert [s["provisioning_state"] for s in states] == ["provisioned"]


async def test_seat_freed_in_a_batch_goes_to_the_oldest_waiting_user_not_a_newcomer(
    client, new_tenant, db, settings
):
    tenant = await new_tenant(seats=1)
    holder = await post_user(client, tenant)
    await run_worker(settings)
    waiting = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    assert (await license_of(db, waiting))["waiting_since"] is not None

    # One batch: the holder leaves, then a newcomer arrives.
    await deactivate(client, tenant, holder)
    newcomer = await post_user(client, tenant)
    await run_worker(settings)

    assert (await license_of(db, holder))["license"] is None
    assert tuple(await license_of(db, waiting)) == ("full", None)
    assert (await license_of(db, newcomer))["license"] == "free_restricted"
    actions = await db.fetch(
        "SELECT user_id::text, action FROM audit_log WHERE tenant_id = $1::uuid AND user_id IS NOT NULL "
        "ORDER BY id",
        tenant.id,
    )
    assert (waiting["id"], "promotion") in [tuple(a) for a in actions]


async def test_waiting_user_in_a_batch_keeps_its_place_in_the_queue(client, new_tenant, db, settings):
    tenant = await new_tenant(seats=1)
    holder = await post_user(client, tenant)
    await run_worker(settings)
    first = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    second = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    second_since = (await license_of(db, second))["waiting_since"]

    # The younger waiter changes (its row is in the batch) while the seat frees: the older one gets it.
    patch = {"Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}]}
    await client.patch(f"/scim/v2/Users/{second['id']}", json=patch, headers=tenant.headers)
    await deactivate(client, tenant, holder)
    await run_worker(settings)

    assert tuple(await license_of(db, first)) == ("full", None)
    assert tuple(await license_of(db, second)) == ("free_restricted", second_since)


async def test_waiting_user_in_a_batch_gets_the_seat_before_a_younger_waiter(
    client, new_tenant, db, settings
):
    tenant = await new_tenant(seats=1)
    holder = await post_user(client, tenant)
    await run_worker(settings)
    first = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    second = await post_user(client, tenant, userType="Full")
    await run_worker(settings)

    patch = {"Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}]}
    await client.patch(f"/scim/v2/Users/{first['id']}", json=patch, headers=tenant.headers)
    await deactivate(client, tenant, holder)
    await run_worker(settings)

    assert (await license_of(db, first))["license"] == "full"
    assert (await license_of(db, second))["waiting_since"] is not None


async def test_wakeups_for_a_burst_of_writes_collapse_into_few_jobs(own_queue, db):
    client, own, redis = own_queue
    tenant = await make_tenant(client, seats=5)
    users = await asyncio.gather(*(post_user(client, tenant) for _ in range(40)))
    await wakeups_sent(client.app[REDIS])

    jobs = await redis.zcard(own.queue_name)
    assert 1 <= jobs < 40  # one drain per tenant per round of enqueues, not one job per user

    worker = await run_worker(own)
    assert worker.jobs_failed == 0
    applied = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NOT NULL", tenant.id
    )
    assert applied == len(users)
    full = await db.fetchval(
        "SELECT count(*) FROM users WHERE tenant_id = $1::uuid AND license = 'full'", tenant.id
    )
    assert full == 5


async def test_a_wakeup_whose_rows_are_applied_does_nothing(client, tenant, db, settings):
    user = await post_user(client, tenant)
    await run_worker(settings)
    row_id = await db.fetchval("SELECT id FROM outbox WHERE resource_id = $1::uuid", user["id"])
    before = await db.fetchrow("SELECT applied_at, attempts FROM outbox WHERE id = $1", row_id)

    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        ctx = {"pool": pool, "settings": settings, "redis": None, "job_try": 1}
        start_jobs(ctx)
        assert await drain_users(ctx, tenant.id, [row_id]) == 0
        assert await drain_users(ctx, tenant.id) == 0  # a drain with nothing pending changes nothing
    finally:
        await pool.close()
    assert await db.fetchrow("SELECT applied_at, attempts FROM outbox WHERE id = $1", row_id) == before


async def test_a_user_that_cannot_be_applied_does_not_hold_up_the_others(client, new_tenant, db, settings):
    tenant = await new_tenant(seats=2)
    users = [await post_user(client, tenant) for _ in range(3)]
    poison = await post_user(client, tenant)
    users += [await post_user(client, tenant) for _ in range(2)]
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with refusing_apply_of(db, poison["id"]):
            result = await drain_tenant_users(pool, uuid.UUID(tenant.id))
    finally:
        await pool.close()

    assert result.failed == [uuid.UUID(poison["id"])] and result.applied == 5
    licenses = [(await license_of(db, u))["license"] for u in users]
    assert licenses == ["full", "full", "free_restricted", "free_restricted", "free_restricted"]
    failed = await db.fetchrow(
        "SELECT applied_at, attempts, last_error FROM outbox WHERE resource_id = $1::uuid", poison["id"]
    )
    assert failed["applied_at"] is None and failed["attempts"] == 1 and "poisoned" in failed["last_error"]

    await run_worker(settings)  # fixed: the next drain applies it
    assert (await license_of(db, poison))["license"] == "free_restricted"


async def test_wakeups_running_together_in_one_worker_drain_once(client, new_tenant, db, settings):
    tenant = await new_tenant(seats=2)
    users = [await post_user(client, tenant) for _ in range(5)]
    ids = [
        r["id"]
        for r in await db.fetch("SELECT id FROM outbox WHERE tenant_id = $1::uuid ORDER BY id", tenant.id)
    ]
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    tenant_locks: list[str] = []  # every statement that takes the tenant's allocation lock
    held = [await pool.acquire() for _ in range(4)]  # each of the pool's connections, once
    for conn in held:
        conn.add_query_logger(
            lambda q: tenant_locks.append(q.query) if q.query == licenses.LOCK_TENANT_LICENSING else None
        )
        await pool.release(conn)
    try:
        worker = {"pool": pool, "settings": settings, "redis": None}
        start_jobs(worker)
        # As arq runs them: each job with a copy of the worker's startup ctx.
        jobs = [drain_users({**worker, "job_try": 1}, tenant.id, ids[i:]) for i in range(5)]
        applied = await asyncio.gather(*jobs)
    finally:
        await pool.close()
    assert sorted(applied) == [0, 0, 0, 0, len(users)]
    # One drain took the tenant lock; the other four waited for it in the worker and found their rows
    # applied, holding no connection and queueing on no lock.
    assert len(tenant_locks) == 1
    assert (
        await db.fetchval(
            "SELECT count(DISTINCT applied_at) FROM outbox WHERE tenant_id = $1::uuid", tenant.id
        )
        == 1
    )


async def test_a_worker_that_applied_many_new_users_analyzes_them(
    client, new_tenant, db, settings, monkeypatch
):
    # An organization's import makes the planner's statistics stale for it (worker/statistics.py).
    monkeypatch.setattr(statistics, "ANALYZE_AFTER_CREATES", 3)
    last_analyze = (
        "SELECT coalesce(extract(epoch FROM last_analyze), 0) "
        "FROM pg_stat_user_tables WHERE relname = 'users'"
    )
    tenant = await new_tenant()
    before = await db.fetchval(last_analyze)
    for _ in range(2):
        await post_user(client, tenant)
    await run_worker(settings)  # two new users: not enough
    assert await db.fetchval(last_analyze) == before
    for _ in range(3):
        await post_user(client, tenant)
    await run_worker(settings)
    assert await db.fetchval(last_analyze) > before
    # The table's size counted anew (exact: a test database's table is smaller than the sample).
    assert await db.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'users'") == await db.fetchval(
        "SELECT count(*) FROM users"
    )
