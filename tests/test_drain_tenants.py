"""Organizations woken together are drained together: one job and one transaction for their users, each
organization decided by its own seats, waiting list, events and webhooks, and any organization that
transaction cannot take whole drained on its own (README.md, Performance)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from arq.connections import ArqRedis

from scimsvc.contract import DRAIN_TENANTS, DRAIN_TENANTS_MAX, DRAIN_USERS, ResourceType, Wakeup
from scimsvc.services.wakeups import send_wakeups, wakeups_sent
from scimsvc.settings import Settings
from scimsvc.store.db import create_pool
from scimsvc.web.keys import REDIS
from tests.conftest import clear_queue, make_tenant, post_user, refusing_apply_of, run_worker
from tests.webhook_receiver import register_endpoint
from worker.jobs import drain_tenants, start_jobs, sweep_outbox
from worker.user_drain import drain_tenant_users, drain_tenants_at_once


async def outbox_ids(db: asyncpg.Connection, tenant: Any) -> list[int]:
    rows = await db.fetch("SELECT id FROM outbox WHERE tenant_id = $1::uuid ORDER BY id", tenant.id)
    return [r["id"] for r in rows]


async def licenses_of(db: asyncpg.Connection, users: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """Each user's license and whether it waits for a seat, in the order given."""
    rows = {
        str(r["id"]): (r["license"], r["waiting_since"] is not None)
        for r in await db.fetch(
            "SELECT id, license, waiting_since FROM users WHERE id = ANY($1::uuid[])",
            [u["id"] for u in users],
        )
    }
    return [rows[u["id"]] for u in users]


async def pending(db: asyncpg.Connection, tenant: Any) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant.id
    )


async def queued(redis: ArqRedis, settings: Settings) -> list[tuple[str, tuple[Any, ...]]]:
    return sorted((j.function, j.args) for j in await redis.queued_jobs(queue_name=settings.queue_name))


def job_ctx(pool: asyncpg.Pool, settings: Settings, redis: ArqRedis) -> dict[str, Any]:
    ctx: dict[str, Any] = {"pool": pool, "settings": settings, "redis": redis, "job_try": 1}
    start_jobs(ctx)
    return ctx


async def test_organizations_woken_together_are_drained_in_one_transaction_each_by_its_own_rules(
    own_queue, db
):
    client, settings, redis = own_queue
    one_seat, two_seats, full = [await make_tenant(client, seats=s) for s in (1, 2, 1)]
    holder = await post_user(client, full)
    await wakeups_sent(client.app[REDIS])
    await run_worker(settings)  # `full`'s seat is taken
    a = [await post_user(client, one_seat) for _ in range(2)]
    b = [await post_user(client, two_seats) for _ in range(2)]
    c = [await post_user(client, full)]
    await wakeups_sent(client.app[REDIS])
    await clear_queue(redis, settings)  # the jobs of these wake-ups are run by hand below
    endpoints = [
        await register_endpoint(db, one_seat.id, "https://a.example/hook", event_types=[]),
        await register_endpoint(db, two_seats.id, "https://b.example/hook", event_types=[]),
        await register_endpoint(db, None, "https://operator.example/hook", event_types=["user.created"]),
    ]
    last_seq = "SELECT coalesce(max(seq), 0) FROM events WHERE tenant_id = $1::uuid"
    before = {t.id: await db.fetchval(last_seq, t.id) for t in (one_seat, two_seats, full)}
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        wakeups = [[one_seat.id, None], [two_seats.id, await outbox_ids(db, two_seats)], [full.id, None]]
        applied = await drain_tenants(job_ctx(pool, settings, redis), wakeups)
    finally:
        await pool.close()

    assert applied == 5
    assert await licenses_of(db, a) == [("full", False), ("free_restricted", True)]
    assert await licenses_of(db, b) == [("full", False), ("full", False)]
    assert await licenses_of(db, [holder, *c]) == [("full", False), ("free_restricted", True)]
    tenants = [one_seat.id, two_seats.id, full.id]
    transactions = await db.fetchval(
        "SELECT count(DISTINCT applied_tx) FROM outbox "
        "WHERE tenant_id = ANY($1::uuid[]) AND resource_id <> $2",
        tenants,
        uuid.UUID(holder["id"]),
    )
    assert transactions == 1
    # Each organization's events numbered on from its own last one, in the order of its users.
    for tenant, users in ((one_seat, a), (two_seats, b), (full, c)):
        events = await db.fetch(
            "SELECT seq, type, user_id::text FROM events "
            "WHERE tenant_id = $1::uuid AND seq > $2 ORDER BY seq",
            tenant.id,
            before[tenant.id],
        )
        first = before[tenant.id] + 1
        assert [e["seq"] for e in events] == list(range(first, first + 2 * len(users)))
        assert [(e["type"], e["user_id"]) for e in events] == [
            (t, u["id"]) for u in users for t in ("user.created", "license.changed")
        ]
    # Audit rows under the organization of their user.
    audit = await db.fetch(
        "SELECT tenant_id::text, user_id::text, action FROM audit_log "
        "WHERE user_id = ANY($1::uuid[]) ORDER BY id",
        [u["id"] for u in a + b + c],
    )
    order = {t: n for n, t in enumerate(tenants)}  # each organization's rows in order, organizations by id
    assert sorted((tuple(r) for r in audit), key=lambda r: order[r[0]]) == [
        (one_seat.id, a[0]["id"], "allocation"),
        (one_seat.id, a[1]["id"], "license_change"),
        (one_seat.id, a[1]["id"], "waiting"),
        (two_seats.id, b[0]["id"], "allocation"),
        (two_seats.id, b[1]["id"], "allocation"),
        (full.id, c[0]["id"], "license_change"),
        (full.id, c[0]["id"], "waiting"),
    ]
    # Each endpoint gets the events of its own organization only; the operator's, of every organization.
    delivered = {
        e: {
            (str(r["tenant_id"]), r["type"])
            for r in await db.fetch(
                "SELECT d.tenant_id, e.type FROM webhook_deliveries d JOIN events e ON e.id = d.event_id "
                "WHERE d.endpoint_id = $1",
                e,
            )
        }
        for e in endpoints
    }
    assert delivered[endpoints[0]] == {(one_seat.id, "user.created"), (one_seat.id, "license.changed")}
    assert delivered[endpoints[1]] == {(two_seats.id, "user.created"), (two_seats.id, "license.changed")}
    assert delivered[endpoints[2]] == {(t, "user.created") for t in tenants}
    await db.execute("DELETE FROM webhook_endpoints WHERE id = ANY($1::uuid[])", endpoints)
    assert await queued(redis, settings) == [("deliver_webhooks", ())]  # no organization left over


async def test_an_organization_another_drain_holds_is_left_for_a_drain_of_its_own(own_queue, db):
    client, settings, redis = own_queue
    free, held = await make_tenant(client), await make_tenant(client)
    users = [await post_user(client, free), await post_user(client, held)]
    await wakeups_sent(client.app[REDIS])
    await clear_queue(redis, settings)
    held_ids = await outbox_ids(db, held)
    other = await asyncpg.connect(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM tenants WHERE id = $1::uuid FOR NO KEY UPDATE", held.id)
            wakeups = [[free.id, await outbox_ids(db, free)], [held.id, held_ids]]
            # Not waited for: the drain takes the other organization and leaves this one.
            assert await drain_tenants(job_ctx(pool, settings, redis), wakeups) == 1
        assert await pending(db, free) == 0 and await pending(db, held) == 1
        assert await queued(redis, settings) == [(DRAIN_USERS, (held.id, held_ids))]
    finally:
        await pool.close()
        await other.close()

    worker = await run_worker(settings)
    assert worker.jobs_failed == 0 and await pending(db, held) == 0
    assert await licenses_of(db, users) == [("full", False), ("full", False)]


async def test_an_organization_with_more_rows_than_its_share_is_drained_on_its_own(
    client, new_tenant, db, settings
):
    busy, quiet = await new_tenant(), await new_tenant()
    busy_users = [await post_user(client, busy) for _ in range(3)]
    await post_user(client, quiet)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        tenants = [uuid.UUID(busy.id), uuid.UUID(quiet.id)]
        result = await drain_tenants_at_once(pool, tenants, batch_rows=2)  # a share of one row each
        assert result.applied == 2 and uuid.UUID(busy.id) in result.left
        assert await pending(db, busy) == 2
    finally:
        await pool.close()
    await wakeups_sent(client.app[REDIS])
    await run_worker(settings)  # what the wake-ups of the POSTs asked for
    assert await pending(db, busy) == 0
    assert [lic for lic, _ in await licenses_of(db, busy_users)] == ["full"] * 3


async def test_a_drain_of_many_that_fails_leaves_each_organization_to_its_own_drain(own_queue, db):
    client, settings, redis = own_queue
    poisoned, fine = await make_tenant(client), await make_tenant(client)
    poison, good = await post_user(client, poisoned), await post_user(client, poisoned)
    other = await post_user(client, fine)
    await wakeups_sent(client.app[REDIS])
    await clear_queue(redis, settings)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with refusing_apply_of(db, poison["id"]):
            wakeups = [[poisoned.id, None], [fine.id, None]]
            assert await drain_tenants(job_ctx(pool, settings, redis), wakeups) == 0
            assert await queued(redis, settings) == sorted(
                [(DRAIN_USERS, (fine.id, None)), (DRAIN_USERS, (poisoned.id, None))]
            )
            # What those jobs run: each organization's own drain, one user at a time once its batch failed.
            assert (await drain_tenant_users(pool, uuid.UUID(fine.id))).applied == 1
            result = await drain_tenant_users(pool, uuid.UUID(poisoned.id))
            assert result.applied == 1 and result.failed == [uuid.UUID(poison["id"])]
            assert await licenses_of(db, [good, other]) == [("full", False), ("full", False)]
            failed = await db.fetchrow(
                "SELECT applied_at, last_error FROM outbox WHERE resource_id = $1::uuid", poison["id"]
            )
            assert failed["applied_at"] is None and "poisoned" in failed["last_error"]
        assert (await drain_tenant_users(pool, uuid.UUID(poisoned.id))).applied == 1  # the sweeper's retry
    finally:
        await pool.close()
    assert await pending(db, poisoned) == 0


async def test_wakeups_of_many_organizations_become_one_job_per_group_of_them(own_queue):
    _, settings, redis = own_queue
    await clear_queue(redis, settings)
    tenants = sorted(uuid.uuid4() for _ in range(DRAIN_TENANTS_MAX + 2))
    wakeups = [Wakeup(t, ResourceType.USER, uuid.uuid4(), n) for n, t in enumerate(tenants)]
    await send_wakeups(redis, wakeups, queue_name=settings.queue_name)
    jobs = await queued(redis, settings)
    assert [f for f, _ in jobs] == [DRAIN_TENANTS, DRAIN_TENANTS]
    assert sorted(len(args[0]) for _, args in jobs) == [2, DRAIN_TENANTS_MAX]
    assert sorted(t for _, args in jobs for t, _ in args[0]) == sorted(str(t) for t in tenants)

    await clear_queue(redis, settings)
    await send_wakeups(redis, wakeups[:1], queue_name=settings.queue_name)
    assert await queued(redis, settings) == [(DRAIN_USERS, (str(tenants[0]), [0]))]


async def test_the_sweeper_drains_the_organizations_of_lost_wakeups_together(own_queue, db):
    client, settings, redis = own_queue
    first, second = await make_tenant(client), await make_tenant(client)
    users = [await post_user(client, first), await post_user(client, second)]
    await wakeups_sent(client.app[REDIS])
    await clear_queue(redis, settings)  # the wake-ups are lost
    await db.execute(
        "UPDATE outbox SET created_at = created_at - interval '1 hour' WHERE tenant_id = ANY($1::uuid[])",
        [first.id, second.id],
    )
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await sweep_outbox(job_ctx(pool, settings, redis))
    finally:
        await pool.close()
    drains = [args[0] for f, args in await queued(redis, settings) if f == DRAIN_TENANTS]
    assert [d for d in drains if {first.id, second.id} <= {t for t, _ in d}]  # in one job
    await run_worker(settings)
    assert await pending(db, first) == 0 and await pending(db, second) == 0
    assert await licenses_of(db, users) == [("full", False), ("full", False)]
