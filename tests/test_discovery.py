"""/ServiceProviderConfig, /ResourceTypes and /Schemas tell the truth."""

from __future__ import annotations


async def test_service_provider_config_advertises_only_what_works(client, tenant):
    resp = await client.get("/scim/v2/ServiceProviderConfig", headers=tenant.headers)
    assert resp.status == 200 and resp.content_type == "application/scim+json"
    config = await resp.json()
    assert config["patch"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 1000}
    assert config["bulk"]["supported"] is False and config["sort"]["supported"] is False
    assert config["changePassword"]["supported"] is False
    assert config["etag"]["supported"] is True
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"


async def test_resource_types_and_schemas_describe_users(client, tenant):
    resp = await client.get("/scim/v2/ResourceTypes", headers=tenant.headers)
    types = await resp.json()
    assert types["totalResults"] == 2
    user_type = next(t for t in types["Resources"] if t["name"] == "User")
    assert user_type["endpoint"] == "/Users"
    assert user_type["schema"] == "urn:ietf:params:scim:schemas:core:2.0:User"
    extension_ids = {e["schema"] for e in user_type["schemaExtensions"]}
    assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" in extension_ids

    resp = await client.get("/scim/v2/Schemas", headers=tenant.headers)
    schemas = {s["id"]: s for s in (await resp.json())["Resources"]}
    group = "urn:ietf:params:scim:schemas:core:2.0:Group"
    assert extension_ids | {user_type["schema"], group} == set(schemas)
    user = schemas["urn:ietf:params:scim:schemas:core:2.0:User"]
    attrs = {a["name"]: a for a in user["attributes"]}
    assert attrs["userName"]["required"] is True and attrs["userName"]["uniqueness"] == "server"
    assert attrs["userName"]["caseExact"] is False
    # Passwords are never stored (a PUT or PATCH that sets one is refused), so the schema leaves it out.
    assert "password" not in attrs
    assert attrs["emails"]["multiValued"] is True
    assert {s["name"] for s in attrs["emails"]["subAttributes"]} >= {"value", "type", "primary"}

    resp = await client.get(
        "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", headers=tenant.headers
    )
    assert resp.status == 200 and (await resp.json())["id"] == "urn:ietf:params:scim:schemas:core:2.0:User"
    resp = await client.get("/scim/v2/Schemas/urn:nope", headers=tenant.headers)
    assert resp.status == 404
