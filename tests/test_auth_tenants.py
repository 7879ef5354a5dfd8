"""Tokens, tenants and isolation: who may see and touch what."""

from __future__ import annotations

from tests.conftest import ADMIN_HEADERS, unique_email, user_body


async def test_missing_or_wrong_token_is_401_with_www_authenticate(client, tenant):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        resp = await client.get("/scim/v2/Users", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        body = await resp.json()
        assert body["status"] == "401" and body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


async def test_revoked_token_is_401_and_a_second_token_keeps_working(client, tenant, db):
    resp = await client.post(f"/admin/v1/tenants/{tenant.id}/scim/tokens", headers=ADMIN_HEADERS)
    second = (await resp.json())["token"]
    resp = await client.delete(
        f"/admin/v1/tenants/{tenant.id}/scim/tokens/{tenant.token_id}", headers=ADMIN_HEADERS
    )
    assert resp.status == 204
    resp = await client.get("/scim/v2/Users", headers=tenant.headers)
    assert resp.status == 401
    resp = await client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {second}"})
    assert resp.status == 200
    # Only hashes are stored.
    stored = await db.fetch("SELECT token_hash FROM scim_tokens WHERE tenant_id = $1::uuid", tenant.id)
    assert all(second.encode() not in bytes(r["token_hash"]) and len(r["token_hash"]) == 32 for r in stored)


async def test_disabled_scim_is_403_and_reenabling_restores_access(client, tenant):
    resp = await client.put(
        f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200 and (await resp.json()) == {"enabled": False}
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    assert resp.status == 403
    assert "turned off" in (await resp.json())["detail"]
    await client.put(f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": True}, headers=ADMIN_HEADERS)
    resp = await client.get("/scim/v2/Users", headers=tenant.headers)
    assert resp.status == 200


async def test_tenant_cannot_read_or_touch_another_tenants_user(client, tenant, new_tenant, db):
    other = await new_tenant()
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=other.headers)
    theirs = await resp.json()
    url = f"/scim/v2/Users/{theirs['id']}"
    assert (await client.get(url, headers=tenant.headers)).status == 404
    assert (
        await client.put(url, json=user_body(theirs["userName"], displayName="pwned"), headers=tenant.headers)
    ).status == 404
    patch = {"Operations": [{"op": "replace", "value": {"active": False}}]}
    assert (await client.patch(url, json=patch, headers=tenant.headers)).status == 404
    assert (await client.delete(url, headers=tenant.headers)).status == 404
    row = await db.fetchrow(
        "SELECT active, scim_linked, display_name FROM users WHERE id = $1::uuid", theirs["id"]
    )
    assert row["active"] and row["scim_linked"] and row["display_name"] is None


async def test_admin_api_requires_the_operator_key(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = await client.post("/admin/v1/tenants", json={"name": "x"}, headers=headers)
        assert resp.status == 401


async def test_admin_creates_reads_and_patches_a_tenant(client):
    resp = await client.post("/admin/v1/tenants", json={"name": "Acme", "seats": 5}, headers=ADMIN_HEADERS)
    assert resp.status == 201
    tenant = await resp.json()
    assert tenant["name"] == "Acme" and tenant["seats"] == 5 and tenant["scim_enabled"] is True
    assert tenant["fallback_license"] == "free_restricted" and tenant["flexible_licenses"] is False
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant['id']}",
        json={"seats": 7, "allowed_domains": ["@Acme.COM"]},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200
    patched = await resp.json()
    assert patched["seats"] == 7 and patched["allowed_domains"] == ["acme.com"]
    resp = await client.get(f"/admin/v1/tenants/{tenant['id']}", headers=ADMIN_HEADERS)
    assert (await resp.json())["seats"] == 7


async def test_admin_rejects_bad_settings_with_a_clear_error(client, db):
    before = await db.fetchval("SELECT count(*) FROM tenants")
    for body in (
        {"seats": 3},
        {"name": "x", "seats": -1},
        {"name": "x", "seats": "many"},
        {"name": "x", "fallback_license": "gold"},
        {"name": "x", "bogus": 1},
        {"name": " \u200b\t"},  # nothing a person could read or click in the console's list
    ):
        resp = await client.post("/admin/v1/tenants", json=body, headers=ADMIN_HEADERS)
        assert resp.status == 400, body
        assert (await resp.json())["detail"]
    resp = await client.post("/admin/v1/tenants", json={"name": "\u2028"}, headers=ADMIN_HEADERS)
    assert "must contain a visible character" in (await resp.json())["detail"]
    assert await db.fetchval("SELECT count(*) FROM tenants") == before
    resp = await client.get("/admin/v1/tenants/not-a-uuid", headers=ADMIN_HEADERS)
    assert resp.status == 404


async def test_admin_flags_take_a_json_boolean_only(client, tenant, db):
    # marshmallow's Boolean would take "yes", "on", 1 or "0": the admin API's flags take true or false, as
    # portal links' `redirect` does (schemas/base.py:JsonBoolean), and a refusal changes nothing.
    hooks = f"/admin/v1/tenants/{tenant.id}/webhooks"
    for method, path, body in (
        ("PUT", f"/admin/v1/tenants/{tenant.id}/scim", {"enabled": "no"}),
        ("PUT", f"/admin/v1/tenants/{tenant.id}/scim", {"enabled": 0}),
        ("PATCH", f"/admin/v1/tenants/{tenant.id}", {"scim_enabled": "off"}),
        ("PATCH", f"/admin/v1/tenants/{tenant.id}", {"flexible_licenses": 1}),
        ("POST", hooks, {"url": "https://hooks.example.com/x", "enabled": "false"}),
    ):
        resp = await client.request(method, path, json=body, headers=ADMIN_HEADERS)
        assert resp.status == 400, (path, body, resp.status)
        assert "must be true or false (a JSON boolean)" in (await resp.json())["detail"], body
    row = await db.fetchrow(
        "SELECT scim_enabled, flexible_licenses FROM tenants WHERE id = $1::uuid", tenant.id
    )
    assert row["scim_enabled"] is True and row["flexible_licenses"] is False
    assert (
        await db.fetchval("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1::uuid", tenant.id) == 0
    )
    resp = await client.put(
        f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200 and (await resp.json()) == {"enabled": False}
    assert await db.fetchval("SELECT scim_enabled FROM tenants WHERE id = $1::uuid", tenant.id) is False
