"""SCIM /Users views: parse the request, call the user service, render the response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from scimsvc import user_service
from scimsvc.changes import Scope
from scimsvc.keys import ALLOWED_DOMAINS, POOL, REDIS, REQUEST_ID, SETTINGS, TENANT_ID
from scimsvc.routes.responses import read_json, scim_response
from scimsvc.scim.resources import list_response, not_modified, parse_paging, render_user, weak_etag

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
    )


def base_url(request: web.Request) -> str:
    return request.app[SETTINGS].public_url + "/scim/v2"


def user_response(request: web.Request, row: Mapping[str, Any], *, status: int = 200) -> web.Response:
    body = render_user(row, base_url=base_url(request))
    headers = {"ETag": body["meta"]["version"]}
    if status == 201:
        headers["Location"] = body["meta"]["location"]
    return scim_response(body, status=status, headers=headers)


@routes.get("/scim/v2/Users")
async def list_users(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    start_index, count = parse_paging(
        request.query, default_count=settings.default_page_size, max_count=settings.max_page_size
    )
    total, rows = await user_service.list_users(
        scope_of(request), filter_text=request.query.get("filter"), start_index=start_index, count=count
    )
    url = base_url(request)
    return scim_response(
        list_response([render_user(r, base_url=url) for r in rows], total=total, start_index=start_index)
    )


@routes.post("/scim/v2/Users")
async def create_user(request: web.Request) -> web.Response:
    row = await user_service.create_user(scope_of(request), await read_json(request))
    return user_response(request, row, status=201)


@routes.get("/scim/v2/Users/{id}")
async def get_user(request: web.Request) -> web.Response:
    row = await user_service.get_user(scope_of(request), request.match_info["id"])
    if not_modified(request.headers.get("If-None-Match"), row["version"]):
        return web.Response(status=304, headers={"ETag": weak_etag(row["version"])})
    return user_response(request, row)


@routes.put("/scim/v2/Users/{id}")
async def replace_user(request: web.Request) -> web.Response:
    body = await read_json(request)
    row = await user_service.replace_user(
        scope_of(request), request.match_info["id"], body, if_match=request.headers.get("If-Match")
    )
    return user_response(request, row)


@routes.patch("/scim/v2/Users/{id}")
async def patch_user(request: web.Request) -> web.Response:
    body = await read_json(request)
    row = await user_service.patch_user(
        scope_of(request), request.match_info["id"], body, if_match=request.headers.get("If-Match")
    )
    return user_response(request, row)


@routes.delete("/scim/v2/Users/{id}")
async def delete_user(request: web.Request) -> web.Response:
    await user_service.delete_user(
        scope_of(request), request.match_info["id"], if_match=request.headers.get("If-Match")
    )
    return web.Response(status=204)
