"""Admin API: the Teams API (teams and manual membership)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from schemas.admin import TeamGroupLinkSchema, TeamSchema
from schemas.messages import AfterQuerySchema, TeamDetailSchema, TeamListSchema, TeamMemberPageSchema
from scimsvc.scim.errors import not_found
from scimsvc.scim.resources import scim_datetime
from scimsvc.services import teams as team_service
from scimsvc.services.tenants import tenant_or_404
from scimsvc.web.admin_requests import (
    action_scope,
    load,
    page_limit,
    query_id,
    team_id_of,
    tenant_id_of,
    user_id_of,
)
from scimsvc.web.keys import POOL
from scimsvc.web.openapi import errors
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


@routes.post("/admin/v1/tenants/{tid}/teams")
@docs(tags=["Admin: teams"], summary="Create a team")
@request_schema(TeamSchema)
@response_schema(TeamDetailSchema, 201)
@errors(404, 409)
async def create_team(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    name = load(TeamSchema(), await read_json(request))["name"]
    row = await team_service.create_team(action_scope(request), tenant_id, name)
    return json_response(render_team(row), status=201)


@routes.get("/admin/v1/tenants/{tid}/teams")
@docs(tags=["Admin: teams"], summary="List teams")
@response_schema(TeamListSchema, 200)
@errors(404)
async def list_teams(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    pool = request.app[POOL]
    await tenant_or_404(pool, tenant_id)
    return json_response({"teams": [render_team(r) for r in await team_service.list_teams(pool, tenant_id)]})


@routes.get("/admin/v1/tenants/{tid}/teams/{team_id}")
@docs(tags=["Admin: teams"], summary="Read a team")
@response_schema(TeamDetailSchema, 200)
@errors(404)
async def get_team(request: web.Request) -> web.Response:
    row = await team_service.team_or_404(request.app[POOL], tenant_id_of(request), team_id_of(request))
    return json_response(render_team(row))


@routes.patch("/admin/v1/tenants/{tid}/teams/{team_id}")
@docs(tags=["Admin: teams"], summary="Rename a team")
@request_schema(TeamSchema)
@response_schema(TeamDetailSchema, 200)
@errors(404, 409)
async def rename_team(request: web.Request) -> web.Response:
    """Rename a team; the SCIM group linked to it keeps its own displayName (names are decoupled)."""
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    name = load(TeamSchema(), await read_json(request))["name"]
    row = await team_service.rename_team(action_scope(request), tenant_id, team_id, name)
    return json_response(render_team(row))


@routes.delete("/admin/v1/tenants/{tid}/teams/{team_id}")
@docs(tags=["Admin: teams"], summary="Delete a team", responses={204: {"description": "Deleted"}})
@errors(404)
async def delete_team(request: web.Request) -> web.Response:
    """Delete a team and its memberships; a linked SCIM group stays, no longer linked to any team."""
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    if not await team_service.delete_team(action_scope(request), tenant_id, team_id):
        raise not_found(f"team {team_id} not found in tenant {tenant_id}")
    return web.Response(status=204)


@routes.put("/admin/v1/tenants/{tid}/teams/{team_id}/group")
@docs(tags=["Admin: teams"], summary="Link a SCIM group to a team (re-link)")
@request_schema(TeamGroupLinkSchema)
@response_schema(TeamDetailSchema, 200)
@errors(400, 404, 409)
async def link_group(request: web.Request) -> web.Response:
    """Link a SCIM group linked to no team (e.g. after its team was deleted) to a team linked to no group;
    the worker then adds every member of the group to the team. 409 when either is linked already."""
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    group_id = load(TeamGroupLinkSchema(), await read_json(request))["group_id"]
    row = await team_service.link_group(action_scope(request), tenant_id, team_id, group_id)
    return json_response(render_team(row))


@routes.get("/admin/v1/tenants/{tid}/teams/{team_id}/members")
@docs(tags=["Admin: teams"], summary="List a team's members, in pages")
@querystring_schema(AfterQuerySchema)
@response_schema(TeamMemberPageSchema, 200)
@errors(400, 404)
async def list_members(request: web.Request) -> web.Response:
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    pool = request.app[POOL]
    await team_service.team_or_404(pool, tenant_id, team_id)
    limit = page_limit(request.query)
    after = query_id(request.query, "after", "user")
    rows = await team_service.members_page(pool, team_id, after=after, limit=limit)
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
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    user_id = user_id_of(request)
    pool = request.app[POOL]
    await team_service.team_or_404(pool, tenant_id, team_id)
    if not await team_service.add_member(action_scope(request), tenant_id, team_id, user_id):
        raise not_found(f"user {user_id} not found in tenant {tenant_id}")
    return web.Response(status=204)


@routes.delete("/admin/v1/tenants/{tid}/teams/{team_id}/members/{uid}")
@docs(tags=["Admin: teams"], summary="Remove a member", responses={204: {"description": "Removed"}})
@errors(404)
async def remove_member(request: web.Request) -> web.Response:
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    user_id = user_id_of(request)
    if not await team_service.remove_member(action_scope(request), tenant_id, team_id, user_id):
        raise not_found(f"user {user_id} is not a member of team {team_id} in tenant {tenant_id}")
    return web.Response(status=204)
