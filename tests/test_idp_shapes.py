"""Request sequences exactly as Okta and Microsoft Entra ID send them."""

from __future__ import annotations

from tests.conftest import unique_email

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
