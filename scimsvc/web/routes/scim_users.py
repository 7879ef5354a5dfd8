"""SCIM /Users views: parse the request, call the user service, render the response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from schemas.user import USER_RESOURCE, UserSchema
from scimsvc.scim.resources import (
    list_response,
    not_modified,
    parse_paging,
    parse_projection,
    project,
    render_user,
    weak_etag,
)
from scimsvc.scim.search import search_query
from scimsvc.scim.sorting import parse_sort
from scimsvc.services import users as user_service
from scimsvc.services.changes import Scope
from scimsvc.web.keys import ALLOWED_DOMAINS, NEW_USERS, POOL, REDIS, REQUEST_ID, SETTINGS, TENANT_ID
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import read_scim_json, scim_response

routes = web.RouteTableDef()


def scope_of(request: web.Request) -> Scope:
    app = request.app
    return Scope(
        pool=app[POOL],
        redis=app[REDIS],
        settings=app[SETTINGS],
        tenant_id=request[TENANT_ID],
        request_id=request.get(REQUEST_ID),
        allowed_domains=request[ALLOWED_DOMAINS],
        new_users=app[NEW_USERS],
    )


def base_url(request: web.Request) -> str:
    return request.app[SETTINGS].public_url + "/scim/v2"


def user_response(request: web.Request, row: Mapping[str, Any], *, status: int = 200) -> web.Response:
    """The user as SCIM, projected by the query's attributes/excludedAttributes (on writes too)."""
    body = render_user(row, base_url=base_url(request))
    headers = {"ETag": body["meta"]["version"]}
    if status == 201:
        headers["Location"] = body["meta"]["location"]
    projected = project(body, parse_projection(request.query, USER_RESOURCE), USER_RESOURCE)
    return scim_response(projected, status=status, headers=headers)


async def users_page(request: web.Request, query: Mapping[str, str]) -> dict[str, Any]:
    """The ListResponse for a query (GET /Users, or the body of POST /Users/.search)."""
    settings = request.app[SETTINGS]
    start_index, count = parse_paging(
        query, default_count=settings.default_page_size, max_count=settings.max_page_size
    )
    projection = parse_projection(query, USER_RESOURCE)
    sort = parse_sort(query.get("sortBy"), query.get("sortOrder"), USER_RESOURCE)
    total, rows = await user_service.list_users(
        scope_of(request), filter_text=query.get("filter"), start_index=start_index, count=count, sort=sort
    )
    url = base_url(request)
    resources = [project(render_user(r, base_url=url), projection, USER_RESOURCE) for r in rows]
    return list_response(resources, total=total, start_index=start_index)


@routes.get("/scim/v2/Users")
@docs(tags=["SCIM Users"], summary="List users: filter, sort, page and project")
@querystring_schema(UserListQuerySchema)
@response_schema(UserListResponseSchema, 200)
@errors(400)
async def list_users(request: web.Request) -> web.Response:
    return scim_response(await users_page(request, request.query))


@routes.post("/scim/v2/Users/.search")
@docs(tags=["SCIM Users"], summary="Search users (the GET query as a POST body)")
@request_schema(SearchRequestSchema)
@response_schema(UserListResponseSchema, 200)
async def search_users(request: web.Request) -> web.Response:
    return scim_response(await users_page(request, search_query(await read_scim_json(request))))


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
    if not_modified(request.headers.get("If-None-Match"), row["version"]):
        return web.Response(status=304, headers={"ETag": weak_etag(row["version"])})
    return user_response(request, row)


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
