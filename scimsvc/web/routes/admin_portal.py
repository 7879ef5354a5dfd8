"""Admin API: portal access for an organization's admins (README.md, For organization admins): single-use
links (a product's settings page asks for one and redirects its admin there), ending the organization's
portal sessions, and the admin addresses that may ask for a sign-in link by email."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, request_schema, response_schema

from schemas.portal import (
    OrgAdminCreateSchema,
    OrgAdminSchema,
    PortalLinkCreateSchema,
    PortalLinkSchema,
    PortalSessionsEndedSchema,
)
from scimsvc.product.portal import normal_email, storable_address
from scimsvc.scim.errors import not_found
from scimsvc.scim.resources import scim_datetime
from scimsvc.services import portal
from scimsvc.services.tenants import tenant_or_404
from scimsvc.web.admin_requests import action_scope, load, tenant_id_of
from scimsvc.web.keys import POOL
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import json_response, read_json

routes = web.RouteTableDef()
TAGS = ["Admin: portal access"]


@routes.post("/admin/v1/tenants/{tid}/portal-links")
@docs(
    tags=TAGS,
    summary="Make a single-use link to the organization's portal (shown once)",
    description="Opening the link signs its browser in to the organization's pages of the console, "
    "and only those. Embed it as WorkOS's Admin Portal is: your settings page asks for a link with "
    '`"redirect": true` and redirects the organization\'s admin to `url`, which signs in at once. '
    "Without it the link opens a page with a Continue button (for a link you send to someone: mail "
    "scanners and link previews fetch it without using it up). The body is optional.",
)
@request_schema(PortalLinkCreateSchema)
@response_schema(PortalLinkSchema, 201)
@errors(400, 404)
async def create_portal_link(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    data = load(PortalLinkCreateSchema(), await read_json(request)) if (await request.read()).strip() else {}
    link = await portal.create_link(
        action_scope(request),
        tenant_id,
        email=data.get("email"),
        minutes=data.get("minutes"),
        redirect=data.get("redirect", False),
    )
    body = {"url": link.url, "expires_at": scim_datetime(link.expires_at), "email": link.email}
    return json_response(body, status=201)


@routes.delete("/admin/v1/tenants/{tid}/portal-sessions")
@docs(
    tags=TAGS,
    summary="End every portal session of the organization",
    description="Its unused portal links (any maker, emailed ones too) stop working at the same time.",
)
@response_schema(PortalSessionsEndedSchema, 200)
@errors(404)
async def end_portal_sessions(request: web.Request) -> web.Response:
    ended, retired = await portal.end_portal_sessions(action_scope(request), tenant_id_of(request))
    return json_response({"ended": ended, "links_retired": retired})


@routes.get("/admin/v1/tenants/{tid}/org-admins")
@docs(tags=TAGS, summary="List the admin addresses that may ask for a sign-in link by email")
@response_schema(OrgAdminSchema(many=True), 200)
@errors(404)
async def list_org_admins(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    await tenant_or_404(request.app[POOL], tenant_id)
    rows = await portal.list_admins(request.app[POOL], tenant_id)
    return json_response([{"email": r["email"], "created_at": scim_datetime(r["created_at"])} for r in rows])


@routes.post("/admin/v1/tenants/{tid}/org-admins")
@docs(
    tags=TAGS,
    summary="Register an admin address of the organization",
    description="Case-insensitive: 201 when added, 200 when it was registered already.",
)
@request_schema(OrgAdminCreateSchema)
@response_schema(OrgAdminSchema, 201)
@errors(400, 404)
async def add_org_admin(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    email = load(OrgAdminCreateSchema(), await read_json(request))["email"]
    row, added = await portal.add_admin(action_scope(request), tenant_id, email)
    body = {"email": row["email"], "created_at": scim_datetime(row["created_at"])}
    return json_response(body, status=201 if added else 200)


@routes.delete("/admin/v1/tenants/{tid}/org-admins/{email}")
@docs(
    tags=TAGS,
    summary="Remove a registered admin address",
    description="Its access goes with it: the portal sessions opened with links made for it end, and its "
    "unused links stop working. 404 when it is not registered (or could not be an address at all).",
    responses={204: {"description": "Removed"}},
)
@errors(404)
async def remove_org_admin(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    email = request.match_info["email"]
    if not await portal.remove_admin(action_scope(request), tenant_id, email):
        if not storable_address(normal_email(email)):
            raise not_found(f"that is not a registered admin address of tenant {tenant_id}")
        raise not_found(f"{email} is not a registered admin address of tenant {tenant_id}")
    return web.Response(status=204)
