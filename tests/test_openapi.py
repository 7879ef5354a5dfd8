"""The OpenAPI document at /api/docs/openapi.json and the Swagger UI at /api/docs."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from openapi_spec_validator import validate

from schemas.user import MAX_USER_NAME
from scimsvc.web.openapi import DOCS_PATH, SPEC_PATH, STATIC_PATH

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
CONSOLE_PREFIX = "/console"
PUBLIC_PATHS = {"/ops/health", "/ops/ready", "/metrics", DOCS_PATH, SPEC_PATH}


async def _document(client: Any) -> dict[str, Any]:
    resp = await client.get(SPEC_PATH)  # no credential: the document is public
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


async def test_document_is_valid_openapi_3(client: Any) -> None:
    doc = await _document(client)
    assert doc["openapi"].startswith("3.0")
    validate(doc)  # raises with the first violation


async def test_every_route_of_the_app_is_documented(client: Any) -> None:
    doc = await _document(client)
    app: web.Application = client.app
    documented = {(method, path) for path, method, _ in _operations(doc)}
    served = set()
    for route in app.router.routes():
        if isinstance(route.resource, web.StaticResource):
            continue  # Swagger UI's and the console's own files
        assert route.resource is not None
        method, path = route.method.lower(), route.resource.canonical
        if path.startswith(CONSOLE_PREFIX):
            continue  # HTML pages for people (cookie sign-in), not part of the API
        if method == "head":  # aiohttp's twin of each GET
            assert ("get", path) in documented, path
            continue
        served.add((method, path))
    assert served - documented == set()
    assert documented - served == set()
    assert {"/scim/v2/Users/{id}", "/admin/v1/tenants/{tid}/teams", "/ops/queue", "/metrics"} <= set(
        doc["paths"]
    )


async def test_each_operation_names_the_credential_the_server_asks_for(client: Any) -> None:
    doc = await _document(client)
    for path, method, op in _operations(doc):
        if path.startswith("/scim/v2"):
            assert op.get("security") == [{"scimToken": []}], (method, path)
        elif path.startswith(("/admin/v1", "/ops/queue")):
            assert op.get("security") == [{"operatorKey": []}], (method, path)
        else:
            assert path in PUBLIC_PATHS and "security" not in op, (method, path)
        if "security" in op:
            assert "401" in op["responses"], (method, path)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["scimToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["scimToken"]["description"],
    }
    assert schemes["operatorKey"]["scheme"] == "bearer"


async def test_documented_security_matches_what_the_server_does(client: Any) -> None:
    """Without a credential each secured operation answers a documented 401; public ones never do."""
    doc = await _document(client)
    for path, method, op in _operations(doc):
        url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
        resp = await client.request(method.upper(), url, json={} if "requestBody" in op else None)
        if "security" in op:
            assert resp.status == 401, (method, path, resp.status)
            body = await resp.json(content_type=None)
            assert body["schemas"] == [SCIM_ERROR] and body["status"] == "401"
            assert resp.content_type in op["responses"]["401"]["content"], (method, path)
        else:
            assert resp.status != 401, (method, path)


async def test_errors_are_documented_as_scim_error_bodies(client: Any) -> None:
    doc = await _document(client)
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"schemas", "status", "detail"}
    for path, method, op in _operations(doc):
        for status, response in op["responses"].items():
            if int(status) < 400 or path == "/ops/ready":  # 503 of /ops/ready says which check failed
                continue
            schemas = [c["schema"] for c in response["content"].values()]
            assert schemas == [{"$ref": "#/components/schemas/Error"}], (method, path, status)


async def test_scim_operations_speak_scim_json(client: Any) -> None:
    doc = await _document(client)
    create = doc["paths"]["/scim/v2/Users"]["post"]
    assert set(create["requestBody"]["content"]) == {"application/scim+json", "application/json"}
    assert set(create["responses"]["201"]["content"]) == {"application/scim+json"}
    assert set(doc["paths"]["/admin/v1/tenants"]["post"]["responses"]["201"]["content"]) == {
        "application/json"
    }


async def test_request_bodies_come_from_the_validating_schemas(client: Any) -> None:
    doc = await _document(client)
    body = doc["paths"]["/scim/v2/Users"]["post"]["requestBody"]["content"]["application/scim+json"]["schema"]
    user = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert user["required"] == ["userName"]
    assert user["properties"]["userName"]["maxLength"] == MAX_USER_NAME
    assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" in user["properties"]
    tenant = doc["paths"]["/admin/v1/tenants"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    tenant_schema = doc["components"]["schemas"][tenant["$ref"].rsplit("/", 1)[1]]
    assert tenant_schema["additionalProperties"] is False  # the admin API refuses unknown fields
    # No property is named "$ref": tools would read it as a reference (see scimsvc/web/openapi.py).
    for schema in doc["components"]["schemas"].values():
        assert "$ref" not in schema.get("properties", {})


async def test_swagger_ui_loads(client: Any) -> None:
    resp = await client.get(DOCS_PATH)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert f'url: "{SPEC_PATH}"' in page
    for asset in re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page):
        assert asset.startswith(STATIC_PATH + "/")
        resp = await client.get(asset)
        assert resp.status == 200, asset
        assert len(await resp.read()) > 100, asset
