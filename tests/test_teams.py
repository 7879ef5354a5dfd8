"""The Teams API (admin): teams, manual membership, domain teams applied by the worker."""

from __future__ import annotations

import uuid

from tests.conftest import ADMIN_HEADERS, create_team, post_user, run_worker, unique_email


async def member_ids(db, team_id):
    rows = await db.fetch("SELECT user_id::text FROM team_members WHERE team_id = $1::uuid", team_id)
    return {r[0] for r in rows}


async def test_create_list_rename_and_delete_a_team(client, tenant, db):
    team = await create_team(client, tenant, "Design")
    assert team["name"] == "Design" and team["member_count"] == 0 and team["group"] is None
    base = f"/admin/v1/tenants/{tenant.id}/teams"

    resp = await client.patch(f"{base}/{team['id']}", json={"name": "Product design"}, headers=ADMIN_HEADERS)
    assert resp.status == 200 and (await resp.json())["name"] == "Product design"
    resp = await client.get(base, headers=ADMIN_HEADERS)
    assert [t["name"] for t in (await resp.json())["teams"]] == ["Product design"]

    resp = await client.delete(f"{base}/{team['id']}", headers=ADMIN_HEADERS)
    assert resp.status == 204
    assert await db.fetchval("SELECT count(*) FROM teams WHERE tenant_id = $1::uuid", tenant.id) == 0
    resp = await client.get(f"{base}/{team['id']}", headers=ADMIN_HEADERS)
    assert resp.status == 404


async def test_team_names_are_unique_per_tenant_but_case_sensitive(client, new_tenant):
    tenant, other = await new_tenant(), await new_tenant()
    await create_team(client, tenant, "Sales")
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/teams", json={"name": "Sales"}, headers=ADMIN_HEADERS
    )
    body = await resp.json()
    assert resp.status == 409 and body["scimType"] == "uniqueness" and "Sales" in body["detail"]
    await create_team(client, tenant, "sales")  # another name: names are exact
    await create_team(client, other, "Sales")  # another tenant
    renamed = await create_team(client, tenant, "Ops")
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}/teams/{renamed['id']}", json={"name": "Sales"}, headers=ADMIN_HEADERS
    )
    assert resp.status == 409


async def test_bad_team_payloads_are_refused(client, tenant, db):
    base = f"/admin/v1/tenants/{tenant.id}/teams"
    for body in (
        {},
        {"name": ""},
        {"name": 7},
        {"name": "x", "colour": "red"},
        ["x"],
        {"name": "a\u0000b"},
        {"name": "\u200b "},
    ):
        resp = await client.post(base, json=body, headers=ADMIN_HEADERS)
        assert resp.status == 400, body
        assert (await resp.json())["detail"]
    assert await db.fetchval("SELECT count(*) FROM teams WHERE tenant_id = $1::uuid", tenant.id) == 0
    resp = await client.patch(f"{base}/not-a-uuid", json={"name": "x"}, headers=ADMIN_HEADERS)
    assert resp.status == 404


async def test_manual_membership_add_list_and_remove(client, tenant, db):
    team = await create_team(client, tenant, "Support")
    user = await post_user(client, tenant)
    url = f"/admin/v1/tenants/{tenant.id}/teams/{team['id']}/members/{user['id']}"
    assert (await client.put(url, headers=ADMIN_HEADERS)).status == 204
    assert (await client.put(url, headers=ADMIN_HEADERS)).status == 204  # idempotent
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/teams/{team['id']}/members", headers=ADMIN_HEADERS
    )
    members = (await resp.json())["members"]
    assert [(m["user_id"], m["userName"], m["added_by"]) for m in members] == [
        (user["id"], user["userName"], "admin")
    ]
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/users/{user['id']}", headers=ADMIN_HEADERS)
    assert (await resp.json())["teams"] == [{"id": team["id"], "name": "Support"}]
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/teams/{team['id']}", headers=ADMIN_HEADERS)
    assert (await resp.json())["member_count"] == 1

    assert (await client.delete(url, headers=ADMIN_HEADERS)).status == 204
    assert await member_ids(db, team["id"]) == set()
    assert (await client.delete(url, headers=ADMIN_HEADERS)).status == 404


async def test_membership_never_crosses_tenants(client, new_tenant, db):
    tenant, other = await new_tenant(), await new_tenant()
    team = await create_team(client, tenant, "Core")
    foreign_user = await post_user(client, other)
    url = f"/admin/v1/tenants/{tenant.id}/teams/{team['id']}/members/{foreign_user['id']}"
    resp = await client.put(url, headers=ADMIN_HEADERS)
    assert resp.status == 404 and foreign_user["id"] in (await resp.json())["detail"]
    # Another tenant's team through this tenant's URL is not found either.
    resp = await client.get(f"/admin/v1/tenants/{other.id}/teams/{team['id']}", headers=ADMIN_HEADERS)
    assert resp.status == 404
    assert await member_ids(db, team["id"]) == set()


async def test_members_page_on(client, tenant):
    team = await create_team(client, tenant, "Big")
    users = [await post_user(client, tenant) for _ in range(5)]
    for u in users:
        url = f"/admin/v1/tenants/{tenant.id}/teams/{team['id']}/members/{u['id']}"
        assert (await client.put(url, headers=ADMIN_HEADERS)).status == 204
    seen, after = [], None
    while True:
        query = {"limit": "2", **({"after": after} if after else {})}
        resp = await client.get(
            f"/admin/v1/tenants/{tenant.id}/teams/{team['id']}/members", params=query, headers=ADMIN_HEADERS
        )
        page = await resp.json()
        seen += [m["user_id"] for m in page["members"]]
        after = page["next"]
        if after is None:
            break
    assert sorted(seen) == sorted(u["id"] for u in users)


async def test_new_user_joins_its_domain_teams(client, tenant, db, settings):
    eng = await create_team(client, tenant, "Engineering")
    everyone = await create_team(client, tenant, "Everyone")
    other = await create_team(client, tenant, "Elsewhere")
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}",
        json={"domain_teams": {"@Corp.Example": [eng["id"], everyone["id"]], "other.example": [other["id"]]}},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["domain_teams"]["corp.example"] == sorted([eng["id"], everyone["id"]])

    corp = await post_user(client, tenant, unique_email(domain="CORP.example"))
    outsider = await post_user(client, tenant, unique_email(domain="example.org"))
    await run_worker(settings)
    assert await member_ids(db, eng["id"]) == {corp["id"]}
    assert await member_ids(db, everyone["id"]) == {corp["id"]}
    assert await member_ids(db, other["id"]) == set()
    added_by = await db.fetchval(
        "SELECT added_by FROM team_members WHERE team_id = $1::uuid AND user_id = $2::uuid",
        eng["id"],
        corp["id"],
    )
    assert added_by == "domain"
    assert outsider["id"] not in await member_ids(db, eng["id"])


async def test_domain_teams_must_name_teams_of_the_tenant(client, new_tenant, db):
    tenant, other = await new_tenant(), await new_tenant()
    foreign = await create_team(client, other, "Theirs")
    unknown = str(uuid.uuid4())
    for value, named in (([foreign["id"]], foreign["id"]), ([unknown], unknown)):
        resp = await client.patch(
            f"/admin/v1/tenants/{tenant.id}", json={"domain_teams": {"x.com": value}}, headers=ADMIN_HEADERS
        )
        body = await resp.json()
        assert resp.status == 400 and named in body["detail"] and "POST /admin" in body["detail"]
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}", json={"domain_teams": {"x.com": ["nope"]}}, headers=ADMIN_HEADERS
    )
    assert resp.status == 400
    assert await db.fetchval("SELECT domain_teams::text FROM tenants WHERE id = $1::uuid", tenant.id) == "{}"


async def test_deactivated_user_keeps_its_teams(client, tenant, db, settings):
    team = await create_team(client, tenant, "Keepers")
    user = await post_user(client, tenant)
    await client.put(
        f"/admin/v1/tenants/{tenant.id}/teams/{team['id']}/members/{user['id']}", headers=ADMIN_HEADERS
    )
    patch = {"Operations": [{"op": "replace", "path": "active", "value": False}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200
    assert (await client.delete(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)).status == 204
    await run_worker(settings)
    assert await member_ids(db, team["id"]) == {user["id"]}
