"""Admin API: the Teams API (teams and manual membership) and boards."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from schemas.admin import BoardCreateSchema, TeamSchema
from schemas.messages import (
    AfterQuerySchema,
    BoardPageSchema,
    BoardQuerySchema,
    BoardSchema,
    TeamDetailSchema,
    TeamListSchema,
    TeamMemberPageSchema,
)
from scimsvc.scim.errors import invalid_value, not_found
from scimsvc.scim.ids import id_or_404
from scimsvc.scim.resources import scim_datetime
from scimsvc.services import teams as team_service
from scimsvc.store import boards, teams, user_admin
from scimsvc.web.keys import POOL
from scimsvc.web.openapi import errors
from scimsvc.web.routes.admin import load, page_limit, tenant_id_of, tenant_or_404
from scimsvc.web.routes.responses import json_response, read_json

routes = web.RouteTableDef()


def render_team(row: asyncpg.Record) -> dict[str, Any]:
    group = None
    if row["group_id"] is not None:
        group = {"id": str(row["group_id"]), "displayName": row["group_display_name"]}
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "member_count": row["member_count"],
        "group": group,
        "created_at": scim_datetime(row["created_at"]),
        "updated_at": scim_datetime(row["updated_at"]),
    }


def _team_id(request: web.Request) -> UUID:
    return id_or_404(request.match_info["team_id"], "team")


@routes.post("/admin/v1/tenants/{tid}/teams")
@docs(tags=["Admin: teams"], summary="Create a team")
@request_schema(TeamSchema)
@response_schema(TeamDetailSchema, 201)
@errors(404, 409)
async def create_team(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    name = load(TeamSchema(), await read_json(request))["name"]
    row = await team_service.create_team(request.app[POOL], tenant_id, name)
    return json_response(render_team(row), status=201)


@routes.get("/admin/v1/tenants/{tid}/teams")
@docs(tags=["Admin: teams"], summary="List teams")
@response_schema(TeamListSchema, 200)
@errors(404)
async def list_teams(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    pool = request.app[POOL]
    await tenant_or_404(pool, tenant_id)
    return json_response({"teams": [render_team(r) for r in await teams.list_teams(pool, tenant_id)]})


@routes.get("/admin/v1/tenants/{tid}/teams/{team_id}")
@docs(tags=["Admin: teams"], summary="Read a team")
@response_schema(TeamDetailSchema, 200)
@errors(404)
async def get_team(request: web.Request) -> web.Response:
    row = await team_service.team_or_404(request.app[POOL], tenant_id_of(request), _team_id(request))
    return json_response(render_team(row))


@routes.patch("/admin/v1/tenants/{tid}/teams/{team_id}")
@docs(tags=["Admin: teams"], summary="Rename a team")
@request_schema(TeamSchema)
@response_schema(TeamDetailSchema, 200)
@errors(404, 409)
async def rename_team(request: web.Request) -> web.Response:
    """Rename a team; the SCIM group linked to it keeps its own displayName (names are decoupled)."""
    tenant_id, team_id = tenant_id_of(request), _team_id(request)
    name = load(TeamSchema(), await read_json(request))["name"]
    row = await team_service.rename_team(request.app[POOL], tenant_id, team_id, name)
    return json_response(render_team(row))


@routes.delete("/admin/v1/tenants/{tid}/teams/{team_id}")
@docs(tags=["Admin: teams"], summary="Delete a team", responses={204: {"description": "Deleted"}})
@errors(404)
async def delete_team(request: web.Request) -> web.Response:
    """Delete a team and its memberships; a linked SCIM group stays, no longer linked to any team."""
    tenant_id, team_id = tenant_id_of(request), _team_id(request)
    if not await teams.delete_team(request.app[POOL], tenant_id, team_id):
        raise not_found(f"team {team_id} not found in tenant {tenant_id}")
    return web.Response(status=204)


@routes.get("/admin/v1/tenants/{tid}/teams/{team_id}/members")
@docs(tags=["Admin: teams"], summary="List a team's members, in pages")
@querystring_schema(AfterQuerySchema)
@response_schema(TeamMemberPageSchema, 200)
@errors(400, 404)
async def list_members(request: web.Request) -> web.Response:
    tenant_id, team_id = tenant_id_of(request), _team_id(request)
    pool = request.app[POOL]
    await team_service.team_or_404(pool, tenant_id, team_id)
    limit = page_limit(request.query)
    after = id_or_404(request.query["after"], "user") if request.query.get("after") else None
    rows = await teams.members_page(pool, team_id, after=after, limit=limit)
    members = [
        {
            "user_id": str(r["user_id"]),
            "userName": r["user_name"],
            "added_by": r["added_by"],
            "joined_at": scim_datetime(r["joined_at"]),
        }
        for r in rows
    ]
    return json_response({"members": members, "next": members[-1]["user_id"] if len(rows) == limit else None})


@routes.put("/admin/v1/tenants/{tid}/teams/{team_id}/members/{uid}")
@docs(tags=["Admin: teams"], summary="Add a member by hand", responses={204: {"description": "Added"}})
@errors(404)
async def add_member(request: web.Request) -> web.Response:
    """Manual membership: allowed with SCIM on (a later group push overwrites it)."""
    tenant_id, team_id = tenant_id_of(request), _team_id(request)
    user_id = id_or_404(request.match_info["uid"], "user")
    pool = request.app[POOL]
    await team_service.team_or_404(pool, tenant_id, team_id)
    if not await teams.add_member(pool, tenant_id, team_id, user_id, added_by="admin"):
        raise not_found(f"user {user_id} not found in tenant {tenant_id}")
    return web.Response(status=204)


@routes.delete("/admin/v1/tenants/{tid}/teams/{team_id}/members/{uid}")
@docs(tags=["Admin: teams"], summary="Remove a member", responses={204: {"description": "Removed"}})
@errors(404)
async def remove_member(request: web.Request) -> web.Response:
    tenant_id, team_id = tenant_id_of(request), _team_id(request)
    user_id = id_or_404(request.match_info["uid"], "user")
    if not await teams.remove_member(request.app[POOL], tenant_id, team_id, user_id):
        raise not_found(f"user {user_id} is not a member of team {team_id} in tenant {tenant_id}")
    return web.Response(status=204)


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
    pool = request.app[POOL]
    await tenant_or_404(pool, tenant_id)
    if data["team_id"] is not None and await teams.missing_teams(pool, tenant_id, [data["team_id"]]):
        raise invalid_value(f"team_id {str(data['team_id'])!r} is not a team of this tenant")
    owner = await user_admin.admin_page(
        pool, tenant_id, state=None, license=None, q=None, after=None, limit=1, only=data["owner_id"]
    )
    if not owner:
        raise invalid_value(f"owner_id {str(data['owner_id'])!r} is not a user of this tenant")
    try:
        row = await boards.create_board(pool, tenant_id, **data)
    except asyncpg.ForeignKeyViolationError:  # the team or owner was deleted meanwhile
        raise invalid_value("the board's team or owner no longer exists; try again") from None
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
        owner_id=id_or_404(query["owner_id"], "user") if query.get("owner_id") else None,
        team_id=id_or_404(query["team_id"], "team") if query.get("team_id") else None,
        after=id_or_404(query["after"], "board") if query.get("after") else None,
        limit=limit,
    )
    items = [render_board(r) for r in rows]
    return json_response({"boards": items, "next_after": items[-1]["id"] if len(items) == limit else None})
