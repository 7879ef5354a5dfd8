"""SCIM /Groups views: parse the request, call the group service, render the response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from schemas.group import GROUP_RESOURCE
from scimsvc import group_service
from scimsvc.keys import SETTINGS
from scimsvc.routes.responses import read_json, scim_response
from scimsvc.routes.scim_users import base_url, scope_of
from scimsvc.scim.errors import ScimError
from scimsvc.scim.resources import (
    Projection,
    list_response,
    not_modified,
    parse_paging,
    parse_projection,
    project,
    render_group,
    weak_etag,
)
from scimsvc.scim.search import search_query
from scimsvc.scim.sorting import parse_sort

routes = web.RouteTableDef()


async def read_group_json(request: web.Request, *, limit: int, too_large: str) -> Any:
    """The JSON body under the group routes' own size limit (a large push exceeds the app-wide one)."""
    if request.content_length is not None and request.content_length > limit:
        raise ScimError(413, too_large)
    try:
        return await read_json(request.clone(client_max_size=limit))
    except web.HTTPRequestEntityTooLarge:
        raise ScimError(413, too_large) from None


async def read_group_body(request: web.Request) -> Any:
    limit = request.app[SETTINGS].group_max_body_bytes
    return await read_group_json(
        request, limit=limit, too_large=f"a Group body may be at most {limit} bytes: send fewer members"
    )


async def read_group_patch(request: web.Request) -> Any:
    limit = request.app[SETTINGS].group_patch_max_bytes
    return await read_group_json(
        request,
        limit=limit,
        too_large=(
            f"a group PATCH may be at most {limit} bytes: split the change into several PATCH requests, "
            "or replace the whole member list with PUT /Groups/{id}"
        ),
    )


async def group_body(request: web.Request, row: Mapping[str, Any], projection: Projection) -> dict[str, Any]:
    """The group as SCIM, reading its members only when the projection returns them."""
    members = None
    if projection.wants("members"):
        members = (await group_service.members_of(scope_of(request), [row["id"]]))[row["id"]]
    body = render_group(row, members, base_url=base_url(request))
    return project(body, projection, GROUP_RESOURCE)


async def group_response(request: web.Request, row: Mapping[str, Any], *, status: int = 200) -> web.Response:
    body = await group_body(request, row, parse_projection(request.query, GROUP_RESOURCE))
    headers = {"ETag": weak_etag(row["version"])}
    if status == 201:
        headers["Location"] = f"{base_url(request)}/Groups/{row['id']}"
    return scim_response(body, status=status, headers=headers)


async def groups_page(request: web.Request, query: Mapping[str, str]) -> dict[str, Any]:
    """The ListResponse for a query (GET /Groups, or the body of POST /Groups/.search)."""
    settings = request.app[SETTINGS]
    start_index, count = parse_paging(
        query, default_count=settings.default_page_size, max_count=settings.max_page_size
    )
    projection = parse_projection(query, GROUP_RESOURCE)
    sort = parse_sort(query.get("sortBy"), query.get("sortOrder"), GROUP_RESOURCE)
    scope = scope_of(request)
    total, rows = await group_service.list_groups(
        scope, filter_text=query.get("filter"), start_index=start_index, count=count, sort=sort
    )
    resources = await render_groups(request, rows, projection)
    return list_response(resources, total=total, start_index=start_index)


async def render_groups(
    request: web.Request, rows: list[Any], projection: Projection
) -> list[dict[str, Any]]:
    """Groups as SCIM, reading the members of all of them in one query, and only if they are returned."""
    scope = scope_of(request)
    members = (
        await group_service.members_of(scope, [r["id"] for r in rows]) if projection.wants("members") else {}
    )
    url = base_url(request)
    return [
        project(render_group(r, members.get(r["id"]), base_url=url), projection, GROUP_RESOURCE) for r in rows
    ]


@routes.get("/scim/v2/Groups")
async def list_groups(request: web.Request) -> web.Response:
    return scim_response(await groups_page(request, request.query))


@routes.post("/scim/v2/Groups/.search")
async def search_groups(request: web.Request) -> web.Response:
    return scim_response(await groups_page(request, search_query(await read_json(request))))


@routes.post("/scim/v2/Groups")
async def create_group(request: web.Request) -> web.Response:
    row = await group_service.create_group(scope_of(request), await read_group_body(request))
    return await group_response(request, row, status=201)


@routes.get("/scim/v2/Groups/{id}")
async def get_group(request: web.Request) -> web.Response:
    row = await group_service.get_group(scope_of(request), request.match_info["id"])
    if not_modified(request.headers.get("If-None-Match"), row["version"]):
        return web.Response(status=304, headers={"ETag": weak_etag(row["version"])})
    return await group_response(request, row)


@routes.put("/scim/v2/Groups/{id}")
async def replace_group(request: web.Request) -> web.Response:
    body = await read_group_body(request)
    row = await group_service.replace_group(
        scope_of(request), request.match_info["id"], body, if_match=request.headers.get("If-Match")
    )
    return await group_response(request, row)


@routes.patch("/scim/v2/Groups/{id}")
async def patch_group(request: web.Request) -> web.Response:
    body = await read_group_patch(request)
    row = await group_service.patch_group(
        scope_of(request), request.match_info["id"], body, if_match=request.headers.get("If-Match")
    )
    if "attributes" in request.query or "excludedAttributes" in request.query:
        return await group_response(request, row)
    return web.Response(status=204, headers={"ETag": weak_etag(row["version"])})


@routes.delete("/scim/v2/Groups/{id}")
async def delete_group(request: web.Request) -> web.Response:
    await group_service.delete_group(
        scope_of(request), request.match_info["id"], if_match=request.headers.get("If-Match")
    )
    return web.Response(status=204)
