"""POST /scim/v2/.search: one search over Users and Groups (RFC 7644 §3.4.3)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, request_schema, response_schema

from schemas.group import GROUP_RESOURCE
from schemas.messages import SearchListResponseSchema, SearchRequestSchema
from schemas.user import USER_RESOURCE
from scimsvc.scim.resources import parse_projection
from scimsvc.scim.search import search_query
from scimsvc.services.search import search_all
from scimsvc.web.routes.responses import read_scim_json
from scimsvc.web.scim_responses import listed, paging, render_groups, render_users, scope_of

routes = web.RouteTableDef()


@routes.post("/scim/v2/.search")
@docs(tags=["SCIM search"], summary="Search Users and Groups at once (POST .search)")
@request_schema(SearchRequestSchema)
@response_schema(SearchListResponseSchema, 200, description="Users first, then Groups")
async def search_root(request: web.Request) -> web.Response:
    query = search_query(await read_scim_json(request))
    start_index, count = paging(request, query)
    page = await search_all(
        scope_of(request),
        filter_text=query.get("filter"),
        start_index=start_index,
        count=count,
        sort_by=query.get("sortBy"),
        sort_order=query.get("sortOrder"),
    )
    resources = await render_users(request, page.users, parse_projection(query, USER_RESOURCE))
    resources += await render_groups(request, page.groups, parse_projection(query, GROUP_RESOURCE))
    return listed(resources, total=page.total, start_index=start_index)
