"""Admin API (operator key): per-organization figures, which /metrics does not label by tenant."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, response_schema

from schemas.tenant_stats import TenantStatsSchema, TopTenantsQuerySchema, TopTenantsSchema
from scimsvc.services import tenant_stats
from scimsvc.web.admin_requests import load, tenant_id_of
from scimsvc.web.keys import POOL, SETTINGS
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import json_response

routes = web.RouteTableDef()


@routes.get("/admin/v1/tenants/{tid}/stats")
@docs(
    tags=["Admin: tenants"],
    summary="A tenant's figures: users, seats, groups, tokens, outbox backlog, last hour's SCIM requests",
)
@response_schema(TenantStatsSchema, 200)
@errors(404)
async def get_tenant_stats(request: web.Request) -> web.Response:
    body = await tenant_stats.tenant_stats(request.app[POOL], tenant_id_of(request))
    if not request.app[SETTINGS].provisioning_log:
        body["last_hour"] = None  # nothing records the requests
    return json_response(body)


@routes.get("/admin/v1/stats/tenants")
@docs(
    tags=["Admin: tenants"],
    summary="The tenants with the most SCIM requests, 429s or 5xx answers in the last hour (at most 100)",
)
@querystring_schema(TopTenantsQuerySchema)
@response_schema(TopTenantsSchema, 200)
@errors(400)
async def get_top_tenants(request: web.Request) -> web.Response:
    query = load(TopTenantsQuerySchema(), dict(request.query))
    return json_response(
        await tenant_stats.top_tenants(request.app[POOL], by=query["by"], limit=query["limit"])
    )
