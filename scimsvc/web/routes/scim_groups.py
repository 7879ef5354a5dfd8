"""SCIM /Groups views: parse the request, call the group service, render the response."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, headers_schema, querystring_schema, request_schema, response_schema

from schemas.group import GroupSchema
from schemas.messages import (
    GROUP_RESPONSE,
    GroupListQuerySchema,
    GroupListResponseSchema,
    IfMatchSchema,
    IfNoneMatchSchema,
    PatchOpSchema,
    ProjectionQuerySchema,
    SearchRequestSchema,
)
from scimsvc.scim.errors import ScimError
from scimsvc.scim.search import search_query
from scimsvc.services import groups as group_service
from scimsvc.web.body_limits import body_limit
from scimsvc.web.keys import SCIM_BODY, SETTINGS
from scimsvc.web.openapi import errors
from scimsvc.web.route_template import route_template
from scimsvc.web.routes.responses import read_scim_json
from scimsvc.web.scim_responses import (
    changed_response,
    group_response,
    groups_list,
    not_modified_response,
    scope_of,
)

routes = web.RouteTableDef()


async def read_group_json(request: web.Request, *, limit: int, too_large: str) -> Any:
    """The JSON body under the group routes' own size limit (a large push exceeds the app-wide one)."""
    if request.content_length is not None and request.content_length > limit:
        raise ScimError(413, too_large)
    try:
        body = await read_scim_json(request.clone(client_max_size=limit))
    except web.HTTPRequestEntityTooLarge:
        raise ScimError(413, too_large) from None
    request[SCIM_BODY] = body  # read through a clone: the provisioning log reads the original request
    return body


def _body_limit(request: web.Request) -> int:
    return body_limit(request.app[SETTINGS], request.method, route_template(request))


async def read_group_body(request: web.Request) -> Any:
    limit = _body_limit(request)
    return await read_group_json(
        request, limit=limit, too_large=f"a Group body may be at most {limit} bytes: send fewer members"
    )


async def read_group_patch(request: web.Request) -> Any:
    limit = _body_limit(request)
    return await read_group_json(
        request,
        limit=limit,
        too_large=(
            f"a group PATCH may be at most {limit} bytes: split the change into several PATCH requests, "
            "or replace the whole member list with PUT /Groups/{id}"
        ),
    )


@routes.get("/scim/v2/Groups")
@docs(tags=["SCIM Groups"], summary="List groups: filter, page and project")
@querystring_schema(GroupListQuerySchema)
@response_schema(GroupListResponseSchema, 200)
@errors(400)
async def list_groups(request: web.Request) -> web.Response:
    return await groups_list(request, request.query)


@routes.post("/scim/v2/Groups/.search")
@docs(tags=["SCIM Groups"], summary="Search groups (the GET query as a POST body)")
@request_schema(SearchRequestSchema)
@response_schema(GroupListResponseSchema, 200)
async def search_groups(request: web.Request) -> web.Response:
    query = search_query(await read_scim_json(request))
    return await groups_list(request, query)


@routes.post("/scim/v2/Groups")
@docs(
    tags=["SCIM Groups"],
    summary="Create a group",
    description="displayName must be the name of an existing team.",
)
@request_schema(GroupSchema)
@querystring_schema(ProjectionQuerySchema)
@response_schema(GROUP_RESPONSE, 201, description="The group as stored")
@errors(409)
async def create_group(request: web.Request) -> web.Response:
    row = await group_service.create_group(scope_of(request), await read_group_body(request))
    return await group_response(request, row, status=201)


@routes.get("/scim/v2/Groups/{id}")
@docs(
    tags=["SCIM Groups"],
    summary="Read a group",
    responses={304: {"description": "Not modified (If-None-Match)"}},
)
@querystring_schema(ProjectionQuerySchema)
@headers_schema(IfNoneMatchSchema)
@response_schema(GROUP_RESPONSE, 200)
@errors(404)
async def get_group(request: web.Request) -> web.Response:
    row = await group_service.get_group(scope_of(request), request.match_info["id"])
    return not_modified_response(request, row["version"]) or await group_response(request, row)


@routes.put("/scim/v2/Groups/{id}")
@docs(tags=["SCIM Groups"], summary="Replace a group and its members")
@request_schema(GroupSchema)
@querystring_schema(ProjectionQuerySchema)
@headers_schema(IfMatchSchema)
@response_schema(GROUP_RESPONSE, 200)
@errors(404, 409, 412)
async def replace_group(request: web.Request) -> web.Response:
    body = await read_group_body(request)
    pushed = await group_service.push_group(
        scope_of(request), request.match_info["id"], body, if_match=request.headers.get("If-Match")
    )
    return await group_response(request, pushed.row, written=pushed.members)


@routes.patch("/scim/v2/Groups/{id}")
@docs(
    tags=["SCIM Groups"],
    summary="Change a group or its members (RFC 7644 PATCH)",
    responses={204: {"description": "Changed; no body unless attributes or excludedAttributes are given"}},
)
@request_schema(PatchOpSchema)
@querystring_schema(ProjectionQuerySchema)
@headers_schema(IfMatchSchema)
@response_schema(GROUP_RESPONSE, 200, description="Changed (attributes or excludedAttributes given)")
@errors(404, 409, 412)
async def patch_group(request: web.Request) -> web.Response:
    body = await read_group_patch(request)
    row = await group_service.patch_group(
        scope_of(request), request.match_info["id"], body, if_match=request.headers.get("If-Match")
    )
    if "attributes" in request.query or "excludedAttributes" in request.query:
        return await group_response(request, row)
    return changed_response(row["version"])


@routes.delete("/scim/v2/Groups/{id}")
@docs(tags=["SCIM Groups"], summary="Delete a group", responses={204: {"description": "Deleted"}})
@headers_schema(IfMatchSchema)
@errors(404, 412)
async def delete_group(request: web.Request) -> web.Response:
    await group_service.delete_group(
        scope_of(request), request.match_info["id"], if_match=request.headers.get("If-Match")
    )
    return web.Response(status=204)
