"""Console pages of portal access (README.md, For organization admins).

The operator's tab "Portal access" of an organization (`/console/tenants/{tid}/portal`): make a portal link
(shown once: the POST hands it to the next GET in a short-lived cookie of that page only, cleared once
shown, so it is never in a URL and a reload makes no other), the registered admin addresses, the live
portal sessions, and ending them all (after a confirmation page).

The pages before any sign-in, under `/console/portal/` (`access.py:PORTAL_PREFIX`): opening a link
(`/console/portal/{token}`) and asking for a sign-in link by email (`/console/portal/sign-in`). A link the
the admin API made with `"redirect": true` signs in on GET (a product's settings page redirects its admin
there) and answers a page that moves on to the organization's SCIM page by itself (`_open` says why not a
303); every other link (console, CLI, emailed, API without it) shows a Continue button that POSTs, since
mail scanners and chat previews fetch the links they see, and a link someone sends must not sign its
recipient in to the sender's organization without a click. An emailed link's GET moves its token into a
short-lived cookie of `/console/portal/continue` and redirects there, so the token leaves the address bar.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from schemas.portal import MAX_LINK_MINUTES, OrgAdminCreateSchema, PortalLinkCreateSchema
from scimsvc.product.portal import link_url, normal_email, storable_address
from scimsvc.ratelimit.limiter import retry_after
from scimsvc.scim.errors import ScimError, invalid_value
from scimsvc.services import console_sessions, portal
from scimsvc.services.actions import ActionScope, Actor
from scimsvc.services.tenants import tenant_or_404
from scimsvc.web.admin_requests import action_scope, tenant_id_of
from scimsvc.web.admin_views import render_tenant
from scimsvc.web.console import forms
from scimsvc.web.console.access import PORTAL_SIGN_IN_PATH
from scimsvc.web.console.pages import page, texts
from scimsvc.web.console.session import SESSION, Session, new_session, set_cookie, signed_in
from scimsvc.web.keys import LIMITER, POOL, REDIS, REQUEST_ID, SETTINGS
from scimsvc.web.middlewares import client_of

routes = web.RouteTableDef()

TAB = "/console/tenants/{tid}/portal"
NEW_LINK_COOKIE = "scimsvc_portal_link"
NEW_LINK_SECONDS = 120  # the new link's way from the POST to the page that shows it
# An emailed link's token, moved out of the URL on its first GET into a cookie of the Continue page only.
CONTINUE_PATH = "/console/portal/continue"
TOKEN_COOKIE = "scimsvc_portal_token"
NOTICES = {
    "portal-link-created": "Portal link made. Copy it now: it is shown only once.",
    "org-admin-added": "Admin address registered: it may now ask for a sign-in link by email.",
    "org-admin-removed": (
        "Admin address removed. Its portal sessions have ended and its unused links no longer work."
    ),
    "portal-sessions-ended": (
        "Every portal session of this organization has ended, and its unused portal links no longer work."
    ),
    "link-sent": (
        "If that address is registered for an organization, a sign-in link is on its way to it. "
        "It works once, within a few minutes."
    ),
}


def _tab(tenant_id: UUID | str) -> str:
    return TAB.replace("{tid}", str(tenant_id))


def _anonymous(request: web.Request) -> Session:
    """The request's session, or a new anonymous one to carry a form's CSRF token."""
    session = request.get(SESSION)
    if session is None:
        session = new_session(operator=False)
        request[SESSION] = session
    return session


# --- the operator's tab ------------------------------------------------------------------------------


async def _portal_page(
    request: web.Request, *, status: int = 200, error: str | None = None, form: dict[str, Any] | None = None
) -> web.Response:
    pool, settings = request.app[POOL], request.app[SETTINGS]
    row = await tenant_or_404(pool, tenant_id_of(request))
    tenant = render_tenant(row, public_url=settings.public_url)
    new_link = None
    token = request.cookies.get(NEW_LINK_COOKIE)
    if token:
        link = await portal.usable_link(pool, token)
        if link is not None and link["tenant_id"] == row["id"]:
            new_link = {"url": link_url(settings.public_url, token), "email": link["email"]}
    context = {
        "tenant": tenant,
        "section": "portal",
        "new_link": new_link,
        "default_minutes": settings.portal_link_minutes,
        "admins": await portal.list_admins(pool, row["id"]),
        "sessions": await console_sessions.live_portal_sessions(pool, row["id"]),
        "form": form or {},
        "error": error,
    }
    response = page(request, "portal_access.html", context, status=status, notices=NOTICES)
    if token:
        response.del_cookie(NEW_LINK_COOKIE, path=_tab(request.match_info["tid"]))
    return response


@routes.get(TAB)
async def portal_access(request: web.Request) -> web.Response:
    return await _portal_page(request)


@routes.post(TAB + "/links")
async def portal_link_create(request: web.Request) -> web.Response:
    form = await request.post()
    tenant_id = tenant_id_of(request)
    email, minutes = forms.text(form, "email").strip(), forms.text(form, "minutes").strip()
    _ = texts(request)
    plain = {
        "email": _("Type the admin's email address, like it@example.com, or leave it empty."),
        "minutes": _(
            "Minutes must be a whole number from 1 to {most}, or empty for the default.",
            most=MAX_LINK_MINUTES,
        ),
    }
    try:
        if minutes and not (minutes.isascii() and minutes.isdigit() and len(minutes) <= 9):
            raise invalid_value(plain["minutes"])
        payload = {"email": email or None, "minutes": int(minutes) if minutes else None}
        data = forms.load_form(PortalLinkCreateSchema(), payload, plain)
        link = await portal.create_link(
            action_scope(request), tenant_id, email=data["email"], minutes=data["minutes"]
        )
    except ScimError as exc:
        return await _portal_page(request, status=exc.status, error=exc.detail, form=dict(form))
    settings = request.app[SETTINGS]
    path = _tab(request.match_info["tid"])
    response = web.HTTPSeeOther(f"{path}?done=portal-link-created")
    response.set_cookie(
        NEW_LINK_COOKIE,
        link.url.rsplit("/", 1)[1],
        max_age=NEW_LINK_SECONDS,
        path=path,
        httponly=True,
        samesite="Strict",
        secure=settings.public_url.startswith("https://"),
    )
    raise response


@routes.post(TAB + "/admins")
async def org_admin_add(request: web.Request) -> web.Response:
    form = await request.post()
    tenant_id = tenant_id_of(request)
    plain = {"email": texts(request)("Type the admin's email address, like it@example.com.")}
    try:
        email = forms.load_form(OrgAdminCreateSchema(), {"email": forms.text(form, "email").strip()}, plain)
        await portal.add_admin(action_scope(request), tenant_id, email["email"])
    except ScimError as exc:
        return await _portal_page(request, status=exc.status, error=exc.detail, form=dict(form))
    raise web.HTTPSeeOther(f"{_tab(request.match_info['tid'])}?done=org-admin-added")


@routes.post(TAB + "/admins/remove")
async def org_admin_remove(request: web.Request) -> web.Response:
    form = await request.post()
    tenant_id = tenant_id_of(request)
    email = forms.text(form, "email")
    if not await portal.remove_admin(action_scope(request), tenant_id, email):
        _ = texts(request)
        detail = _("That address is not a registered admin address of this organization (already removed?).")
        if storable_address(normal_email(email)):
            detail = _(
                "{email} is not a registered admin address of this organization (already removed?).",
                email=email,
            )
        return await _portal_page(request, status=404, error=detail)
    raise web.HTTPSeeOther(f"{_tab(request.match_info['tid'])}?done=org-admin-removed")


@routes.get(TAB + "/end-sessions")
async def end_sessions_confirm(request: web.Request) -> web.Response:
    pool, settings = request.app[POOL], request.app[SETTINGS]
    row = await tenant_or_404(pool, tenant_id_of(request))
    sessions = await console_sessions.live_portal_sessions(pool, row["id"])
    context = {
        "tenant": render_tenant(row, public_url=settings.public_url),
        "section": "portal",
        "live": len(sessions),
    }
    return page(request, "portal_end_sessions.html", context)


@routes.post(TAB + "/end-sessions")
async def end_sessions(request: web.Request) -> web.Response:
    await portal.end_portal_sessions(action_scope(request), tenant_id_of(request))
    raise web.HTTPSeeOther(f"{_tab(request.match_info['tid'])}?done=portal-sessions-ended")


# --- before sign-in: asking for a link by email, opening a link ---------------------------------------


@routes.get(PORTAL_SIGN_IN_PATH)
async def sign_in_form(request: web.Request) -> web.Response:
    session = _anonymous(request)
    response = page(request, "portal_sign_in.html", {"form": {}}, notices=NOTICES)
    set_cookie(request, response, session)
    return response


@routes.post(PORTAL_SIGN_IN_PATH)
async def sign_in_request(request: web.Request) -> web.Response:
    """The same answer whether or not the address is registered (nothing to learn about who is)."""
    form = await request.post()
    typed = forms.text(form, "email").strip()
    _ = texts(request)
    try:
        plain = {"email": _("Type your email address, like name@example.com.")}
        email = forms.load_form(OrgAdminCreateSchema(), {"email": typed}, plain)["email"]
    except ScimError as exc:
        return page(
            request, "portal_sign_in.html", {"error": exc.detail, "form": {"email": typed}}, status=400
        )
    app = request.app
    # Each request counts toward the client address's budget of failed authentications (as a wrong
    # operator key does): one address cannot send many, whatever addresses it types.
    wait = await app[LIMITER].auth_failed("portal", client_of(request))
    if wait > 0:
        seconds = retry_after(int(wait * 1000))
        detail = _(
            "Too many sign-in link requests from this address: try again in {seconds} seconds.",
            seconds=seconds,
        )
        raise ScimError(429, detail, headers={"Retry-After": seconds})
    await portal.request_sign_in_links(
        app[POOL], app[REDIS], app[SETTINGS], email, request_id=request.get(REQUEST_ID)
    )
    raise web.HTTPSeeOther(f"{PORTAL_SIGN_IN_PATH}?done=link-sent")


def _link_gone(request: web.Request) -> web.Response:
    return page(request, "portal_link_gone.html", {}, status=410)


async def _open(request: web.Request, token: str) -> web.Response:
    """Use the link up and sign this browser in to its organization (a new session id), then go to its
    SCIM page.

    After a GET (a link opened from an email or another site's redirect) that is a page which moves on by
    itself (a meta refresh, with a link), not a 303: the cookie is SameSite=Strict, and a browser does not
    send it on a redirect of a navigation another site started, so a 303 would land on the sign-in page.
    The page's own navigation is same-site. After the Continue button's POST, a 303 does."""
    app = request.app
    settings = app[SETTINGS]
    fresh = new_session(operator=False, lifetime=settings.portal_session_hours * 3600)
    previous = request.get(SESSION)  # the browser's earlier sign-in ends: one session per browser
    scope = ActionScope(app[POOL], app[REDIS], settings, Actor("org_admin", request.get(REQUEST_ID)))
    opened = await portal.open_link(
        scope,
        token,
        sid=fresh.sid,
        expires=fresh.expires,
        previous_sid=previous.sid if previous is not None and signed_in(previous) else None,
    )
    if opened is None:
        return _link_gone(request)
    session = Session(fresh.sid, fresh.expires, False, opened.tenant_id)
    request[SESSION] = session
    landing = f"/console/tenants/{opened.tenant_id}/scim"
    if request.method == "POST":
        response = web.HTTPSeeOther(landing)
        set_cookie(request, response, session)
        raise response
    answer = page(request, "portal_signed_in.html", {"landing": landing})
    set_cookie(request, answer, session)
    return answer


def _continue_page(request: web.Request, link: Any, action: str) -> web.Response:
    """The page of a link that does not sign in on a GET: its Continue button POSTs to `action`."""
    session = _anonymous(request)
    context = {"organization": link["tenant_name"], "action": action}
    response = page(request, "portal_continue.html", context)
    set_cookie(request, response, session)
    return response


def _forget_token(response: web.StreamResponse) -> None:
    response.del_cookie(TOKEN_COOKIE, path=CONTINUE_PATH)


@routes.get(CONTINUE_PATH)
async def continue_form(request: web.Request) -> web.Response:
    """An emailed link's Continue page, its token in the cookie `open_link` set (not in the URL)."""
    token = request.cookies.get(TOKEN_COOKIE)
    link = await portal.usable_link(request.app[POOL], token) if token else None
    if link is None:
        gone = _link_gone(request)
        _forget_token(gone)
        return gone
    return _continue_page(request, link, CONTINUE_PATH)


@routes.post(CONTINUE_PATH)
async def continue_open(request: web.Request) -> web.Response:
    token = request.cookies.get(TOKEN_COOKIE)
    try:
        answer = await _open(request, token) if token else _link_gone(request)
    except web.HTTPSeeOther as signed_in_now:
        _forget_token(signed_in_now)
        raise
    _forget_token(answer)
    return answer


@routes.get("/console/portal/{token}")
async def open_link(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    link = await portal.usable_link(request.app[POOL], token)
    if link is None:
        return _link_gone(request)
    if link["redirect"] and request.method == "GET":  # a HEAD (a link checker) uses nothing up
        return await _open(request, token)
    if link["emailed"] and request.method == "GET":
        # The token leaves the address bar (and the browser's history) for a short-lived cookie of the
        # Continue page only. SameSite=Lax: the click came from a mail client, another site, and this
        # redirect is part of that navigation (Strict would not be sent).
        settings = request.app[SETTINGS]
        moved = web.HTTPSeeOther(CONTINUE_PATH)
        moved.set_cookie(
            TOKEN_COOKIE,
            token,
            max_age=settings.portal_link_minutes * 60,
            path=CONTINUE_PATH,
            httponly=True,
            samesite="Lax",
            secure=settings.public_url.startswith("https://"),
        )
        raise moved
    return _continue_page(request, link, request.path)


@routes.post("/console/portal/{token}")
async def open_link_continue(request: web.Request) -> web.Response:
    return await _open(request, request.match_info["token"])
