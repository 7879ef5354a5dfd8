"""Request sequences exactly as Okta and Microsoft Entra ID send them."""

from __future__ import annotations

from tests.conftest import create_team, post_user, run_worker, unique_email

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def test_entra_create_then_patch_sequence(client, tenant, db):
    email = unique_email("entra")
    # Entra's POST: string booleans, enterprise extension, no password.
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": email,
        "active": True,
        "displayName": "Entra Person",
        "emails": [{"primary": True, "type": "work", "value": email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Entra Person", "familyName": "Person", "givenName": "Entra"},
        "roles": [],
        ENTERPRISE: {"department": "Finance"},
    }
    resp = await client.post("/scim/v2/Users", json=body, headers=tenant.headers)
    assert resp.status == 201, await resp.text()
    user = await resp.json()

    # Entra probes by filter before it writes.
    resp = await client.get(f'/scim/v2/Users?filter=userName eq "{email}"', headers=tenant.headers)
    assert (await resp.json())["Resources"][0]["id"] == user["id"]

    new_work = unique_email("work")
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": "Entra P."},
            {"op": "Add", "path": 'emails[type eq "home"].value', "value": new_work},
            {"op": "Replace", "path": "name.givenName", "value": "Entra2"},
            {"op": "Add", "path": "roles", "value": [{"value": "admin", "primary": "True"}]},
            {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Sales"},
            {"op": "Add", "value": {"title": "Lead", "name.familyName": "Persson"}},
        ],
    }
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert patched["displayName"] == "Entra P."
    assert {"type": "home", "value": new_work} in patched["emails"]
    assert patched["name"]["givenName"] == "Entra2" and patched["name"]["familyName"] == "Persson"
    assert patched["roles"] == [{"value": "admin", "primary": True}]
    assert patched[ENTERPRISE]["department"] == "Sales"
    assert patched["title"] == "Lead"

    # Entra disables with a string boolean.
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200
    assert (await resp.json())["active"] is False
    assert await db.fetchval("SELECT active FROM users WHERE id = $1::uuid", user["id"]) is False


async def test_entra_sets_and_removes_manager_by_bare_id(client, tenant):
    boss = await (
        await client.post("/scim/v2/Users", json={"userName": unique_email("boss")}, headers=tenant.headers)
    ).json()
    user = await (
        await client.post("/scim/v2/Users", json={"userName": unique_email("emp")}, headers=tenant.headers)
    ).json()
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Add", "path": f"{ENTERPRISE}:manager", "value": boss["id"]}],
    }
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())[ENTERPRISE]["manager"]["value"] == boss["id"]
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": f"{ENTERPRISE}:manager"}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200
    assert "manager" not in (await resp.json()).get(ENTERPRISE, {})


async def test_entra_adds_work_email_when_none_exists(client, tenant):
    user = await (
        await client.post("/scim/v2/Users", json={"userName": unique_email("nomail")}, headers=tenant.headers)
    ).json()
    work = unique_email("w")
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Add", "path": 'emails[type eq "work"].value', "value": work}],
    }
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200
    assert (await resp.json())["emails"] == [{"type": "work", "value": work}]


async def test_okta_create_put_update_and_deactivate(client, tenant, db):
    email = unique_email("okta")
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "name": {"givenName": "Okta", "familyName": "User"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": "Okta User",
        "locale": "en-US",
        "externalId": "00u1abcd",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }
    resp = await client.post("/scim/v2/Users", json=body, headers=tenant.headers)
    assert resp.status == 201
    user = await resp.json()
    # Okta's profile push is a full PUT with the id and meta echoed back.
    put = {
        **{k: v for k, v in body.items() if k != "password"},
        "id": user["id"],
        "meta": user["meta"],
        "name": {"givenName": "Okta", "familyName": "Renamed"},
    }
    resp = await client.put(f"/scim/v2/Users/{user['id']}", json=put, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["name"]["familyName"] == "Renamed"
    # Okta deactivates with a path-less replace.
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert (await resp.json())["active"] is False
    # ... and reactivates the same way.
    patch["Operations"][0]["value"]["active"] = True
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert (await resp.json())["active"] is True
    changes = await db.fetch("SELECT change FROM outbox WHERE resource_id = $1::uuid ORDER BY id", user["id"])
    assert [c["change"] for c in changes] == ["create", "update", "deactivate", "reactivate"]


# --- Microsoft Entra ID: the request samples of "Tutorial: Develop and plan provisioning for a SCIM
# endpoint" (User and Group operations), in the order its validator sends them. userName is an email here
# because the product's primary id is one (schemas/user.py, userName); everything else is as Entra sends it.

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ADSCIM_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/Group"


async def test_entra_tutorial_user_operations(client, tenant, db):
    import uuid

    # Connection test: a filter on a random userName that matches nobody.
    resp = await client.get(
        f'/scim/v2/Users?filter=userName eq "{uuid.uuid4()}@example.com"', headers=tenant.headers
    )
    assert resp.status == 200
    assert (await resp.json())["totalResults"] == 0 and (await resp.json())["Resources"] == []

    email = unique_email("Test_User")
    resp = await client.post(
        "/scim/v2/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": email,
            "active": True,
            "emails": [{"primary": True, "type": "work", "value": email}],
            "meta": {"resourceType": "User"},
            "name": {
                "formatted": "givenName familyName",
                "familyName": "familyName",
                "givenName": "givenName",
            },
            "roles": [],
        },
        headers=tenant.headers,
    )
    assert resp.status == 201
    user = await resp.json()
    assert user["externalId"] == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" and user["active"] is True
    url = f"/scim/v2/Users/{user['id']}"

    resp = await client.get(url, headers=tenant.headers)
    assert resp.status == 200 and (await resp.json())["userName"] == email
    resp = await client.get(f'/scim/v2/Users?filter=userName eq "{email}"', headers=tenant.headers)
    found = await resp.json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == user["id"]

    # Update User [Multi-valued properties]
    new_email = unique_email("updatedEmail")
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": new_email},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ],
    }
    resp = await client.patch(url, json=patch, headers=tenant.headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["emails"] == [{"primary": True, "type": "work", "value": new_email}]
    assert body["name"]["familyName"] == "updatedFamilyName"

    # Update User [Single-valued properties]: a new userName.
    renamed = unique_email("renamed")
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "userName", "value": renamed}]}
    resp = await client.patch(url, json=patch, headers=tenant.headers)
    assert resp.status == 200 and (await resp.json())["userName"] == renamed

    # Roles the way Entra maps them, then a no-path replace with urn: keys and string booleans.
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Add", "path": 'roles[primary eq "True"].value', "value": "Reader"},
            {
                "op": "Replace",
                "value": {
                    f"{ENTERPRISE}:department": "Finance",
                    f"{ENTERPRISE}:employeeNumber": "7",
                    "displayName": "Given Family",
                    "active": "True",
                },
            },
        ],
    }
    resp = await client.patch(url, json=patch, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["roles"] == [{"primary": True, "value": "Reader"}]
    assert body[ENTERPRISE]["department"] == "Finance" and body[ENTERPRISE]["employeeNumber"] == "7"
    assert body["displayName"] == "Given Family" and body["active"] is True
    resp = await client.get(
        f'/scim/v2/Users?filter={ENTERPRISE}:employeeNumber eq "7"', headers=tenant.headers
    )
    assert [r["id"] for r in (await resp.json())["Resources"]] == [user["id"]]

    # Disable User, then Delete User.
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": False}]}
    resp = await client.patch(url, json=patch, headers=tenant.headers)
    assert resp.status == 200 and (await resp.json())["active"] is False
    resp = await client.delete(url, headers=tenant.headers)
    assert resp.status == 204
    resp = await client.get(url, headers=tenant.headers)
    assert resp.status == 404 and (await resp.json())["status"] == "404"
    assert await db.fetchval("SELECT active FROM users WHERE id = $1::uuid", user["id"]) is False


async def test_entra_tutorial_group_operations(client, tenant, db):
    member = await post_user(client, tenant)
    await create_team(client, tenant, "displayName")
    resp = await client.post(
        "/scim/v2/Groups",
        json={
            "schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"},
        },
        headers=tenant.headers,
    )
    assert resp.status == 201, await resp.text()
    group = await resp.json()
    url = f"/scim/v2/Groups/{group['id']}"

    resp = await client.get(f"{url}?excludedAttributes=members", headers=tenant.headers)
    got = await resp.json()
    assert resp.status == 200 and got["displayName"] == "displayName" and "members" not in got
    resp = await client.get(
        '/scim/v2/Groups?excludedAttributes=members&filter=displayName eq "displayName"',
        headers=tenant.headers,
    )
    listed = await resp.json()
    assert listed["totalResults"] == 1 and "members" not in listed["Resources"][0]

    # Update Group [Non-member attributes], [Add Members], [Remove Members]: 204 each.
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "displayName", "value": "displayName updatedDisplayName"}],
    }
    resp = await client.patch(url, json=patch, headers=tenant.headers)
    assert resp.status == 204
    add = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": member["id"]}]}],
    }
    resp = await client.patch(url, json=add, headers=tenant.headers)
    assert resp.status == 204
    resp = await client.get(
        f'/scim/v2/Groups?filter=members[value eq "{member["id"]}"]', headers=tenant.headers
    )
    assert [g["id"] for g in (await resp.json())["Resources"]] == [group["id"]]
    remove = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": None, "value": member["id"]}]}],
    }
    resp = await client.patch(url, json=remove, headers=tenant.headers)
    assert resp.status == 204
    assert await db.fetchval("SELECT count(*) FROM group_members WHERE group_id = $1::uuid", group["id"]) == 0

    resp = await client.delete(url, headers=tenant.headers)
    assert resp.status == 204
    resp = await client.get(url, headers=tenant.headers)
    assert resp.status == 404


# --- Okta: the request samples of its SCIM 2.0 reference (users, then groups with push) -------------------


async def test_okta_reference_user_sequence(client, tenant, db):
    email = unique_email("test.user", "okta.local")
    resp = await client.get(
        f'/scim/v2/Users?filter=userName eq "{email}"&startIndex=1&count=100', headers=tenant.headers
    )
    assert (await resp.json())["totalResults"] == 0
    resp = await client.post(
        "/scim/v2/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": True, "value": email, "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": True,
        },
        headers=tenant.headers,
    )
    assert resp.status == 201
    user = await resp.json()
    assert "password" not in user and "groups" not in user
    url = f"/scim/v2/Users/{user['id']}"

    # Okta updates with PUT of the whole user, as it read it.
    full = {**user, "displayName": "Another Name", "name": {"givenName": "Another", "familyName": "Name"}}
    resp = await client.put(url, json=full, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["displayName"] == "Another Name"

    deactivate = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    resp = await client.patch(url, json=deactivate, headers=tenant.headers)
    assert resp.status == 200 and (await resp.json())["active"] is False
    assert await db.fetchval("SELECT active FROM users WHERE id = $1::uuid", user["id"]) is False


async def test_okta_reference_group_sequence_with_push(client, tenant, db, settings):
    users = [await post_user(client, tenant) for _ in range(3)]
    await create_team(client, tenant, "Test SCIMv2")
    resp = await client.post(
        "/scim/v2/Groups",
        json={"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []},
        headers=tenant.headers,
    )
    assert resp.status == 201
    group = await resp.json()
    url = f"/scim/v2/Groups/{group['id']}"
    resp = await client.get("/scim/v2/Groups?startIndex=1&count=100", headers=tenant.headers)
    assert group["id"] in {g["id"] for g in (await resp.json())["Resources"]}

    rename = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {"id": group["id"], "displayName": "Test SCIMv2"}}],
    }
    resp = await client.patch(url, json=rename, headers=tenant.headers)
    assert resp.status == 204
    members = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "remove", "path": f'members[value eq "{users[2]["id"]}"]'},
            {
                "op": "add",
                "path": "members",
                "value": [{"value": users[0]["id"], "display": users[0]["userName"]}],
            },
        ],
    }
    resp = await client.patch(url, json=members, headers=tenant.headers)
    assert resp.status == 204
    # Okta's push: replace members with the full list.
    push = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "replace", "path": "members", "value": [{"value": u["id"]} for u in users[1:]]}
        ],
    }
    resp = await client.patch(url, json=push, headers=tenant.headers)
    assert resp.status == 204
    rows = await db.fetch("SELECT user_id::text FROM group_members WHERE group_id = $1::uuid", group["id"])
    assert {r["user_id"] for r in rows} == {u["id"] for u in users[1:]}
    await run_worker(settings)
    team = await db.fetch(
        "SELECT tm.user_id::text FROM team_members tm JOIN teams t ON t.id = tm.team_id "
        "WHERE t.tenant_id = $1::uuid AND t.name = 'Test SCIMv2'",
        tenant.id,
    )
    assert {r["user_id"] for r in team} == {u["id"] for u in users[1:]}

    resp = await client.put(
        url,
        json={"schemas": [GROUP_SCHEMA], "id": group["id"], "displayName": "Test SCIMv2", "members": []},
        headers=tenant.headers,
    )
    assert resp.status == 200
    resp = await client.delete(url, headers=tenant.headers)
    assert resp.status == 204
