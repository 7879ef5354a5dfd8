"""POST /scim/v2/.search: one search over Users and Groups (RFC 7644 §3.4.3)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, request_schema, response_schema

from schemas.group import GROUP_RESOURCE
from schemas.messages import SearchListResponseSchema, SearchRequestSchema
from schemas.user import USER_RESOURCE
from scimsvc.scim.resources import list_response, parse_paging, parse_projection, project, render_user
from scimsvc.scim.search import search_query
from scimsvc.services.search import search_all
from scimsvc.web.keys import SETTINGS
from scimsvc.web.routes.responses import read_scim_json, scim_response
from scimsvc.web.routes.scim_groups import render_groups
from scimsvc.web.routes.scim_users import base_url, scope_of

routes = web.RouteTableDef()


@routes.post("/scim/v2/.search")
@docs(tags=["SCIM search"], summary="Search Users and Groups at once (POST .search)")
@request_schema(SearchRequestSchema)
@response_schema(SearchListResponseSchema, 200, description="Users first, then Groups")
async def search_root(request: web.Request) -> web.Response:
    query = search_query(await read_scim_json(request))
    settings = request.app[SETTINGS]
    start_index, count = parse_paging(
        query, default_count=settings.default_page_size, max_count=settings.max_page_size
    )
    page = await search_all(
        scope_of(request),
        filter_text=query.get("filter"),
        start_index=start_index,
        count=count,
        sort_by=query.get("sortBy"),
        sort_order=query.get("sortOrder"),
    )
    url = base_url(request)
    user_projection = parse_projection(query, USER_RESOURCE)
    resources = [project(render_user(r, base_url=url), user_projection, USER_RESOURCE) for r in page.users]
    resources += await render_groups(request, page.groups, parse_projection(query, GROUP_RESOURCE))
    return scim_response(list_response(resources, total=page.total, start_index=start_index))
