"""Admin API: the events API (operator key), every tenant's or one tenant's events after a cursor."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, response_schema

from schemas.events import EventPageSchema, EventQuerySchema, TenantEventQuerySchema
from scimsvc.services.events import event_types, events_cursor, list_events, tenant_filter
from scimsvc.web.admin_requests import page_limit, tenant_id_of
from scimsvc.web.keys import POOL
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import json_response

routes = web.RouteTableDef()


@routes.get("/admin/v1/events")
@docs(tags=["Admin: events"], summary="Events of every tenant (or of `tenant`), after a cursor, in order")
@querystring_schema(EventQuerySchema)
@response_schema(EventPageSchema, 200)
@errors(400, 404)
async def list_all_events(request: web.Request) -> web.Response:
    return await _page(request, tenant_filter(request.query.get("tenant")))


@routes.get("/admin/v1/tenants/{tid}/events")
@docs(tags=["Admin: events"], summary="A tenant's events after a cursor, in order")
@querystring_schema(TenantEventQuerySchema)
@response_schema(EventPageSchema, 200)
@errors(400, 404)
async def list_tenant_events(request: web.Request) -> web.Response:
    return await _page(request, tenant_id_of(request))


async def _page(request: web.Request, tenant_id: UUID | None) -> web.Response:
    query = request.query
    page = await list_events(
        request.app[POOL],
        tenant_id=tenant_id,
        types=event_types(query.getall("type", [])),
        after=events_cursor(query.get("after")),
        limit=page_limit(query),
    )
    return json_response({"events": page.events, "next_cursor": str(page.next_cursor)})
