"""A membership never outlives its user: deletes and member writes that overlap end as if run one by one.

Each test holds one side's transaction open at the point where the race used to bite, sends the other
side through HTTP, checks that it waits for that transaction (pg_blocking_pids) and that the end state is
the serial one.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from scimsvc.store import groups as group_store
from scimsvc.store import teams as team_store
from scimsvc.store import users as user_store
from tests.conftest import ADMIN_HEADERS, create_team, post_user, wait_until_blocked_by


@pytest.fixture
async def other_conn(database_url):
    """A connection of the test's own, standing in for another request or the worker mid-transaction."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def linked_group(client, tenant, name):
    await create_team(client, tenant, name)
    resp = await client.post("/scim/v2/Groups", json={"displayName": name}, headers=tenant.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


COUNT_MEMBERSHIPS = {
    "group_members": "SELECT count(*) FROM group_members WHERE user_id = $1::uuid",
    "team_members": "SELECT count(*) FROM team_members WHERE user_id = $1::uuid",
}


async def memberships(db, table, user_id):
    return await db.fetchval(COUNT_MEMBERSHIPS[table], user_id)


async def test_a_user_deleted_while_a_push_adds_it_leaves_the_group(client, tenant, db, other_conn):
    group = await linked_group(client, tenant, "Racers")
    user = await post_user(client, tenant)
    tx = other_conn.transaction()
    await tx.start()
    missing = await group_store.push_members(
        other_conn, uuid.UUID(tenant.id), uuid.UUID(group["id"]), [uuid.UUID(user["id"])]
    )
    assert missing == []

    delete = asyncio.create_task(client.delete(f"/scim/v2/Users/{user['id']}", headers=tenant.headers))
    await wait_until_blocked_by(
        db, other_conn, delete, what="the DELETE to wait for the push that adds the user"
    )
    await tx.commit()
    assert (await delete).status == 204

    assert await memberships(db, "group_members", user["id"]) == 0
    resp = await client.get(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)
    assert "members" not in await resp.json()


async def test_a_push_that_meets_a_delete_in_flight_waits_and_refuses_the_deleted_user(
    client, tenant, db, other_conn
):
    group = await linked_group(client, tenant, "Latecomers")
    user = await post_user(client, tenant)
    tx = other_conn.transaction()
    await tx.start()
    # What a SCIM DELETE holds before it commits: the user locked and unlinked.
    assert await user_store.get_user(other_conn, uuid.UUID(tenant.id), uuid.UUID(user["id"]), for_update=True)
    assert await user_store.unlink_user(other_conn, uuid.UUID(tenant.id), uuid.UUID(user["id"]))

    body = {"displayName": "Latecomers", "members": [{"value": user["id"]}]}
    url = f"/scim/v2/Groups/{group['id']}"
    push = asyncio.create_task(client.put(url, json=body, headers=tenant.headers))
    await wait_until_blocked_by(db, other_conn, push, what="the push to wait for the DELETE of its member")
    await tx.commit()
    resp = await push
    assert resp.status == 400, await resp.text()
    assert user["id"] in (await resp.json())["detail"]
    assert await memberships(db, "group_members", user["id"]) == 0


async def test_a_user_hard_deleted_while_the_worker_adds_it_to_a_team_leaves_no_membership(
    client, tenant, db, other_conn
):
    group = await linked_group(client, tenant, "Leavers")
    user = await post_user(client, tenant)
    body = {"displayName": "Leavers", "members": [{"value": user["id"]}]}
    resp = await client.put(f"/scim/v2/Groups/{group['id']}", json=body, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    team_id = await db.fetchval("SELECT team_id FROM groups WHERE id = $1::uuid", group["id"])
    tx = other_conn.transaction()
    await tx.start()
    # The worker applying the push, before it commits.
    await team_store.push_to_team(other_conn, uuid.UUID(tenant.id), team_id, uuid.UUID(group["id"]))

    url = f"/admin/v1/tenants/{tenant.id}/users/{user['id']}"
    delete = asyncio.create_task(client.delete(url, headers=ADMIN_HEADERS))
    await wait_until_blocked_by(db, other_conn, delete, what="the hard delete to wait for the team apply")
    await tx.commit()
    assert (await delete).status == 200

    assert await memberships(db, "team_members", user["id"]) == 0
    assert await memberships(db, "group_members", user["id"]) == 0
