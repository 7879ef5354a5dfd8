"""SCIM discovery: /ServiceProviderConfig, /ResourceTypes, /Schemas (RFC 7644 §4)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, response_schema

from schemas.catalog import ResourceTypeDef
from schemas.group import GROUP_RESOURCE
from schemas.messages import (
    ResourceTypeListResponseSchema,
    ResourceTypeSchema,
    SchemaDefinitionSchema,
    SchemaListResponseSchema,
    ServiceProviderConfigSchema,
)
from schemas.user import USER_RESOURCE
from scimsvc.scim.errors import not_found
from scimsvc.scim.resources import list_response
from scimsvc.web.keys import SETTINGS
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import scim_response

routes = web.RouteTableDef()

RESOURCE_TYPES: tuple[ResourceTypeDef, ...] = (USER_RESOURCE, GROUP_RESOURCE)


def _base(request: web.Request) -> str:
    return request.app[SETTINGS].public_url + "/scim/v2"


def service_provider_config(
    *, base: str, max_results: int, bulk_max_operations: int, bulk_max_payload: int
) -> dict[str, Any]:
    """What this server really supports, with the limits it enforces (passwords are never stored)."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": True},
        "bulk": {"supported": True, "maxOperations": bulk_max_operations, "maxPayloadSize": bulk_max_payload},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A per-tenant SCIM token from the operator, sent as 'Authorization: Bearer'",
                "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }


def _schemas() -> dict[str, Any]:
    return {s.id.lower(): s for rt in RESOURCE_TYPES for s in rt.schemas}


@routes.get("/scim/v2/ServiceProviderConfig")
@docs(tags=["SCIM discovery"], summary="What this server supports")
@response_schema(ServiceProviderConfigSchema, 200)
async def get_service_provider_config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return scim_response(
        service_provider_config(
            base=_base(request),
            max_results=settings.max_page_size,
            bulk_max_operations=settings.bulk_max_operations,
            bulk_max_payload=settings.bulk_payload_limit,
        )
    )


@routes.get("/scim/v2/ResourceTypes")
@docs(tags=["SCIM discovery"], summary="List resource types")
@response_schema(ResourceTypeListResponseSchema, 200)
async def list_resource_types(request: web.Request) -> web.Response:
    base = _base(request)
    docs = [rt.document(location=f"{base}/ResourceTypes/{rt.name}") for rt in RESOURCE_TYPES]
    return scim_response(list_response(docs, total=len(docs), start_index=1))


@routes.get("/scim/v2/ResourceTypes/{name}")
@docs(tags=["SCIM discovery"], summary="Read a resource type")
@response_schema(ResourceTypeSchema, 200)
@errors(404)
async def get_resource_type(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    for rt in RESOURCE_TYPES:
        if rt.name.lower() == name.lower():
            return scim_response(rt.document(location=f"{_base(request)}/ResourceTypes/{rt.name}"))
    raise not_found(f"no resource type {name!r}; see /ResourceTypes")


@routes.get("/scim/v2/Schemas")
@docs(tags=["SCIM discovery"], summary="List SCIM schemas")
@response_schema(SchemaListResponseSchema, 200)
async def list_schemas(request: web.Request) -> web.Response:
    base = _base(request)
    docs = [s.document(location=f"{base}/Schemas/{s.id}") for s in _schemas().values()]
    return scim_response(list_response(docs, total=len(docs), start_index=1))


@routes.get("/scim/v2/Schemas/{id}")
@docs(tags=["SCIM discovery"], summary="Read a SCIM schema")
@response_schema(SchemaDefinitionSchema, 200)
@errors(404)
async def get_schema(request: web.Request) -> web.Response:
    schema_id = request.match_info["id"]
    schema = _schemas().get(schema_id.lower())
    if schema is None:
        raise not_found(f"no schema {schema_id!r}; see /Schemas")
    return scim_response(schema.document(location=f"{_base(request)}/Schemas/{schema.id}"))
