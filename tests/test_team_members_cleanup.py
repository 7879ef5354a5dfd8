"""Team memberships go with their user or team (0009 keeps foreign-key cascades as statement triggers)."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_HEADERS, create_team, make_tenant, post_user
from tests.test_group_sync import add_by_hand, team_members


async def test_hard_deleted_user_leaves_every_team_and_only_them(client, tenant, db):
    gone, stays = (await post_user(client, tenant))["id"], (await post_user(client, tenant))["id"]
    one, two = await create_team(client, tenant, "One"), await create_team(client, tenant, "Two")
    for team in (one, two):
        for user in (gone, stays):
            await add_by_hand(client, tenant, team["id"], user)
    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/users/{gone}", headers=ADMIN_HEADERS)
    assert resp.status in (200, 204), await resp.text()
    assert await team_members(db, one["id"]) == {stays}
    assert await team_members(db, two["id"]) == {stays}


async def test_deleted_team_takes_its_memberships_and_leaves_other_teams(client, tenant, db):
    user = (await post_user(client, tenant))["id"]
    gone, stays = await create_team(client, tenant, "Gone"), await create_team(client, tenant, "Stays")
    for team in (gone, stays):
        await add_by_hand(client, tenant, team["id"], user)
    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/teams/{gone['id']}", headers=ADMIN_HEADERS)
    assert resp.status in (200, 204), await resp.text()
    assert await team_members(db, gone["id"]) == set()
    assert await team_members(db, stays["id"]) == {user}


async def test_deleting_a_tenant_cascades_to_its_team_memberships(client, db):
    tenants: list[Any] = [await make_tenant(client), await make_tenant(client)]
    teams = []
    for tenant in tenants:
        user = (await post_user(client, tenant))["id"]
        team = await create_team(client, tenant, "Everyone")
        await add_by_hand(client, tenant, team["id"], user)
        teams.append(team["id"])
    await db.execute("DELETE FROM tenants WHERE id = $1::uuid", tenants[0].id)
    assert await db.fetchval("SELECT count(*) FROM team_members WHERE team_id = $1::uuid", teams[0]) == 0
    assert len(await team_members(db, teams[1])) == 1
