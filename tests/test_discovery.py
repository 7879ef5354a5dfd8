"""/ServiceProviderConfig, /ResourceTypes and /Schemas tell the truth."""

from __future__ import annotations


async def test_service_provider_config_advertises_only_what_works(client, tenant):
    resp = await client.get("/scim/v2/ServiceProviderConfig", headers=tenant.headers)
    assert resp.status == 200 and resp.content_type == "application/scim+json"
    config = await resp.json()
    assert config["patch"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 1000}
    assert config["bulk"] == {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1_048_576}
    assert config["sort"]["supported"] is True
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


async def test_product_extension_is_described(client, tenant):
    product = "urn:scimsvc:schemas:extension:product:2.0:User"
    resp = await client.get("/scim/v2/ResourceTypes/User", headers=tenant.headers)
    extensions = {e["schema"]: e["required"] for e in (await resp.json())["schemaExtensions"]}
    assert extensions == {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": False, product: False}
    resp = await client.get(f"/scim/v2/Schemas/{product}", headers=tenant.headers)
    attrs = {a["name"]: a for a in (await resp.json())["attributes"]}
    assert set(attrs) == {"provisioningState", "license", "seat", "waiting", "provisionedAt"}
    assert all(a["mutability"] == "readOnly" for a in attrs.values())
    assert attrs["provisionedAt"]["type"] == "dateTime" and attrs["seat"]["type"] == "boolean"
    resp = await client.get(
        "/scim/v2/Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", headers=tenant.headers
    )
    manager = next(a for a in (await resp.json())["attributes"] if a["name"] == "manager")
    display = next(s for s in manager["subAttributes"] if s["name"] == "displayName")
    assert display["mutability"] == "readOnly" and display["returned"] == "request"
