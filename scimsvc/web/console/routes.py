"""Console pages: each handler reads a form or a query, calls the admin services and renders a template.

Every change goes through the admin schemas (`schemas/admin.py`) and the same service functions as the
admin API; an error comes back as the page with the error shown above its form.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from schemas.admin import (
    LicenseAssignmentSchema,
    ScimToggleSchema,
    TeamSchema,
    TenantCreateSchema,
    TenantSettingsSchema,
    TokenCreateSchema,
)
from scimsvc.ops.queue_health import queue_health
from scimsvc.scim.errors import ScimError, not_found
from scimsvc.scim.ids import id_or_404
from scimsvc.services import admin_users, tokens
from scimsvc.services import teams as team_service
from scimsvc.services import tenants as tenant_service
from scimsvc.services.audit import audit_action_filter, audit_before, audit_page
from scimsvc.services.licenses import assign_license_by_hand, seat_summary
from scimsvc.web.admin_requests import (
    action_scope,
    admin_scope,
    load,
    query_id,
    team_id_of,
    tenant_id_of,
    user_filters,
    user_id_of,
)
from scimsvc.web.admin_views import render_tenant, render_user_page, stream_users_csv
from scimsvc.web.console import forms
from scimsvc.web.console.access import LOGIN_PATH
from scimsvc.web.console.pages import organization, page
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.console.session import (
    COOKIE,
    COOKIE_PATH,
    SESSION,
    Session,
    encode_session,
    new_session,
)
from scimsvc.web.keys import POOL, REDIS, SETTINGS
from scimsvc.web.middlewares import operator_key_given

routes = web.RouteTableDef()

PAGE_SIZE = 50
TENANTS_SHOWN = 500
QUEUE_REFRESH_SECONDS = 5


def see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


async def _tenant(request: web.Request) -> dict[str, Any]:
    row = await tenant_service.tenant_or_404(request.app[POOL], tenant_id_of(request))
    return render_tenant(row, public_url=request.app[SETTINGS].public_url)


def _set_session(response: web.StreamResponse, request: web.Request, session: Session) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        COOKIE,
        encode_session(session, settings.admin_key),
        max_age=max(int(session.expires - time.time()), 0),
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=settings.public_url.startswith("https://"),
    )


# --- sign-in ---------------------------------------------------------------------------------------


@routes.get("/console")
@routes.get("/console/")
async def home(_: web.Request) -> web.Response:
    raise see_other("/console/tenants")


@routes.get(LOGIN_PATH)
async def login_form(request: web.Request) -> web.Response:
    session = request.get(SESSION)
    if session is not None and session.operator:
        raise see_other("/console/tenants")
    if session is None:  # an anonymous session carries the sign-in form's CSRF token
        session = new_session(operator=False)
        request[SESSION] = session
    response = page(request, "login.html", {})
    _set_session(response, request, session)
    return response


@routes.post(LOGIN_PATH)
async def login(request: web.Request) -> web.Response:
    """Check the operator key in constant time; a wrong one is logged and counted per client address."""
    form = await request.post()
    if not await operator_key_given(request, forms.text(form, "key"), "console sign-in"):
        return page(request, "login.html", {"error": "That is not the operator key."}, status=401)
    session = new_session(operator=True)  # a new id: nothing seen before sign-in is valid after it
    response = see_other("/console/tenants")
    _set_session(response, request, session)
    raise response


@routes.post("/console/logout")
async def logout(request: web.Request) -> web.Response:
    response = see_other(LOGIN_PATH)
    response.del_cookie(COOKIE, path=COOKIE_PATH)
    raise response


# --- tenants ---------------------------------------------------------------------------------------


async def _tenants_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> web.Response:
    rows = await tenant_service.list_tenants(request.app[POOL], limit=TENANTS_SHOWN)
    context = {"tenants": rows, "form": dict(form or {}), "error": error, "section": "tenants"}
    return page(request, "tenants.html", context, status=status)


@routes.get("/console/tenants")
async def tenants_list(request: web.Request) -> web.Response:
    return await _tenants_page(request)


@routes.post("/console/tenants")
async def tenant_create(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        data = load(TenantCreateSchema(), forms.tenant_create_payload(form))
        row = await tenant_service.create_tenant(action_scope(request), data)
    except ScimError as exc:
        return await _tenants_page(request, status=exc.status, error=exc.detail, form=form)
    raise see_other(f"/console/tenants/{row['id']}/scim?done=tenant-created")


@routes.get("/console/tenants/{tid}")
async def tenant_home(request: web.Request) -> web.Response:
    raise see_other(f"/console/tenants/{tenant_id_of(request)}/scim")


# --- SCIM panel ------------------------------------------------------------------------------------


async def _scim_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    new_token: dict[str, str] | None = None,
) -> web.Response:
    tenant = await _tenant(request)
    live_tokens = await tokens.list_tokens(request.app[POOL], UUID(tenant["id"]))
    context = {
        "tenant": tenant,
        "section": "scim",
        "tokens": live_tokens,
        "new_token": new_token,
        "error": error,
    }
    return page(request, "scim.html", context, status=status)


@routes.get("/console/tenants/{tid}/scim")
async def scim_panel(request: web.Request) -> web.Response:
    return await _scim_page(request)


@routes.post("/console/tenants/{tid}/scim")
async def scim_toggle(request: web.Request) -> web.Response:
    form = await request.post()
    tenant_id = tenant_id_of(request)
    try:
        enabled = load(ScimToggleSchema(), {"enabled": forms.text(form, "enabled")})["enabled"]
        await tenant_service.set_scim_enabled(action_scope(request), tenant_id, enabled)
    except ScimError as exc:
        return await _scim_page(request, status=exc.status, error=exc.detail)
    raise see_other(f"/console/tenants/{tenant_id}/scim?done={'scim-on' if enabled else 'scim-off'}")


@routes.post("/console/tenants/{tid}/scim/tokens")
async def token_create(request: web.Request) -> web.Response:
    """A new token, shown in this response only (never in a URL): only its hash is stored."""
    form = await request.post()
    tenant_id = tenant_id_of(request)
    try:
        label = load(TokenCreateSchema(), {"label": forms.text(form, "label")})["label"]
        new = await tokens.create_token(action_scope(request), tenant_id, label=label)
    except ScimError as exc:
        return await _scim_page(request, status=exc.status, error=exc.detail)
    new_token = {"id": str(new.id), "label": new.label, "token": new.token}
    return await _scim_page(request, status=201, new_token=new_token)


@routes.post("/console/tenants/{tid}/scim/tokens/{token_id}/revoke")
async def token_revoke(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    token_id = id_or_404(request.match_info["token_id"], "token")
    if not await tokens.revoke_token(action_scope(request), tenant_id, token_id):
        detail = f"token {token_id} is not a live token of this tenant (already revoked?)"
        return await _scim_page(request, status=404, error=detail)
    raise see_other(f"/console/tenants/{tenant_id}/scim?done=token-revoked")


# --- seats and licenses ----------------------------------------------------------------------------


async def _seats_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> web.Response:
    tenant = await _tenant(request)
    tenant_id = UUID(tenant["id"])
    summary = await seat_summary(request.app[POOL], tenant_id)
    shown = summary.waiting[:PAGE_SIZE]
    names = await admin_users.display_names(request.app[POOL], tenant_id, shown)
    context = {
        "tenant": tenant,
        "section": "seats",
        "summary": summary,
        "waiting": [{"id": str(u), "name": names.get(u, "")} for u in shown],
        "license_choices": LicenseAssignmentSchema().fields["license"].validate.choices,  # type: ignore[union-attr]
        "form": dict(form or {}),
        "error": error,
    }
    return page(request, "seats.html", context, status=status)


@routes.get("/console/tenants/{tid}/seats")
async def seats(request: web.Request) -> web.Response:
    return await _seats_page(request)


@routes.post("/console/tenants/{tid}/seats")
async def seats_save(request: web.Request) -> web.Response:
    form = await request.post()
    tenant_id = tenant_id_of(request)
    try:
        changes = load(TenantSettingsSchema(), forms.licensing_payload(form))
        await tenant_service.update_tenant_settings(action_scope(request), tenant_id, changes)
    except ScimError as exc:
        return await _seats_page(request, status=exc.status, error=exc.detail, form=form)
    raise see_other(f"/console/tenants/{tenant_id}/seats?done=seats-saved")


@routes.post("/console/tenants/{tid}/seats/assign")
async def license_assign(request: web.Request) -> web.Response:
    """Manual assignment: the same service as the admin API, so SCIM's lock (409) holds here too."""
    form = await request.post()
    tenant_id = tenant_id_of(request)
    try:
        license = forms.text(form, "license")
        data = load(LicenseAssignmentSchema(), {"license": None if license == "none" else license})
        user_id = await admin_users.find_user(request.app[POOL], tenant_id, forms.text(form, "user"))
        await assign_license_by_hand(admin_scope(request, tenant_id), user_id, data["license"])
    except ScimError as exc:
        return await _seats_page(request, status=exc.status, error=exc.detail, form=form)
    raise see_other(f"/console/tenants/{tenant_id}/seats?done=license-assigned")


# --- teams -----------------------------------------------------------------------------------------


async def _teams_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> web.Response:
    tenant = await _tenant(request)
    rows = await team_service.list_teams(request.app[POOL], UUID(tenant["id"]))
    context = {"tenant": tenant, "section": "teams", "teams": rows, "form": dict(form or {}), "error": error}
    return page(request, "teams.html", context, status=status)


@routes.get("/console/tenants/{tid}/teams")
async def teams_list(request: web.Request) -> web.Response:
    return await _teams_page(request)


@routes.post("/console/tenants/{tid}/teams")
async def team_create(request: web.Request) -> web.Response:
    form = await request.post()
    tenant_id = tenant_id_of(request)
    try:
        name = load(TeamSchema(), {"name": forms.text(form, "name")})["name"]
        await team_service.create_team(action_scope(request), tenant_id, name)
    except ScimError as exc:
        return await _teams_page(request, status=exc.status, error=exc.detail, form=form)
    raise see_other(f"/console/tenants/{tenant_id}/teams?done=team-created")


@routes.post("/console/tenants/{tid}/teams/{team_id}/rename")
async def team_rename(request: web.Request) -> web.Response:
    form = await request.post()
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    try:
        name = load(TeamSchema(), {"name": forms.text(form, "name")})["name"]
        await team_service.rename_team(action_scope(request), tenant_id, team_id, name)
    except ScimError as exc:
        return await _team_page(request, status=exc.status, error=exc.detail, form=form)
    raise see_other(f"/console/tenants/{tenant_id}/teams/{team_id}?done=team-renamed")


@routes.post("/console/tenants/{tid}/teams/{team_id}/delete")
async def team_delete(request: web.Request) -> web.Response:
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    if not await team_service.delete_team(action_scope(request), tenant_id, team_id):
        return await _teams_page(request, status=404, error=f"team {team_id} not found in this tenant")
    raise see_other(f"/console/tenants/{tenant_id}/teams?done=team-deleted")


async def _team_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> web.Response:
    tenant = await _tenant(request)
    pool = request.app[POOL]
    team = await team_service.team_or_404(pool, UUID(tenant["id"]), team_id_of(request))
    after = query_id(request.query, "after", "user")
    members = await team_service.members_page(pool, team["id"], after=after, limit=PAGE_SIZE)
    context = {
        "tenant": tenant,
        "section": "teams",
        "team": team,
        "members": members,
        "next_after": str(members[-1]["user_id"]) if len(members) == PAGE_SIZE else None,
        "form": dict(form or {}),
        "error": error,
    }
    return page(request, "team.html", context, status=status)


@routes.get("/console/tenants/{tid}/teams/{team_id}")
async def team_detail(request: web.Request) -> web.Response:
    return await _team_page(request)


@routes.post("/console/tenants/{tid}/teams/{team_id}/members")
async def member_add(request: web.Request) -> web.Response:
    """Manual membership: allowed with SCIM on (a later group push overwrites it)."""
    form = await request.post()
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    pool = request.app[POOL]
    try:
        await team_service.team_or_404(pool, tenant_id, team_id)
        user_id = await admin_users.find_user(pool, tenant_id, forms.text(form, "user"))
        if not await team_service.add_member(action_scope(request), tenant_id, team_id, user_id):
            raise not_found(f"user {user_id} not found in this tenant")
    except ScimError as exc:
        return await _team_page(request, status=exc.status, error=exc.detail, form=form)
    raise see_other(f"/console/tenants/{tenant_id}/teams/{team_id}?done=member-added")


@routes.post("/console/tenants/{tid}/teams/{team_id}/members/{uid}/remove")
async def member_remove(request: web.Request) -> web.Response:
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    user_id = user_id_of(request)
    if not await team_service.remove_member(action_scope(request), tenant_id, team_id, user_id):
        return await _team_page(request, status=404, error=f"user {user_id} is not a member of this team")
    raise see_other(f"/console/tenants/{tenant_id}/teams/{team_id}?done=member-removed")


# --- users and audit -------------------------------------------------------------------------------


@routes.get("/console/tenants/{tid}/users")
async def users_list(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    tenant_id = UUID(tenant["id"])
    pool = request.app[POOL]
    query = request.query
    context: dict[str, Any] = {
        "tenant": tenant,
        "section": "users",
        "query": {k: query.get(k, "") for k in ("q", "state", "license")},
        "states": admin_users.USER_STATES,
        "licenses": admin_users.LICENSE_FILTERS,
        "users": [],
        "next_after": None,
        "filters": {},
    }
    context["filters"] = {k: v for k, v in context["query"].items() if v}
    try:
        filters = user_filters(query)
        after = query_id(query, "after", "user")
    except ScimError as exc:
        return page(request, "users.html", {**context, "error": exc.detail}, status=exc.status)
    users = await admin_users.user_page(pool, tenant_id, after=after, limit=PAGE_SIZE, **filters)
    context["users"] = render_user_page(users)
    context["next_after"] = str(users.rows[-1]["id"]) if len(users.rows) == PAGE_SIZE else None
    return page(request, "users.html", context)


@routes.get("/console/tenants/{tid}/users.csv")
async def users_csv(request: web.Request) -> web.StreamResponse:
    """The admin API's CSV export, for a browser that signed in with a session instead of a bearer key."""
    tenant_id = tenant_id_of(request)
    await tenant_service.tenant_or_404(request.app[POOL], tenant_id)
    return await stream_users_csv(request, tenant_id, user_filters(request.query))


@routes.get("/console/tenants/{tid}/audit")
@for_org_admins
async def audit_log(request: web.Request) -> web.Response:
    tenant = await organization(request)
    tenant_id = UUID(tenant["id"])
    pool = request.app[POOL]
    query = request.query
    typed_user = query.get("user", "").strip()
    action = query.get("action", "").strip()
    context: dict[str, Any] = {
        "tenant": tenant,
        "section": "audit",
        "user": typed_user,
        "action": action,
        "items": [],
        "next_before": None,
    }
    try:
        user_id = await admin_users.find_user(pool, tenant_id, typed_user) if typed_user else None
        before = audit_before(query)
        action_filter = audit_action_filter(query)
    except ScimError as exc:
        return page(request, "audit.html", {**context, "error": exc.detail}, status=exc.status)
    rows = await audit_page(
        pool, tenant_id, user_id=user_id, action=action_filter, before=before, limit=PAGE_SIZE
    )
    names = await admin_users.display_names(
        pool, tenant_id, list({r["user_id"] for r in rows if r["user_id"]})
    )
    context["items"] = [
        {
            **dict(r),
            "user_name": names.get(r["user_id"], "") if r["user_id"] else "",
            "detail": orjson.dumps(r["detail"]).decode() if r["detail"] else "",
        }
        for r in rows
    ]
    context["next_before"] = rows[-1]["id"] if len(rows) == PAGE_SIZE else None
    return page(request, "audit.html", context)


# --- queue health ----------------------------------------------------------------------------------


@routes.get("/console/queue")
async def queue(request: web.Request) -> web.Response:
    """The `/ops/queue` figures; the page reloads itself every few seconds (a meta refresh, no script)."""
    app = request.app
    health = await queue_health(app[POOL], app[REDIS], app[SETTINGS])
    context = {"health": health, "section": "queue", "refresh_seconds": QUEUE_REFRESH_SECONDS}
    return page(request, "queue.html", context)
