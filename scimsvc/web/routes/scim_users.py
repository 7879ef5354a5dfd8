"""SCIM /Users views: parse the request, call the user service, render the response."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, headers_schema, querystring_schema, request_schema, response_schema

from schemas.messages import (
    USER_RESPONSE,
    IfMatchSchema,
    IfNoneMatchSchema,
    PatchOpSchema,
    ProjectionQuerySchema,
    SearchRequestSchema,
    UserListQuerySchema,
    UserListResponseSchema,
)
from schemas.user import UserSchema
from scimsvc.scim.search import search_query
from scimsvc.services import users as user_service
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import read_scim_json
from scimsvc.web.scim_responses import not_modified_response, scope_of, user_response, users_list

routes = web.RouteTableDef()


@routes.get("/scim/v2/Users")
@docs(tags=["SCIM Users"], summary="List users: filter, sort, page and project")
@querystring_schema(UserListQuerySchema)
@response_schema(UserListResponseSchema, 200)
@errors(400)
async def list_users(request: web.Request) -> web.Response:
    return await users_list(request, request.query)


@routes.post("/scim/v2/Users/.search")
@docs(tags=["SCIM Users"], summary="Search users (the GET query as a POST body)")
@request_schema(SearchRequestSchema)
@response_schema(UserListResponseSchema, 200)
async def search_users(request: web.Request) -> web.Response:
    query = search_query(await read_scim_json(request))
    return await users_list(request, query)


@routes.post("/scim/v2/Users")
@docs(
    tags=["SCIM Users"],
    summary="Create a user",
    description="The worker then allocates its license and teams.",
)
@request_schema(UserSchema)
@querystring_schema(ProjectionQuerySchema)
@response_schema(USER_RESPONSE, 201, description="The user as stored")
@errors(409)
async def create_user(request: web.Request) -> web.Response:
    row = await user_service.create_user(scope_of(request), await read_scim_json(request))
    return user_response(request, row, status=201)


@routes.get("/scim/v2/Users/{id}")
@docs(
    tags=["SCIM Users"],
    summary="Read a user",
    responses={304: {"description": "Not modified (If-None-Match)"}},
)
@querystring_schema(ProjectionQuerySchema)
@headers_schema(IfNoneMatchSchema)
@response_schema(USER_RESPONSE, 200)
@errors(404)
async def get_user(request: web.Request) -> web.Response:
    row = await user_service.get_user(scope_of(request), request.match_info["id"])
    return not_modified_response(request, row["version"]) or user_response(request, row)


@routes.put("/scim/v2/Users/{id}")
@docs(tags=["SCIM Users"], summary="Replace a user")
@request_schema(UserSchema)
@querystring_schema(ProjectionQuerySchema)
@headers_schema(IfMatchSchema)
@response_schema(USER_RESPONSE, 200)
@errors(404, 409, 412)
async def replace_user(request: web.Request) -> web.Response:
    body = await read_scim_json(request)
    row = await user_service.replace_user(
        scope_of(request), request.match_info["id"], body, if_match=request.headers.get("If-Match")
    )
    return user_response(request, row)


@routes.patch("/scim/v2/Users/{id}")
@docs(
    tags=["SCIM Users"], summary="Change a user (RFC 7644 PATCH)", description="`active: false` deactivates."
)
@request_schema(PatchOpSchema)
@querystring_schema(ProjectionQuerySchema)
@headers_schema(IfMatchSchema)
@response_schema(USER_RESPONSE, 200)
@errors(404, 409, 412)
async def patch_user(request: web.Request) -> web.Response:
    body = await read_scim_json(request)
    row = await user_service.patch_user(
        scope_of(request), request.match_info["id"], body, if_match=request.headers.get("If-Match")
    )
    return user_response(request, row)


@routes.delete("/scim/v2/Users/{id}")
@docs(tags=["SCIM Users"], summary="Delete a user (deprovision)", responses={204: {"description": "Deleted"}})
@headers_schema(IfMatchSchema)
@errors(404, 412)
async def delete_user(request: web.Request) -> web.Response:
    await user_service.delete_user(
        scope_of(request), request.match_info["id"], if_match=request.headers.get("If-Match")
    )
    return web.Response(status=204)
