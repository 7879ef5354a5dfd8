"""Console pages: each handler reads a form or a query, calls the admin services and renders a template.

Every change goes through the admin schemas (`schemas/admin.py`) and the same service functions as the
admin API; an error comes back as the page with the error shown above its form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from aiohttp import web

from schemas.admin import (
    TenantCreateSchema,
)
from scimsvc.ops.queue_health import queue_health
from scimsvc.scim.errors import ScimError, invalid_value
from scimsvc.services import admin_users, console_sessions
from scimsvc.services import tenants as tenant_service
from scimsvc.services.audit import audit_before, audit_page
from scimsvc.web.admin_requests import action_scope, tenant_id_of
from scimsvc.web.console import forms, names, setting_forms
from scimsvc.web.console.access import LOGIN_PATH, PORTAL_SIGN_IN_PATH
from scimsvc.web.console.i18n import Translate
from scimsvc.web.console.pages import organization, page, texts
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.console.session import (
    COOKIE,
    COOKIE_PATH,
    SESSION,
    new_session,
    set_cookie,
    signed_in,
)
from scimsvc.web.console.setting_forms import MAX_NAME
from scimsvc.web.console.user_pages import detail_lines, find_typed_user
from scimsvc.web.keys import POOL, REDIS, SETTINGS
from scimsvc.web.middlewares import operator_key_given

routes = web.RouteTableDef()

PAGE_SIZE = 50
TENANTS_SHOWN = 500
QUEUE_REFRESH_SECONDS = 5


def see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


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
    set_cookie(request, response, session)
    return response


@routes.post(LOGIN_PATH)
async def login(request: web.Request) -> web.Response:
    """Check the operator key in constant time; a wrong one is logged and counted per client address."""
    form = await request.post()
    if not await operator_key_given(request, forms.text(form, "key"), "console sign-in"):
        _ = texts(request)
        wrong = _("That is not the operator key: type the value of SCIMSVC_ADMIN_KEY on the server.")
        return page(request, "login.html", {"error": wrong}, status=401)
    session = new_session(operator=True)  # a new id: nothing seen before sign-in is valid after it
    previous = request.get(SESSION)
    if signed_in(previous):  # the browser's earlier sign-in (a portal session too) ends: one per browser
        assert previous is not None
        await console_sessions.end(request.app[POOL], previous.sid)
    await console_sessions.start(request.app[POOL], session.sid, expires=session.expires)
    response = see_other("/console/tenants")
    set_cookie(request, response, session)
    raise response


@routes.post("/console/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session on the server (a copied cookie stops working) and in the browser."""
    session = request[SESSION]
    await console_sessions.end(request.app[POOL], session.sid)
    response = see_other(PORTAL_SIGN_IN_PATH if session.tenant_id is not None else LOGIN_PATH)
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
    _ = texts(request)
    try:
        payload = setting_forms.new_organization(form, _)
        plain = {"name": _("The organization's name must be 1 to {most} characters.", most=MAX_NAME)}
        data = forms.load_form(TenantCreateSchema(), payload, plain)
        row = await tenant_service.create_tenant(action_scope(request), data)
    except ScimError as exc:
        return await _tenants_page(request, status=exc.status, error=exc.detail, form=form)
    raise see_other(f"/console/tenants/{row['id']}/scim?done=tenant-created")


@routes.get("/console/tenants/{tid}")
async def tenant_home(request: web.Request) -> web.Response:
    raise see_other(f"/console/tenants/{tenant_id_of(request)}/scim")


# --- audit -------------------------------------------------------------------------------------------


@routes.get("/console/tenants/{tid}/audit")
@for_org_admins
async def audit_log(request: web.Request) -> web.Response:
    tenant = await organization(request)
    tenant_id = UUID(tenant["id"])
    pool = request.app[POOL]
    query = request.query
    _ = texts(request)
    typed_user = query.get("user", "").strip()
    action = query.get("action", "").strip()
    context: dict[str, Any] = {
        "tenant": tenant,
        "section": "audit",
        "user": typed_user,
        "action": action,
        "actions": list(names.ACTIONS),
        "items": [],
        "next_before": None,
    }
    try:
        # The filter lists the actions by name (names.py:ACTIONS); anything else was not chosen from it.
        if action and action not in names.ACTIONS:
            raise invalid_value(_("Choose the action from the list, or every action."))
        user_id = await find_typed_user(pool, tenant_id, typed_user, _) if typed_user else None
        before = _before(query, _)
    except ScimError as exc:
        return page(request, "audit.html", {**context, "error": exc.detail}, status=exc.status)
    rows = await audit_page(
        pool, tenant_id, user_id=user_id, action=action or None, before=before, limit=PAGE_SIZE
    )
    user_names = await admin_users.display_names(
        pool, tenant_id, list({r["user_id"] for r in rows if r["user_id"]})
    )
    context["items"] = [
        {
            **dict(r),
            "user_name": user_names.get(r["user_id"], "") if r["user_id"] else "",
            "detail": detail_lines(r, _),
        }
        for r in rows
    ]
    context["next_before"] = rows[-1]["id"] if len(rows) == PAGE_SIZE else None
    return page(request, "audit.html", context)


def _before(query: Mapping[str, str], _: Translate) -> int | None:
    """`before` of an audit page: the last audit id its "Older entries" link carried."""
    try:
        return audit_before(query)
    except ScimError:
        raise invalid_value(
            _("That page of the audit log does not exist: start again from the newest entries.")
        ) from None


# --- queue health ----------------------------------------------------------------------------------


@routes.get("/console/queue")
async def queue(request: web.Request) -> web.Response:
    """The `/ops/queue` figures; the page reloads itself every few seconds (a meta refresh, no script)."""
    app = request.app
    health = await queue_health(app[POOL], app[REDIS], app[SETTINGS])
    context = {"health": health, "section": "queue", "refresh_seconds": QUEUE_REFRESH_SECONDS}
    return page(request, "queue.html", context)
