"""The console's SCIM panel (README.md, Console): SCIM on or off, the base URL, tokens, the setup guides
for Okta and Microsoft Entra ID, and the last request seen from the organization's identity provider.

Open to the operator and to the organization's own admins (`for_org_admins`). A new token is shown once:
its POST answers 303 to `/scim/tokens/new` and carries the token there in `reveal.py`'s cookie (scoped to
that exact path, living a minute, HttpOnly and SameSite=Strict, bound by an HMAC to this session and
organization); the GET that shows it clears it, so a reload shows "shown once" and never makes another
token. Revoking a
token and turning SCIM off each go through a confirmation page (a GET that changes nothing) whose form
POSTs; turning SCIM on needs none.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from schemas.admin import ScimToggleSchema, TokenCreateSchema
from scimsvc.scim.errors import ScimError, not_found
from scimsvc.scim.ids import id_or_404
from scimsvc.services import provisioning_log, tokens
from scimsvc.services import tenants as tenant_service
from scimsvc.web.admin_requests import action_scope, tenant_id_of
from scimsvc.web.console import forms, reveal
from scimsvc.web.console.pages import organization, page, texts
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.keys import POOL, SETTINGS

routes = web.RouteTableDef()

NEW_TOKEN_COOKIE = "scimsvc_new_token"
REVEAL_PURPOSE = "new-token"  # the HMAC key of its cookie (`reveal.py`)


def _panel(tenant_id: UUID) -> str:
    return f"/console/tenants/{tenant_id}/scim"


def _reveal_path(tenant_id: UUID) -> str:
    return f"/console/tenants/{tenant_id}/scim/tokens/new"


def _token_row(row: Any) -> dict[str, Any]:
    """A token as the panel lists it."""
    return {**dict(row), "id": str(row["id"]), "state": tokens.token_state(row)}


# --- the panel -------------------------------------------------------------------------------------


async def _scim_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> web.Response:
    tenant = await organization(request)
    pool = request.app[POOL]
    tenant_id = UUID(tenant["id"])
    rows = await tokens.list_tokens(pool, tenant_id)
    context = {
        "tenant": tenant,
        "section": "scim",
        "tokens": [_token_row(r) for r in rows],
        "last": await provisioning_log.last_request(pool, tenant_id),
        "log_on": request.app[SETTINGS].provisioning_log,
        "form": form or {},
        "error": error,
    }
    return page(request, "scim.html", context, status=status)


@routes.get("/console/tenants/{tid}/scim")
@for_org_admins
async def scim_panel(request: web.Request) -> web.Response:
    return await _scim_page(request)


@routes.post("/console/tenants/{tid}/scim")
@for_org_admins
async def scim_toggle(request: web.Request) -> web.Response:
    """Turn SCIM on at once; turning it off goes through its confirmation page."""
    form = await request.post()
    tenant_id = tenant_id_of(request)
    _ = texts(request)
    try:
        plain = {"enabled": _("Choose whether SCIM provisioning is on or off.")}
        payload = {"enabled": forms.flag(forms.text(form, "enabled"))}
        enabled = forms.load_form(ScimToggleSchema(), payload, plain)["enabled"]
        if not enabled:
            await organization(request)
            raise web.HTTPSeeOther(_panel(tenant_id) + "/disable")
        await tenant_service.set_scim_enabled(action_scope(request), tenant_id, True)
    except ScimError as exc:
        return await _scim_page(request, status=exc.status, error=exc.detail)
    raise web.HTTPSeeOther(_panel(tenant_id) + "?done=scim-on")


@routes.get("/console/tenants/{tid}/scim/disable")
@for_org_admins
async def scim_disable_confirm(request: web.Request) -> web.Response:
    """What turning SCIM off does, and the form that does it; this page changes nothing."""
    tenant = await organization(request)
    live = [r for r in await tokens.list_tokens(request.app[POOL], UUID(tenant["id"])) if _live(r)]
    context = {"tenant": tenant, "section": "scim", "live_tokens": len(live)}
    return page(request, "scim_disable.html", context)


@routes.post("/console/tenants/{tid}/scim/disable")
@for_org_admins
async def scim_disable(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    try:
        await tenant_service.set_scim_enabled(action_scope(request), tenant_id, False)
    except ScimError as exc:
        return await _scim_page(request, status=exc.status, error=exc.detail)
    raise web.HTTPSeeOther(_panel(tenant_id) + "?done=scim-off")


def _live(row: Any) -> bool:
    return tokens.token_state(row) == "live"


# --- tokens ----------------------------------------------------------------------------------------


@routes.post("/console/tenants/{tid}/scim/tokens")
@for_org_admins
async def token_create(request: web.Request) -> web.Response:
    """A new token; its value goes to the page that shows it in a cookie, never in a URL (only its hash
    is stored)."""
    form = await request.post()
    tenant_id = tenant_id_of(request)
    typed = {"label": forms.text(form, "label"), "expires_in_days": forms.text(form, "expires_in_days")}
    _ = texts(request)
    plain = {
        "label": _("The label is at most 100 characters of text."),
        "expires_in_days": _(
            "Expires in: a whole number of days from 1 to 3650, or empty for a token that never expires."
        ),
    }
    try:
        days = forms.number(typed["expires_in_days"]) if typed["expires_in_days"] else None
        data = forms.load_form(TokenCreateSchema(), {"label": typed["label"], "expires_in_days": days}, plain)
        expires_at = tokens.token_expiry(expires_at=None, expires_in_days=data["expires_in_days"])
        new = await tokens.create_token(
            action_scope(request), tenant_id, label=data["label"], expires_at=expires_at
        )
    except ScimError as exc:
        return await _scim_page(request, status=exc.status, error=exc.detail, form=typed)
    response = web.HTTPSeeOther(_reveal_path(tenant_id))
    reveal.reveal_next(
        request,
        response,
        cookie=NEW_TOKEN_COOKIE,
        path=_reveal_path(tenant_id),
        purpose=REVEAL_PURPOSE,
        owner=str(tenant_id),
        item_id=str(new.id),
        secret=new.token,
    )
    raise response


@routes.get("/console/tenants/{tid}/scim/tokens/new")
@for_org_admins
async def token_reveal(request: web.Request) -> web.Response:
    """The token just created, once: the cookie that carried it is cleared by this answer."""
    tenant = await organization(request)
    tenant_id = UUID(tenant["id"])
    new_token = None
    handed = reveal.revealed(request, cookie=NEW_TOKEN_COOKIE, purpose=REVEAL_PURPOSE, owner=str(tenant_id))
    if handed is not None:
        token_id, token = handed
        try:
            row = await tokens.token_of(request.app[POOL], tenant_id, id_or_404(token_id, "token"))
        except ScimError:
            row = None
        if row is not None and _live(row):
            new_token = {**_token_row(row), "token": token}
    context = {
        "tenant": tenant,
        "section": "scim",
        "new_token": new_token,
        "shown_token": new_token["token"] if new_token else None,
    }
    response = page(request, "scim_new_token.html", context)
    reveal.forget(response, cookie=NEW_TOKEN_COOKIE, path=_reveal_path(tenant_id))
    return response


@routes.get("/console/tenants/{tid}/scim/tokens/{token_id}/revoke")
@for_org_admins
async def token_revoke_confirm(request: web.Request) -> web.Response:
    """What revoking the token does, and the form that does it; this page changes nothing."""
    tenant = await organization(request)
    try:
        token_id = id_or_404(request.match_info["token_id"], "token")
        row = await tokens.token_of(request.app[POOL], UUID(tenant["id"]), token_id)
    except ScimError as exc:
        if exc.status != 404:
            raise
        missing = texts(request)("There is no such token in this organization: the address is wrong.")
        raise not_found(missing) from None
    context = {"tenant": tenant, "section": "scim", "token": _token_row(row)}
    return page(request, "scim_revoke.html", context)


@routes.post("/console/tenants/{tid}/scim/tokens/{token_id}/revoke")
@for_org_admins
async def token_revoke(request: web.Request) -> web.Response:
    tenant_id = tenant_id_of(request)
    token_id = id_or_404(request.match_info["token_id"], "token")
    if not await tokens.revoke_token(action_scope(request), tenant_id, token_id):
        detail = texts(request)(
            "This token is not a live token of this organization: it was already revoked."
        )
        return await _scim_page(request, status=404, error=detail)
    raise web.HTTPSeeOther(_panel(tenant_id) + "?done=token-revoked")


# --- setup guides ----------------------------------------------------------------------------------


@routes.get("/console/tenants/{tid}/scim/okta")
@for_org_admins
async def okta_guide(request: web.Request) -> web.Response:
    context = {"tenant": await organization(request), "section": "scim", "idp": "okta", "shown_token": None}
    return page(request, "scim_guide.html", context)


@routes.get("/console/tenants/{tid}/scim/entra")
@for_org_admins
async def entra_guide(request: web.Request) -> web.Response:
    context = {"tenant": await organization(request), "section": "scim", "idp": "entra", "shown_token": None}
    return page(request, "scim_guide.html", context)
