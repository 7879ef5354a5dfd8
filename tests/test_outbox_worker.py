"""Every write commits an outbox row; the worker drains it; the sweeper recovers what Redis lost."""

from __future__ import annotations

import asyncio
import dataclasses

from tests.conftest import run_worker, unique_email, user_body


async def pending(db, user_id: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM outbox WHERE resource_id = $1::uuid AND applied_at IS NULL", user_id
    )


async def test_each_write_commits_an_outbox_row_with_the_user(client, tenant, db):
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    user = await resp.json()
    rows = await db.fetch(
        "SELECT change, tenant_id::text, resource_type, request_id FROM outbox WHERE resource_id = $1::uuid",
        user["id"],
    )
    assert [(r["change"], r["tenant_id"], r["resource_type"]) for r in rows] == [
        ("create", tenant.id, "user")
    ]
    assert rows[0]["request_id"] == resp.headers["X-Request-Id"]
    assert user["urn:scimsvc:schemas:extension:product:2.0:User"]["provisioningState"] == "pending"


async def test_worker_drains_the_outbox_in_order_and_records_state(client, tenant, db, settings):
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    user = await resp.json()
    patch = {"Operations": [{"op": "replace", "value": {"active": False}}]}
    await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert await pending(db, user["id"]) == 2

    await run_worker(settings)

    assert await pending(db, user["id"]) == 0
    row = await db.fetchrow(
        "SELECT provisioning_state, provisioned_at FROM users WHERE id = $1::uuid", user["id"]
    )
    # Deactivated before the worker first applied it: never provisioned, so no provisionedAt.
    assert row["provisioning_state"] == "deprovisioned" and row["provisioned_at"] is None
    resp = await client.get(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)
    assert (await resp.json())["urn:scimsvc:schemas:extension:product:2.0:User"][
        "provisioningState"
    ] == "deprovisioned"

    # Running again (a duplicate job) changes nothing.
    applied = await db.fetch(
        "SELECT id, applied_at FROM outbox WHERE resource_id = $1::uuid ORDER BY id", user["id"]
    )
    await run_worker(settings)
    again = await db.fetch(
        "SELECT id, applied_at FROM outbox WHERE resource_id = $1::uuid ORDER BY id", user["id"]
    )
    assert again == applied


async def test_reactivation_is_applied_as_provisioned(client, tenant, db, settings):
    resp = await client.post(
        "/scim/v2/Users", json=user_body(unique_email(), active=False), headers=tenant.headers
    )
    user = await resp.json()
    await run_worker(settings)
    assert (
        await db.fetchval("SELECT provisioning_state FROM users WHERE id = $1::uuid", user["id"])
        == "deprovisioned"
    )
    patch = {"Operations": [{"op": "replace", "path": "active", "value": True}]}
    await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert (
        await db.fetchval("SELECT provisioning_state FROM users WHERE id = $1::uuid", user["id"]) == "pending"
    )
    await run_worker(settings)
    assert (
        await db.fetchval("SELECT provisioning_state FROM users WHERE id = $1::uuid", user["id"])
        == "provisioned"
    )


async def test_row_written_while_redis_is_down_is_applied_after_it_returns(
    aiohttp_client, settings, db, own_redis
):
    from scimsvc.web.app import create_app
    from tests.conftest import make_tenant

    own = dataclasses.replace(settings, redis_url=own_redis.url)
    client = await aiohttp_client(create_app(own))
    tenant = await make_tenant(client)

    own_redis.stop()
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    assert resp.status == 201  # PostgreSQL is the source of truth: the write is acknowledged
    user = await resp.json()
    assert await pending(db, user["id"]) == 1

    own_redis.start()  # an empty Redis: the wake-up call was lost for good
    await run_worker(own)  # its startup sweep re-enqueues the row, then it applies it

    assert await pending(db, user["id"]) == 0
    assert (
        await db.fetchval("SELECT provisioning_state FROM users WHERE id = $1::uuid", user["id"])
        == "provisioned"
    )


async def test_two_workers_at_once_apply_each_row_exactly_once(client, new_tenant, db, settings):
    tenant = await new_tenant()
    ids = []
    for _ in range(15):
        resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
        ids.append((await resp.json())["id"])
        patch = {"Operations": [{"op": "replace", "value": {"active": False}}]}
        await client.patch(f"/scim/v2/Users/{ids[-1]}", json=patch, headers=tenant.headers)

    await asyncio.gather(run_worker(settings), run_worker(settings))

    rows = await db.fetch(
        "SELECT applied_at IS NOT NULL AS applied, attempts FROM outbox WHERE tenant_id = $1::uuid", tenant.id
    )
    assert len(rows) == 30 and all(r["applied"] and r["attempts"] == 1 for r in rows)
    states = await db.fetch(
        "SELECT DISTINCT provisioning_state FROM users WHERE tenant_id = $1::uuid", tenant.id
    )
    assert [s["provisioning_state"] for s in states] == ["deprovisioned"]
