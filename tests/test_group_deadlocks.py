"""Group writes that PostgreSQL aborts to break a deadlock run again, as user writes do: no 500."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.conftest import create_team, post_user, wait_until, wait_until_blocked_by, waits_for

LOCK_GROUP = "SELECT 1 FROM groups WHERE id = $1::uuid FOR UPDATE"


async def test_a_group_delete_that_postgres_aborts_in_a_deadlock_runs_again_and_succeeds(
    client, tenant, db, database_url
):
    """The delete holds the group and waits for a member row another transaction holds, while that one
    waits for the group: a deadlock (as when an IdP deletes users and their group side by side).
    PostgreSQL checks a wait once, deadlock_timeout after it began, and aborts the transaction whose check
    finds the cycle. So that this is the delete's check whatever the machine's speed, the other is already
    queued for the group when the delete starts waiting for the member, and checks late (its own
    deadlock_timeout is ten minutes): a third connection holds the group first, the delete queues for it,
    the other takes the member and queues behind the delete, and only then is the group let go."""
    team = await create_team(client, tenant, "Deadlocked")
    user = await post_user(client, tenant)
    resp = await client.post(
        "/scim/v2/Groups",
        json={"displayName": team["name"], "members": [{"value": user["id"]}]},
        headers=tenant.headers,
    )
    assert resp.status == 201, await resp.text()
    group_id = (await resp.json())["id"]
    first = await asyncpg.connect(database_url)
    other = await asyncpg.connect(database_url)
    try:
        await other.execute("SET deadlock_timeout = '10min'")
        first_tx = first.transaction()
        await first_tx.start()
        await first.execute(LOCK_GROUP, group_id)
        delete = asyncio.create_task(client.delete(f"/scim/v2/Groups/{group_id}", headers=tenant.headers))
        deleting = await wait_until_blocked_by(db, first, delete, what="the delete to wait for the group")
        other_tx = other.transaction()
        await other_tx.start()
        await other.execute("SELECT 1 FROM group_members WHERE group_id = $1::uuid FOR UPDATE", group_id)
        grab = asyncio.create_task(
            other.execute("SELECT 1 FROM groups WHERE id = $1::uuid FOR UPDATE", group_id)
        )
        await wait_until(
            lambda: waits_for(db, other.get_server_pid(), deleting),
            what="the other to queue behind the delete",
        )
        await first_tx.rollback()
        # The delete takes the group and waits for the member row: PostgreSQL aborts it, the other gets
        # the group, and the delete's second try waits for the group until the other rolls back.
        await asyncio.wait_for(grab, 120)
        await other_tx.rollback()
        resp = await asyncio.wait_for(delete, 120)
    finally:
        await first.close()
        await other.close()
    assert resp.status == 204, await resp.text()
    assert await db.fetchval("SELECT count(*) FROM groups WHERE id = $1::uuid", group_id) == 0
    assert await db.fetchval("SELECT count(*) FROM group_members WHERE group_id = $1::uuid", group_id) == 0
    changes = await db.fetch("SELECT change FROM outbox WHERE resource_id = $1::uuid ORDER BY id", group_id)
    assert [c["change"] for c in changes].count("unlink") == 1  # the aborted try wrote nothing
