"""Admin API (operator key): tenants, SCIM toggle and tokens, licenses, users and CSV, audit log."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema
from marshmallow import Schema, ValidationError

from schemas.admin import LicenseAssignmentSchema, ScimToggleSchema, TenantCreateSchema, TenantSettingsSchema
from schemas.base import flatten_errors
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
from scimsvc.product.users import EXPORT_HEADER, export_row, full_name, user_state
from scimsvc.scim.errors import invalid_value, not_found
from scimsvc.scim.ids import id_or_404
from scimsvc.scim.resources import scim_datetime
from scimsvc.services import tenants as tenant_service
from scimsvc.services.changes import Scope
from scimsvc.services.hard_delete import hard_delete_user
from scimsvc.services.licenses import assign_license_by_hand, seat_summary
from scimsvc.store import audit, teams, users
from scimsvc.store import tenants as store
from scimsvc.store.db import transaction
from scimsvc.web.keys import POOL, REDIS, REQUEST_ID, SETTINGS
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import json_response, read_json

routes = web.RouteTableDef()


def load(schema: Schema, body: Any) -> dict[str, Any]:
    """Validate an admin payload; a 400 naming every wrong field."""
    if not isinstance(body, dict):
        raise invalid_value("the request body must be a JSON object")
    try:
        return schema.load(body)
    except ValidationError as exc:
        raise invalid_value("; ".join(flatten_errors(exc.messages))) from None


def page_limit(query: Mapping[str, str]) -> int:
    """`limit` of a paged admin list: 100 by default, clamped to 1..1000."""
    try:
        return min(max(int(query.get("limit", "100")), 1), 1000)
    except ValueError:  # not a number, or more digits than int() converts
        raise invalid_value("limit must be a whole number (a page holds 1 to 1000 items)") from None


BIGINT_MAX = 2**63 - 1  # audit ids are a bigint column: a larger number cannot even be sent to PostgreSQL
_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")


def audit_before(query: Mapping[str, str]) -> int | None:
    """`before` of an audit page (the last audit id seen), 1..2^63-1; a 400 naming the range otherwise."""
    raw = query.get("before")
    if not raw:
        return None
    if not _WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= BIGINT_MAX:
        raise invalid_value(f"before must be an audit id: a whole number from 1 to {BIGINT_MAX}")
    return int(raw)


def storable_text(name: str, value: str) -> str:
    """`value` if PostgreSQL text can hold it; a 400 naming `name` for a NUL or a lone surrogate."""
    if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
        raise invalid_value(f"{name} must not contain the NUL character (\\u0000) or an unpaired surrogate")
    return value


def tenant_id_of(request: web.Request) -> UUID:
    return id_or_404(request.match_info["tid"], "tenant")


def admin_scope(request: web.Request, tenant_id: UUID) -> Scope:
    """The operator's writes to one tenant go through the same transaction + outbox as SCIM's."""
    app = request.app
    return Scope(
        pool=app[POOL],
        redis=app[REDIS],
        settings=app[SETTINGS],
        tenant_id=tenant_id,
        request_id=request.get(REQUEST_ID),
    )


def render_tenant(row: asyncpg.Record, *, public_url: str) -> dict[str, Any]:
    body = dict(row)
    body["id"] = str(row["id"])
    body["created_at"] = scim_datetime(row["created_at"])
    body["updated_at"] = scim_datetime(row["updated_at"])
    body["scim_base_url"] = public_url + "/scim/v2"
    return body


async def tenant_or_404(pool: asyncpg.Pool, tenant_id: UUID) -> asyncpg.Record:
    row = await store.get_tenant(pool, tenant_id)
    if row is None:
        raise not_found(f"tenant {tenant_id} not found")
    return row


@routes.post("/admin/v1/tenants")
@docs(tags=["Admin: tenants"], summary="Create a tenant")
@request_schema(TenantCreateSchema)
@response_schema(TenantSchema, 201)
async def create_tenant(request: web.Request) -> web.Response:
    data = load(TenantCreateSchema(), await read_json(request))
    row = await tenant_service.create_tenant(request.app[POOL], data)
    return json_response(render_tenant(row, public_url=request.app[SETTINGS].public_url), status=201)


@routes.get("/admin/v1/tenants/{tid}")
@docs(tags=["Admin: tenants"], summary="Read a tenant")
@response_schema(TenantSchema, 200)
@errors(404)
async def get_tenant(request: web.Request) -> web.Response:
    row = await tenant_or_404(request.app[POOL], tenant_id_of(request))
    return json_response(render_tenant(row, public_url=request.app[SETTINGS].public_url))


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
    row = await tenant_service.update_tenant_settings(admin_scope(request, tenant_id), changes)
    return json_response(render_tenant(row, public_url=request.app[SETTINGS].public_url))


@routes.put("/admin/v1/tenants/{tid}/scim")
@docs(tags=["Admin: tenants"], summary="Turn SCIM provisioning on or off")
@request_schema(ScimToggleSchema)
@response_schema(ScimToggleSchema, 200)
@errors(404)
async def set_scim_enabled(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    data = load(ScimToggleSchema(), await read_json(request))
    row = await tenant_service.set_scim_enabled(request.app[POOL], tenant_id, data["enabled"])
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
@response_schema(LicenseAssignedSchema, 200)
@errors(404)
async def put_license(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    user_id = id_or_404(request.match_info["uid"], "user")
    data = load(LicenseAssignmentSchema(), await read_json(request))
    await assign_license_by_hand(admin_scope(request, tenant_id), user_id, data["license"])
    return json_response({"user_id": str(user_id), "license": data["license"]})


USER_STATES = ("active", "inactive", "unlinked")
LICENSE_FILTERS = ("full", "free", "free_restricted", "none")


def render_admin_user(row: Mapping[str, Any], teams: list[dict[str, Any]]) -> dict[str, Any]:
    resource = row["resource"]
    return {
        "id": str(row["id"]),
        "userName": row["user_name"],
        "fullName": full_name(resource),
        "active": row["active"],
        "state": user_state(row),
        "license": row["license"],
        "seat": row["license"] == "full",
        "waiting": row["waiting_since"] is not None,
        "provisioning_state": row["provisioning_state"],
        "teams": teams,
        "created": scim_datetime(row["created_at"]),
        "lastModified": scim_datetime(row["updated_at"]),
    }


def user_filters(query: Mapping[str, str]) -> dict[str, Any]:
    state, license = query.get("state") or None, query.get("license") or None
    if state is not None and state not in USER_STATES:
        raise invalid_value(f"state must be one of {', '.join(USER_STATES)}, got {state!r}")
    if license is not None and license not in LICENSE_FILTERS:
        raise invalid_value(f"license must be one of {', '.join(LICENSE_FILTERS)}, got {license!r}")
    q = query.get("q") or None
    return {"state": state, "license": license, "q": q and storable_text("q", q)}


@routes.get("/admin/v1/tenants/{tid}/users")
@docs(tags=["Admin: users and licenses"], summary="List users, filtered, in pages")
@querystring_schema(AdminUserListQuerySchema)
@response_schema(AdminUserPageSchema, 200)
@errors(400, 404)
async def list_admin_users(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    await tenant_or_404(request.app[POOL], tenant_id)
    filters = user_filters(request.query)
    limit = page_limit(request.query)
    after = id_or_404(request.query["after"], "user") if request.query.get("after") else None
    rows = await users.admin_page(request.app[POOL], tenant_id, after=after, limit=limit, **filters)
    user_teams = await teams.teams_of(request.app[POOL], [r["id"] for r in rows])
    items = [render_admin_user(r, user_teams[r["id"]]) for r in rows]
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
    await tenant_or_404(request.app[POOL], tenant_id)
    return await stream_users_csv(request, tenant_id, user_filters(request.query))


async def stream_users_csv(
    request: web.Request, tenant_id: UUID, filters: Mapping[str, Any]
) -> web.StreamResponse:
    """Write the tenant's users matching `filters` as a CSV attachment (admin API and console)."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="users-{tenant_id}.csv"',
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_HEADER)
    async with transaction(request.app[POOL], readonly=True) as conn:
        async for row in users.admin_export_cursor(conn, tenant_id, **filters):
            writer.writerow(export_row(row))
            if buffer.tell() > 64_000:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


@routes.get("/admin/v1/tenants/{tid}/users/{uid}")
@docs(tags=["Admin: users and licenses"], summary="Read a user")
@response_schema(AdminUserSchema, 200)
@errors(404)
async def get_admin_user(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    user_id = id_or_404(request.match_info["uid"], "user")
    rows = await users.admin_page(
        request.app[POOL], tenant_id, state=None, license=None, q=None, after=None, limit=1, only=user_id
    )
    if not rows:
        raise not_found(f"user {user_id} not found in tenant {tenant_id}")
    user_teams = await teams.teams_of(request.app[POOL], [user_id])
    return json_response(render_admin_user(rows[0], user_teams[user_id]))


@routes.delete("/admin/v1/tenants/{tid}/users/{uid}")
@docs(tags=["Admin: users and licenses"], summary="Hard-delete a user; boards go to an heir")
@response_schema(HardDeleteSchema, 200)
@errors(404)
async def delete_admin_user(request: web.Request) -> web.Response:
    """Hard delete: the user leaves the subscription; each board goes to an heir (audited)."""
    tenant_id = tenant_id_of(request)
    user_id = id_or_404(request.match_info["uid"], "user")
    handovers = await hard_delete_user(admin_scope(request, tenant_id), user_id)
    return json_response({"deleted": str(user_id), "handovers": handovers})


@routes.get("/admin/v1/tenants/{tid}/audit")
@docs(tags=["Admin: users and licenses"], summary="Audit log, newest first")
@querystring_schema(AuditQuerySchema)
@response_schema(AuditPageSchema, 200)
@errors(400, 404)
async def get_audit(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    await tenant_or_404(request.app[POOL], tenant_id)
    query = request.query
    limit = page_limit(query)
    before = audit_before(query)
    user_id = id_or_404(query["user_id"], "user") if query.get("user_id") else None
    rows = await audit.audit_page(
        request.app[POOL], tenant_id, user_id=user_id, before_id=before, limit=limit
    )
    items = [
        {
            "id": r["id"],
            "user_id": str(r["user_id"]) if r["user_id"] else None,
            "action": r["action"],
            "actor": r["actor"],
            "detail": r["detail"],
            "request_id": r["request_id"],
            "at": scim_datetime(r["created_at"]),
        }
        for r in rows
    ]
    return json_response({"items": items, "next_before": items[-1]["id"] if len(items) == limit else None})


@routes.get("/admin/v1/tenants/{tid}/scim/tokens")
@docs(tags=["Admin: SCIM tokens"], summary="List SCIM tokens (never their values)")
@response_schema(TokenSchema(many=True), 200)
@errors(404)
async def list_tokens(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    await tenant_or_404(request.app[POOL], tenant_id)
    rows = await store.list_tokens(request.app[POOL], tenant_id)
    return json_response(
        [
            {
                "id": str(r["id"]),
                "created_at": scim_datetime(r["created_at"]),
                "revoked_at": scim_datetime(r["revoked_at"]),
            }
            for r in rows
        ]
    )


@routes.post("/admin/v1/tenants/{tid}/scim/tokens")
@docs(tags=["Admin: SCIM tokens"], summary="Create a SCIM token (shown once)")
@response_schema(NewTokenSchema, 201)
@errors(404)
async def create_token(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    await tenant_or_404(request.app[POOL], tenant_id)
    token_id, token = await store.create_token(request.app[POOL], tenant_id)
    # The only time the token is shown: only its hash is stored.
    return json_response({"id": str(token_id), "token": token}, status=201)


@routes.delete("/admin/v1/tenants/{tid}/scim/tokens/{token_id}")
@docs(tags=["Admin: SCIM tokens"], summary="Revoke a SCIM token", responses={204: {"description": "Revoked"}})
@errors(404)
async def revoke_token(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    token_id = id_or_404(request.match_info["token_id"], "token")
    if not await store.revoke_token(request.app[POOL], tenant_id, token_id):
        raise not_found(f"token {token_id} not found for tenant {tenant_id} (or already revoked)")
    return web.Response(status=204)
