"""Admin API: boards (the product's content, minimal): create and list them."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from schemas.admin import BoardCreateSchema
from schemas.messages import BoardPageSchema, BoardQuerySchema, BoardSchema
from scimsvc.scim.resources import scim_datetime
from scimsvc.services import boards
from scimsvc.services.tenants import tenant_or_404
from scimsvc.web.admin_requests import load, page_limit, query_id, tenant_id_of
from scimsvc.web.keys import POOL
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import json_response, read_json

routes = web.RouteTableDef()


def render_board(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "title": row["title"],
        "team_id": str(row["team_id"]) if row["team_id"] else None,
        "owner_id": str(row["owner_id"]) if row["owner_id"] else None,
        "created_at": scim_datetime(row["created_at"]),
    }


@routes.post("/admin/v1/tenants/{tid}/boards")
@docs(tags=["Admin: boards"], summary="Create a board")
@request_schema(BoardCreateSchema)
@response_schema(BoardSchema, 201)
@errors(404)
async def create_board(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    data = load(BoardCreateSchema(), await read_json(request))
    row = await boards.create_board(request.app[POOL], tenant_id, **data)
    return json_response(render_board(row), status=201)


@routes.get("/admin/v1/tenants/{tid}/boards")
@docs(tags=["Admin: boards"], summary="List boards, in pages")
@querystring_schema(BoardQuerySchema)
@response_schema(BoardPageSchema, 200)
@errors(400, 404)
async def list_boards(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    pool = request.app[POOL]
    await tenant_or_404(pool, tenant_id)
    query = request.query
    limit = page_limit(query)
    rows = await boards.list_boards(
        pool,
        tenant_id,
        owner_id=query_id(query, "owner_id", "user"),
        team_id=query_id(query, "team_id", "team"),
        after=query_id(query, "after", "board"),
        limit=limit,
    )
    items = [render_board(r) for r in rows]
    return json_response({"boards": items, "next_after": items[-1]["id"] if len(items) == limit else None})
