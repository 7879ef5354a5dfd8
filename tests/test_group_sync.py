"""What the worker makes of group changes: the linked team's membership, in order, idempotently."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import ADMIN_HEADERS, run_worker, unique_email, user_body
from tests.test_groups import make_group, make_team, make_user, send_patch

TEAMS = "/admin/v1/tenants/{tid}/teams"


async def team_of(db: Any, group_id: str) -> str:
    return str(await db.fetchval("SELECT team_id FROM groups WHERE id = $1::uuid", group_id))


async def team_members(db: Any, team_id: str) -> set[str]:
    rows = await db.fetch("SELECT user_id::text FROM team_members WHERE team_id = $1::uuid", team_id)
    return {r[0] for r in rows}


async def add_by_hand(client: Any, tenant: Any, team_id: str, user_id: str) -> None:
    resp = await client.put(
        f"{TEAMS.format(tid=tenant.id)}/{team_id}/members/{user_id}", headers=ADMIN_HEADERS
    )
    assert resp.status in (200, 201, 204), await resp.text()


async def put_members(client: Any, tenant: Any, group: dict[str, Any], members: list[str]) -> None:
    resp = await client.put(
        f"/scim/v2/Groups/{group['id']}",
        json={"displayName": group["displayName"], "members": [{"value": m} for m in members]},
        headers=tenant.headers,
    )
    assert resp.status == 200, await resp.text()


async def unapplied(db: Any, tenant_id: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant_id
    )


async def test_new_group_members_join_the_team_and_existing_members_stay(client, tenant, db, settings):
    a, m = await make_user(client, tenant), await make_user(client, tenant)
    team = await make_team(client, tenant, "Linked")
    await add_by_hand(client, tenant, team["id"], m)
    resp = await client.post(
        "/scim/v2/Groups", json={"displayName": "Linked", "members": [{"value": a}]}, headers=tenant.headers
    )
    assert resp.status == 201
    await run_worker(settings)
    assert await team_members(db, team["id"]) == {a, m}  # linking adds; only a push removes
    assert (
        await db.fetchval(
            "SELECT added_by FROM team_members WHERE team_id = $1::uuid AND user_id = $2::uuid", team["id"], a
        )
        == "scim"
    )
    assert await unapplied(db, tenant.id) == 0


async def test_user_in_team_one_added_to_group_two_stays_in_team_one(client, tenant, db, settings):
    user, other = await make_user(client, tenant), await make_user(client, tenant)
    one = await make_group(client, tenant, [user, other])
    two = await make_group(client, tenant, [])
    await run_worker(settings)
    resp = await send_patch(
        client, tenant, two["id"], {"op": "Add", "path": "members", "value": [{"value": user}]}
    )
    assert resp.status == 204
    await run_worker(settings)
    assert await team_members(db, await team_of(db, one["id"])) == {user, other}
    assert await team_members(db, await team_of(db, two["id"])) == {user}
    resp = await send_patch(
        client, tenant, two["id"], {"op": "remove", "path": f'members[value eq "{user}"]'}
    )
    assert resp.status == 204
    await run_worker(settings)
    assert await team_members(db, await team_of(db, two["id"])) == set()
    assert await team_members(db, await team_of(db, one["id"])) == {user, other}


async def test_incremental_remove_takes_out_only_the_named_users(client, tenant, db, settings):
    a, b, by_hand = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, [a, b])
    team_id = await team_of(db, group["id"])
    await add_by_hand(client, tenant, team_id, by_hand)
    await run_worker(settings)
    resp = await send_patch(
        client, tenant, group["id"], {"op": "Remove", "path": "members", "value": [{"value": a}]}
    )
    assert resp.status == 204
    await run_worker(settings)
    assert await team_members(db, team_id) == {b, by_hand}


async def test_push_after_manual_additions_removes_them_and_they_stay_in_the_subscription(
    client, tenant, db, settings
):
    a, b, by_hand = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, [a])
    team_id = await team_of(db, group["id"])
    await run_worker(settings)
    await add_by_hand(client, tenant, team_id, by_hand)
    before = await db.fetchrow("SELECT active, scim_linked, license FROM users WHERE id = $1::uuid", by_hand)
    await put_members(client, tenant, group, [a, b])
    await run_worker(settings)
    assert await team_members(db, team_id) == {a, b}
    after = await db.fetchrow("SELECT active, scim_linked, license FROM users WHERE id = $1::uuid", by_hand)
    assert after == before and after["active"] and after["scim_linked"]


async def test_okta_replace_of_members_is_a_push(client, tenant, db, settings):
    a, b, by_hand = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, [a])
    team_id = await team_of(db, group["id"])
    await add_by_hand(client, tenant, team_id, by_hand)
    await run_worker(settings)
    resp = await send_patch(
        client,
        tenant,
        group["id"],
        {"op": "replace", "value": {"id": group["id"], "displayName": group["displayName"]}},
        {"op": "replace", "path": "members", "value": [{"value": b}]},
    )
    assert resp.status == 204
    await run_worker(settings)
    assert await team_members(db, team_id) == {b}


async def test_patches_committed_while_a_push_is_unapplied_are_applied_after_it(client, tenant, db, settings):
    a, b, c, by_hand = [await make_user(client, tenant) for _ in range(4)]
    group = await make_group(client, tenant, [])
    team_id = await team_of(db, group["id"])
    await add_by_hand(client, tenant, team_id, by_hand)
    await put_members(client, tenant, group, [a, b])  # the push, not applied yet
    assert (
        await send_patch(
            client, tenant, group["id"], {"op": "add", "path": "members", "value": [{"value": c}]}
        )
    ).status == 204
    assert (
        await send_patch(client, tenant, group["id"], {"op": "remove", "path": f'members[value eq "{a}"]'})
    ).status == 204
    await run_worker(settings)
    assert await team_members(db, team_id) == {b, c}
    assert await unapplied(db, tenant.id) == 0


async def test_patch_arriving_while_a_push_is_being_applied_is_applied_after_it(
    client, tenant, db, settings, monkeypatch
):
    import worker.groups

    a, b, late = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, [])
    team_id = await team_of(db, group["id"])
    await run_worker(settings)
    await put_members(client, tenant, group, [a, b])
    real_push = worker.groups.teams.push_to_team
    arrived: list[int] = []

    async def push_with_a_patch_arriving(*args: Any) -> Any:
        if not arrived:  # the IdP's PATCH commits while the worker is in the middle of the push
            resp = await send_patch(
                client,
                tenant,
                group["id"],
                {"op": "add", "path": "members", "value": [{"value": late}]},
                {"op": "remove", "path": "members", "value": [{"value": a}]},
            )
            arrived.append(resp.status)
        return await real_push(*args)

    monkeypatch.setattr(worker.groups.teams, "push_to_team", push_with_a_patch_arriving)
    await run_worker(settings)
    assert arrived == [204]
    assert await team_members(db, team_id) == {b, late}
    assert await unapplied(db, tenant.id) == 0
    rows = await db.fetch(
        "SELECT change FROM outbox WHERE resource_id = $1::uuid ORDER BY applied_at, id", group["id"]
    )
    assert [r["change"] for r in rows][-2:] == ["push", "members"]


async def test_rerunning_applied_changes_changes_nothing(client, tenant, db, settings):
    a, b, c = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, [a])
    team_id = await team_of(db, group["id"])
    await put_members(client, tenant, group, [a, b])
    await send_patch(client, tenant, group["id"], {"op": "add", "path": "members", "value": [{"value": c}]})
    await send_patch(
        client, tenant, group["id"], {"op": "remove", "path": "members", "value": [{"value": a}]}
    )
    await run_worker(settings)
    state = "SELECT user_id, added_by, joined_at FROM team_members WHERE team_id = $1::uuid ORDER BY user_id"
    before = await db.fetch(state, team_id)
    assert {str(r["user_id"]) for r in before} == {b, c}
    # Every row of the group applied again, as a retried or duplicated job would.
    await db.execute("UPDATE outbox SET applied_at = NULL WHERE resource_id = $1::uuid", group["id"])
    await run_worker(settings)
    assert await db.fetch(state, team_id) == before
    # And each row alone, in order.
    ids = await db.fetch("SELECT id FROM outbox WHERE resource_id = $1::uuid ORDER BY id", group["id"])
    for row in ids:
        await db.execute("UPDATE outbox SET applied_at = NULL WHERE id = $1", row["id"])
        await run_worker(settings)
        assert await db.fetch(state, team_id) == before
    assert await db.fetch(state, team_id) == before


async def test_deleting_the_group_leaves_the_team_and_its_members(client, tenant, db, settings):
    a, b = await make_user(client, tenant), await make_user(client, tenant)
    group = await make_group(client, tenant, [a, b])
    team_id = await team_of(db, group["id"])
    await run_worker(settings)
    assert (await client.delete(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)).status == 204
    await run_worker(settings)
    assert await team_members(db, team_id) == {a, b}
    resp = await client.get(f"{TEAMS.format(tid=tenant.id)}/{team_id}", headers=ADMIN_HEADERS)
    team = await resp.json()
    assert resp.status == 200 and team["group"] is None and team["member_count"] == 2
    assert await unapplied(db, tenant.id) == 0


async def test_group_whose_team_was_deleted_applies_nothing(client, tenant, db, settings):
    a, b = await make_user(client, tenant), await make_user(client, tenant)
    group = await make_group(client, tenant, [a])
    team_id = await team_of(db, group["id"])
    await run_worker(settings)
    resp = await client.delete(f"{TEAMS.format(tid=tenant.id)}/{team_id}", headers=ADMIN_HEADERS)
    assert resp.status == 204
    assert (
        await send_patch(
            client, tenant, group["id"], {"op": "add", "path": "members", "value": [{"value": b}]}
        )
    ).status == 204
    await put_members(client, tenant, group, [b])
    await run_worker(settings)
    assert await db.fetchval("SELECT count(*) FROM team_members WHERE user_id = ANY($1::uuid[])", [a, b]) == 0
    assert await unapplied(db, tenant.id) == 0
    resp = await client.get(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)
    assert resp.status == 200 and [m["value"] for m in (await resp.json())["members"]] == [b]


async def test_renaming_the_group_never_renames_the_team_and_the_reverse(client, tenant, db, settings):
    group = await make_group(client, tenant, [], name="Original")
    team_id = await team_of(db, group["id"])
    resp = await send_patch(
        client, tenant, group["id"], {"op": "replace", "path": "displayName", "value": "Group name"}
    )
    assert resp.status == 204
    await run_worker(settings)
    resp = await client.get(f"{TEAMS.format(tid=tenant.id)}/{team_id}", headers=ADMIN_HEADERS)
    assert (await resp.json())["name"] == "Original"
    resp = await client.patch(
        f"{TEAMS.format(tid=tenant.id)}/{team_id}", json={"name": "Team name"}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200
    resp = await client.get(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)
    assert (await resp.json())["displayName"] == "Group name"
    # The link holds across both renames: membership still reaches the team.
    user = await make_user(client, tenant)
    await send_patch(
        client, tenant, group["id"], {"op": "add", "path": "members", "value": [{"value": user}]}
    )
    await run_worker(settings)
    assert await team_members(db, team_id) == {user}
    # And a new group named like the team's old name does not link to it.
    resp = await client.post("/scim/v2/Groups", json={"displayName": "Original"}, headers=tenant.headers)
    assert resp.status == 400


async def test_scim_deleted_user_keeps_its_team_until_a_push(client, tenant, db, settings):
    a, b = await make_user(client, tenant), await make_user(client, tenant)
    group = await make_group(client, tenant, [a, b])
    team_id = await team_of(db, group["id"])
    await run_worker(settings)
    assert (await client.delete(f"/scim/v2/Users/{a}", headers=tenant.headers)).status == 204
    await run_worker(settings)
    assert await team_members(db, team_id) == {a, b}
    await put_members(client, tenant, group, [b])
    await run_worker(settings)
    assert await team_members(db, team_id) == {b}


async def test_a_push_of_thousands_applies_set_based(client, tenant, db, settings):
    rows = await db.fetch(
        "INSERT INTO users (tenant_id, user_name, resource) "
        "SELECT $1::uuid, n, jsonb_build_object('userName', n) "
        "FROM (SELECT 'bulk' || i || '@example.com' AS n FROM generate_series(1, 3000) AS i) AS s "
        "RETURNING id::text",
        tenant.id,
    )
    ids = [r[0] for r in rows]
    group = await make_group(client, tenant, ids[:1000])
    team_id = await team_of(db, group["id"])
    await put_members(client, tenant, group, ids[500:3000])
    resp = await send_patch(
        client,
        tenant,
        group["id"],
        {"op": "remove", "path": "members", "value": [{"value": i} for i in ids[:1000]]},
    )
    assert resp.status == 204
    await run_worker(settings)
    assert await team_members(db, team_id) == set(ids[1000:3000])
    resp = await client.get(
        f'/scim/v2/Groups?filter=id eq "{group["id"]}"&excludedAttributes=members', headers=tenant.headers
    )
    assert "members" not in (await resp.json())["Resources"][0]


async def test_members_never_cross_tenants_in_the_worker(client, new_tenant, db, settings):
    tenant, other = await new_tenant(), await new_tenant()
    mine, theirs = await make_user(client, tenant), await make_user(client, other)
    group = await make_group(client, tenant, [mine])
    team_id = await team_of(db, group["id"])
    # A forged outbox row naming another tenant's user changes nothing.
    await db.execute(
        "INSERT INTO outbox (tenant_id, resource_type, resource_id, change, payload) "
        "VALUES ($1::uuid, 'group', $2::uuid, 'members', $3::jsonb)",
        tenant.id,
        group["id"],
        f'{{"add": ["{theirs}", "{uuid.uuid4()}"], "remove": []}}',
    )
    await run_worker(settings)
    assert await team_members(db, team_id) == {mine}


async def test_push_keeps_members_of_the_team_by_email_domain(client, tenant, db, settings):
    """Domain users join their domain's teams whatever groups the IdP sends (README.md, API surface)."""
    a = await make_user(client, tenant)
    group = await make_group(client, tenant, [a])
    team_id = await team_of(db, group["id"])
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}",
        json={"domain_teams": {"corp.example": [team_id]}},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200
    resp = await client.post(
        "/scim/v2/Users", json=user_body(unique_email(domain="corp.example")), headers=tenant.headers
    )
    by_domain = (await resp.json())["id"]
    await run_worker(settings)
    assert await team_members(db, team_id) == {a, by_domain}
    await put_members(client, tenant, group, [a])
    await run_worker(settings)
    assert await team_members(db, team_id) == {a, by_domain}
