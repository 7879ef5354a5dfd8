"""Admin API (operator key): tenants, SCIM toggle and tokens, licenses, users and CSV, audit log."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from schemas.admin import (
    LicenseAssignmentSchema,
    ScimToggleSchema,
    TenantCreateSchema,
    TenantSettingsSchema,
    TokenCreateSchema,
)
from schemas.messages import (
    AdminUserListQuerySchema,
    AdminUserPageSchema,
    AdminUserQuerySchema,
    AdminUserSchema,
    AuditPageSchema,
    AuditQuerySchema,
    HardDeleteSchema,
    LicenseAssignedSchema,
    LicenseSummarySchema,
    NewTokenSchema,
    TenantSchema,
    TokenSchema,
)
from scimsvc.scim.errors import not_found
from scimsvc.scim.ids import id_or_404
from scimsvc.scim.resources import scim_datetime
from scimsvc.services import admin_users, tokens
from scimsvc.services import tenants as tenant_service
from scimsvc.services.audit import audit_action_filter, audit_before, audit_page
from scimsvc.services.hard_delete import hard_delete_user
from scimsvc.services.licenses import assign_license_by_hand, seat_summary
from scimsvc.web.admin_requests import (
    action_scope,
    admin_scope,
    load,
    page_limit,
    query_id,
    tenant_id_of,
    user_filters,
    user_id_of,
)
from scimsvc.web.admin_views import audit_page_body, render_tenant, render_user_page, stream_users_csv
from scimsvc.web.keys import POOL, SETTINGS
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import json_response, read_json

routes = web.RouteTableDef()


def _tenant_body(request: web.Request, row: asyncpg.Record) -> dict[str, Any]:
    return render_tenant(row, public_url=request.app[SETTINGS].public_url)


@routes.post("/admin/v1/tenants")
@docs(tags=["Admin: tenants"], summary="Create a tenant")
@request_schema(TenantCreateSchema)
@response_schema(TenantSchema, 201)
async def create_tenant(request: web.Request) -> web.Response:
    data = load(TenantCreateSchema(), await read_json(request))
    row = await tenant_service.create_tenant(action_scope(request), data)
    return json_response(_tenant_body(request, row), status=201)


@routes.get("/admin/v1/tenants/{tid}")
@docs(tags=["Admin: tenants"], summary="Read a tenant")
@response_schema(TenantSchema, 200)
@errors(404)
async def get_tenant(request: web.Request) -> web.Response:
    row = await tenant_service.tenant_or_404(request.app[POOL], tenant_id_of(request))
    return json_response(_tenant_body(request, row))


@routes.patch("/admin/v1/tenants/{tid}")
@docs(
    tags=["Admin: tenants"],
    summary="Change a tenant's settings",
    description="Licensing changes re-run seat allocation.",
)
@request_schema(TenantSettingsSchema)
@response_schema(TenantSchema, 200)
@errors(404)
async def patch_tenant(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    changes = load(TenantSettingsSchema(), await read_json(request))
    row = await tenant_service.update_tenant_settings(action_scope(request), tenant_id, changes)
    return json_response(_tenant_body(request, row))


@routes.put("/admin/v1/tenants/{tid}/scim")
@docs(tags=["Admin: tenants"], summary="Turn SCIM provisioning on or off")
@request_schema(ScimToggleSchema)
@response_schema(ScimToggleSchema, 200)
@errors(404)
async def set_scim_enabled(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    data = load(ScimToggleSchema(), await read_json(request))
    row = await tenant_service.set_scim_enabled(action_scope(request), tenant_id, data["enabled"])
    return json_response({"enabled": row["scim_enabled"]})


@routes.get("/admin/v1/tenants/{tid}/licenses")
@docs(tags=["Admin: users and licenses"], summary="License summary: seats used and free, users waiting")
@response_schema(LicenseSummarySchema, 200)
@errors(404)
async def get_licenses(request: web.Request) -> web.Response:
    summary = await seat_summary(request.app[POOL], tenant_id_of(request))
    return json_response(
        {
            "seats": summary.seats,
            "used": summary.used,
            "free": summary.free,
            "waiting": [str(u) for u in summary.waiting],
            "over_allocated": summary.over_allocated,
        }
    )


@routes.put("/admin/v1/tenants/{tid}/users/{uid}/license")
@docs(tags=["Admin: users and licenses"], summary="Assign a user's license (null takes it away)")
@request_schema(LicenseAssignmentSchema)
@response_schema(LicenseAssignedSchema, 202)
@errors(404, 409)
async def put_license(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    user_id = id_or_404(request.match_info["uid"], "user")
    data = load(LicenseAssignmentSchema(), await read_json(request))
    await assign_license_by_hand(admin_scope(request, tenant_id), user_id, data["license"])
    return json_response(
        {"user_id": str(user_id), "license": data["license"], "status": "accepted"}, status=202
    )


@routes.get("/admin/v1/tenants/{tid}/users")
@docs(tags=["Admin: users and licenses"], summary="List users, filtered, in pages")
@querystring_schema(AdminUserListQuerySchema)
@response_schema(AdminUserPageSchema, 200)
@errors(400, 404)
async def list_admin_users(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    await tenant_service.tenant_or_404(request.app[POOL], tenant_id)
    filters = user_filters(request.query)
    limit = page_limit(request.query)
    after = query_id(request.query, "after", "user")
    page = await admin_users.user_page(request.app[POOL], tenant_id, after=after, limit=limit, **filters)
    items = render_user_page(page)
    return json_response({"items": items, "next_after": items[-1]["id"] if len(items) == limit else None})


@routes.get("/admin/v1/tenants/{tid}/users.csv")
@docs(
    tags=["Admin: users and licenses"],
    summary="Export users with all attributes as CSV",
    responses={200: {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
@querystring_schema(AdminUserQuerySchema)
@errors(400, 404)
async def export_users_csv(request: web.Request) -> web.StreamResponse:
    """Every matching user as CSV, streamed from a server-side cursor (never all in memory)."""
    tenant_id = tenant_id_of(request)
    await tenant_service.tenant_or_404(request.app[POOL], tenant_id)
    return await stream_users_csv(request, tenant_id, user_filters(request.query))


@routes.get("/admin/v1/tenants/{tid}/users/{uid}")
@docs(tags=["Admin: users and licenses"], summary="Read a user")
@response_schema(AdminUserSchema, 200)
@errors(404)
async def get_admin_user(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    user_id = user_id_of(request)
    page = await admin_users.get_user(request.app[POOL], tenant_id, user_id)
    return json_response(render_user_page(page)[0])


@routes.delete("/admin/v1/tenants/{tid}/users/{uid}")
@docs(tags=["Admin: users and licenses"], summary="Hard-delete a user; boards go to an heir")
@response_schema(HardDeleteSchema, 200)
@errors(404)
async def delete_admin_user(request: web.Request) -> web.Response:
    """Hard delete: the user leaves the subscription; each board goes to an heir (audited)."""
    tenant_id = tenant_id_of(request)
    user_id = user_id_of(request)
    handovers = await hard_delete_user(action_scope(request), tenant_id, user_id)
    return json_response({"deleted": str(user_id), "handovers": handovers})


@routes.get("/admin/v1/tenants/{tid}/audit")
@docs(tags=["Admin: users and licenses"], summary="Audit log, newest first")
@querystring_schema(AuditQuerySchema)
@response_schema(AuditPageSchema, 200)
@errors(400, 404)
async def get_audit(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    await tenant_service.tenant_or_404(request.app[POOL], tenant_id)
    query = request.query
    limit = page_limit(query)
    before = audit_before(query)
    user_id = query_id(query, "user_id", "user")
    action = audit_action_filter(query)
    rows = await audit_page(
        request.app[POOL], tenant_id, user_id=user_id, action=action, before=before, limit=limit
    )
    return json_response(audit_page_body(rows, limit=limit))


@routes.get("/admin/v1/tenants/{tid}/scim/tokens")
@docs(tags=["Admin: SCIM tokens"], summary="List SCIM tokens (never their values)")
@response_schema(TokenSchema(many=True), 200)
@errors(404)
async def list_tokens(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    await tenant_service.tenant_or_404(request.app[POOL], tenant_id)
    rows = await tokens.list_tokens(request.app[POOL], tenant_id)
    return json_response([tokens.render_token(r) for r in rows])


@routes.post("/admin/v1/tenants/{tid}/scim/tokens")
@docs(
    tags=["Admin: SCIM tokens"],
    summary="Create a SCIM token (shown once)",
    description=(
        "The body is optional: a label says which identity provider connection uses the token; "
        "expires_at (a future ISO 8601 time) or expires_in_days (1 to 3650) makes it expire."
    ),
)
@request_schema(TokenCreateSchema)
@response_schema(NewTokenSchema, 201)
@errors(400, 404)
async def create_token(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    # No body (or an empty one) is a token without a label.
    data = load(TokenCreateSchema(), await read_json(request)) if (await request.read()).strip() else {}
    expires_at = tokens.token_expiry(
        expires_at=data.get("expires_at"), expires_in_days=data.get("expires_in_days")
    )
    new = await tokens.create_token(
        action_scope(request), tenant_id, label=data.get("label", ""), expires_at=expires_at
    )
    # The only time the token is shown: only its hash is stored.
    body = {"id": str(new.id), "label": new.label, "expires_at": scim_datetime(new.expires_at)}
    return json_response({**body, "token": new.token}, status=201)


@routes.delete("/admin/v1/tenants/{tid}/scim/tokens/{token_id}")
@docs(tags=["Admin: SCIM tokens"], summary="Revoke a SCIM token", responses={204: {"description": "Revoked"}})
@errors(404)
async def revoke_token(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    token_id = id_or_404(request.match_info["token_id"], "token")
    if not await tokens.revoke_token(action_scope(request), tenant_id, token_id):
        raise not_found(f"token {token_id} not found for tenant {tenant_id} (or already revoked)")
    return web.Response(status=204)
