"""Admin API (operator key): a tenant's provisioning log (README.md, What happened)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, response_schema

from schemas.provisioning_log import ProvisioningLogPageSchema, ProvisioningLogQuerySchema
from scimsvc.services import provisioning_log
from scimsvc.services import tenants as tenant_service
from scimsvc.web.admin_requests import page_limit, tenant_id_of
from scimsvc.web.keys import POOL
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import json_response

routes = web.RouteTableDef()


@routes.get("/admin/v1/tenants/{tid}/provisioning-log")
@docs(
    tags=["Admin: users and licenses"],
    summary="Provisioning log: every SCIM request of the tenant, newest first, with its outcome",
)
@querystring_schema(ProvisioningLogQuerySchema)
@response_schema(ProvisioningLogPageSchema, 200)
@errors(400, 404)
async def get_provisioning_log(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    pool = request.app[POOL]
    await tenant_service.tenant_or_404(pool, tenant_id)
    filters = provisioning_log.log_filters(request.query)
    page = await provisioning_log.log_page(pool, tenant_id, filters, limit=page_limit(request.query))
    return json_response({"entries": page.entries, "next_cursor": page.next_cursor})
