"""Hard delete in the admin API: boards go to heirs (README.md, API surface), seats are freed, all audited."""

from __future__ import annotations

import json
import uuid

from tests.conftest import ADMIN_HEADERS, create_team, post_user, run_worker, unique_email, user_body


async def join(client, tenant, team_id, user):
    url = f"/admin/v1/tenants/{tenant.id}/teams/{team_id}/members/{user['id']}"
    assert (await client.put(url, headers=ADMIN_HEADERS)).status == 204


async def create_board(client, tenant, title, owner, team_id=None):
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/boards",
        json={"title": title, "owner_id": owner["id"], "team_id": team_id},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def owners(client, tenant):
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/boards", headers=ADMIN_HEADERS)
    return {b["id"]: b["owner_id"] for b in (await resp.json())["boards"]}


async def hard_delete(client, tenant, user):
    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/users/{user['id']}", headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    return await resp.json()


ADMIN_ROLE = [{"value": "admin", "primary": True}]


async def test_boards_go_to_longest_standing_active_team_member(client, tenant, db):
    owner, senior, junior, inactive = [await post_user(client, tenant) for _ in range(4)]
    team = (await create_team(client, tenant, "Design"))["id"]
    # `inactive` joined first but is deactivated: it cannot inherit.
    for member in (inactive, owner, senior, junior):
        await join(client, tenant, team, member)
    patch = {"Operations": [{"op": "replace", "path": "active", "value": "False"}]}
    resp = await client.patch(f"/scim/v2/Users/{inactive['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200
    board = await create_board(client, tenant, "Roadmap", owner, team)

    body = await hard_delete(client, tenant, owner)
    assert body["handovers"] == [
        {"board_id": board, "title": "Roadmap", "team_id": team, "to": senior["id"], "via": "team_member"}
    ]
    assert (await owners(client, tenant))[board] == senior["id"]
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1::uuid", owner["id"]) == 0
    assert await db.fetchval("SELECT count(*) FROM team_members WHERE user_id = $1::uuid", owner["id"]) == 0
    resp = await client.get(f"/scim/v2/Users/{owner['id']}", headers=tenant.headers)
    assert resp.status == 404
    audit = await db.fetch(
        "SELECT action, actor, detail FROM audit_log WHERE tenant_id = $1::uuid AND user_id = $2::uuid "
        "AND action IN ('handover', 'hard_delete') ORDER BY id",
        tenant.id,
        owner["id"],
    )
    assert [(a["action"], a["actor"]) for a in audit] == [("handover", "admin"), ("hard_delete", "admin")]
    handover, deletion = (json.loads(a["detail"]) for a in audit)
    assert handover["to"] == senior["id"] and deletion["userName"] == owner["userName"]


async def test_without_a_team_heir_the_oldest_active_admin_inherits(client, tenant):
    first_admin = await post_user(client, tenant, roles=ADMIN_ROLE)
    await post_user(client, tenant, roles=[{"value": "admin", "primary": "True"}])  # Entra's string
    owner = await post_user(client, tenant, roles=ADMIN_ROLE)
    team = (await create_team(client, tenant, "Solo"))["id"]
    await join(client, tenant, team, owner)
    teamless = await create_board(client, tenant, "Notes", owner)
    solo = await create_board(client, tenant, "Solo board", owner, team)

    body = await hard_delete(client, tenant, owner)
    assert {h["board_id"]: (h["to"], h["via"]) for h in body["handovers"]} == {
        teamless: (first_admin["id"], "admin"),
        solo: (first_admin["id"], "admin"),
    }


async def test_without_any_heir_the_board_stays_ownerless(client, tenant, db):
    owner = await post_user(client, tenant)
    await post_user(client, tenant, roles=[{"value": "admin", "primary": False}])  # not the primary role
    board = await create_board(client, tenant, "Orphan", owner)
    body = await hard_delete(client, tenant, owner)
    assert body["handovers"][0]["to"] is None and body["handovers"][0]["via"] == "none"
    assert (await owners(client, tenant))[board] is None
    assert await db.fetchval("SELECT count(*) FROM boards WHERE id = $1::uuid", board) == 1


async def test_hard_delete_frees_the_seat_for_the_oldest_waiting_user(client, new_tenant, db, settings):
    tenant = await new_tenant(seats=1)
    holder = await post_user(client, tenant)
    await run_worker(settings)
    waiting = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    assert (
        await db.fetchval("SELECT license FROM users WHERE id = $1::uuid", waiting["id"]) == "free_restricted"
    )

    await hard_delete(client, tenant, holder)
    await run_worker(settings)
    assert await db.fetchval("SELECT license FROM users WHERE id = $1::uuid", waiting["id"]) == "full"
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/licenses", headers=ADMIN_HEADERS)
    assert await resp.json() == {"seats": 1, "used": 1, "free": 0, "waiting": [], "over_allocated": False}
    actions = [
        tuple(r)
        for r in await db.fetch(
            "SELECT user_id::text, action, actor FROM audit_log WHERE tenant_id = $1::uuid ORDER BY id",
            tenant.id,
        )
    ]
    assert (holder["id"], "release", "admin") in actions
    assert (waiting["id"], "promotion", "worker") in actions


async def test_hard_delete_is_scoped_to_the_tenant(client, new_tenant, db):
    tenant, other = await new_tenant(), await new_tenant()
    user = await post_user(client, other)
    for uid in (user["id"], str(uuid.uuid4()), "nope"):
        resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/users/{uid}", headers=ADMIN_HEADERS)
        assert resp.status == 404
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1::uuid", user["id"]) == 1
    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/users/{user['id']}")
    assert resp.status in (401, 403)


async def test_a_hard_deleted_user_name_can_be_provisioned_anew(client, tenant, settings):
    user = await post_user(client, tenant)
    await run_worker(settings)
    await hard_delete(client, tenant, user)
    await run_worker(settings)  # its pending changes, if any, find no user and change nothing
    resp = await client.post("/scim/v2/Users", json=user_body(user["userName"]), headers=tenant.headers)
    assert resp.status == 201
    assert (await resp.json())["id"] != user["id"]


async def test_boards_need_a_team_and_owner_of_the_tenant(client, new_tenant, db):
    tenant, other = await new_tenant(), await new_tenant()
    owner = await post_user(client, tenant)
    foreign_owner = await post_user(client, other)
    foreign_team = (await create_team(client, other, "Theirs"))["id"]
    base = f"/admin/v1/tenants/{tenant.id}/boards"
    bad = [
        {"title": "x", "owner_id": foreign_owner["id"]},
        {"title": "x", "owner_id": owner["id"], "team_id": foreign_team},
        {"title": "", "owner_id": owner["id"]},
        {"owner_id": owner["id"]},
        {"title": "x", "owner_id": "zzz"},
        {"title": "x", "owner_id": owner["id"], "extra": 1},
    ]
    for body in bad:
        resp = await client.post(base, json=body, headers=ADMIN_HEADERS)
        assert resp.status == 400, body
        assert (await resp.json())["detail"]
    assert await db.fetchval("SELECT count(*) FROM boards WHERE tenant_id = $1::uuid", tenant.id) == 0


async def test_email_change_is_audited(client, tenant, db):
    user = await post_user(client, tenant)
    new = unique_email("renamed")
    patch = {"Operations": [{"op": "replace", "path": "userName", "value": new}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/audit", params={"user_id": user["id"]}, headers=ADMIN_HEADERS
    )
    items = (await resp.json())["items"]
    change = [i for i in items if i["action"] == "email_change"]
    assert len(change) == 1 and change[0]["actor"] == "scim"
    assert change[0]["detail"] == {"from": user["userName"], "to": new} and change[0]["request_id"]
