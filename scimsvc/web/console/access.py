"""The console's gate: sign-in required, a live session on the server, an organization admin's portal
session held to its own organization's marked pages, a CSRF token checked on every POST, errors shown as
pages.

The rule of a portal session (an organization admin's) is enforced here and nowhere else: it opens a
handler only when `roles.py:for_org_admins` marked it AND the URL's `{tid}` is its own organization, plus
the few paths of `PORTAL_PATHS`; everything else is the console's 404 page, the same as a missing page.
"""

from __future__ import annotations

import logging
from uuid import UUID

from aiohttp import web
from aiohttp.typedefs import Handler

from scimsvc.scim.errors import ScimError, database_unavailable
from scimsvc.services import console_sessions
from scimsvc.store.db import unavailable
from scimsvc.web.console.csrf import FIELD, csrf_valid
from scimsvc.web.console.i18n import LANGUAGE_PATH
from scimsvc.web.console.pages import page, texts
from scimsvc.web.console.roles import open_to_org_admins
from scimsvc.web.console.session import (
    ADMIN_EMAIL,
    COOKIE,
    COOKIE_PATH,
    SESSION,
    Session,
    decode_session,
    signed_in,
)
from scimsvc.web.keys import POOL, REQUEST_ID, SETTINGS
from scimsvc.web.middlewares import log_database_unavailable
from scimsvc.web.route_template import log_path

log = logging.getLogger(__name__)

CONSOLE_PREFIX = "/console"
LOGIN_PATH = "/console/login"
STATIC_PREFIX = "/console/static/"
PORTAL_PREFIX = "/console/portal/"  # opening a portal link, asking for one by email: before any sign-in
PORTAL_SIGN_IN_PATH = "/console/portal/sign-in"
LOGOUT_PATH = "/console/logout"
# What a portal session may open besides its organization's marked pages (the language switch, like the
# sign-in page, passes before any session check in `_guard`: one rule for it, there).
PORTAL_PATHS = frozenset({LOGOUT_PATH})

# No inline script or style, no framing, forms post only here, nothing cached, no referrer leaves.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# A page whose URL holds a portal link's token sends no referrer at all, not even to this console.
PORTAL_LINK_HEADERS = {"Referrer-Policy": "no-referrer"}
FORM_EXPIRED = (
    "this form has expired or did not come from this console (its security token does not match): "
    "reload the page and try again"
)


def is_console(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def render_error(request: web.Request, status: int, detail: str, **values: str) -> web.Response:
    """An error as a console page (never JSON, never a traceback), its text in the page's language when the
    catalogue has it (`values` fill its `{name}`s). A portal session's page links back to its organization."""
    session = request.get(SESSION)
    own = session.tenant_id if session is not None else None
    shown = texts(request)(detail, **values)
    return page(
        request, "error.html", {"status": status, "detail": shown, "own_tenant_id": own}, status=status
    )


def _portal_may_open(request: web.Request, session: Session) -> bool:
    """A portal session opens its organization's marked pages and `PORTAL_PATHS`, nothing else."""
    if request.path in PORTAL_PATHS:
        return True
    if not open_to_org_admins(request.match_info.handler):
        return False
    try:
        return UUID(request.match_info.get("tid", "")) == session.tenant_id
    except ValueError:
        return False


async def _live(request: web.Request, session: Session | None) -> Session | None:
    """A signed-in session only while its row on the server is live (one lookup by primary key); the
    anonymous session that carries the sign-in form's CSRF token is the cookie alone."""
    if not signed_in(session):
        return session
    assert session is not None
    row = await console_sessions.live(request.app[POOL], session.sid)
    if row is None or row.tenant_id != session.tenant_id:
        return None
    if row.email:
        request[ADMIN_EMAIL] = row.email
    return session


async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(STATIC_PREFIX):
        return await handler(request)
    admin_key = request.app[SETTINGS].admin_key
    if not admin_key:
        raise ScimError(403, "the console is off: set SCIMSVC_ADMIN_KEY on the server, then sign in with it")
    cookie = decode_session(request.cookies.get(COOKIE), admin_key)
    session = await _live(request, cookie)
    if session is not None:
        request[SESSION] = session
    if request.path == LOGOUT_PATH and request.method == "POST" and not signed_in(session):
        # Already signed out (ended here or by the operator, or expired): nothing to protect, so no
        # "form has expired" page; on to signing in again, the cookie dropped.
        ended_portal = cookie is not None and cookie.tenant_id is not None
        response = web.HTTPSeeOther(PORTAL_SIGN_IN_PATH if ended_portal else LOGIN_PATH)
        response.del_cookie(COOKIE, path=COOKIE_PATH)
        raise response
    # A method the page does not take runs no handler: no form to check; the gate below still decides
    # who learns that (404 to a portal session outside its pages), then the router's 405.
    not_allowed = isinstance(request.match_info.http_exception, web.HTTPMethodNotAllowed)
    if request.method not in ("GET", "HEAD") and not not_allowed:
        form = await request.post()
        given = form.get(FIELD)
        if session is None or not csrf_valid(session, admin_key, given if isinstance(given, str) else None):
            raise ScimError(403, FORM_EXPIRED)
    if request.path in (LOGIN_PATH, LANGUAGE_PATH) or request.path.startswith(PORTAL_PREFIX):
        return await handler(request)
    if session is not None and session.tenant_id is not None:
        if request.path in (CONSOLE_PREFIX, CONSOLE_PREFIX + "/"):
            raise web.HTTPSeeOther(f"/console/tenants/{session.tenant_id}/scim")
        if not _portal_may_open(request, session):
            raise web.HTTPNotFound()  # the same page as a missing one: nothing revealed
        return await handler(request)
    if session is None or not session.operator:
        # A portal session that ended (or expired) goes back to asking for a link, not to the operator key.
        ended_portal = cookie is not None and cookie.tenant_id is not None
        raise web.HTTPSeeOther(PORTAL_SIGN_IN_PATH if ended_portal else LOGIN_PATH)
    return await handler(request)


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /console/: redirect to sign-in without an operator session, refuse a POST without the
    session's CSRF token, and render errors as pages. Other paths pass straight through."""
    if not is_console(request.path):
        return await handler(request)
    try:
        return await _guard(request, handler)
    except ScimError as exc:
        response = render_error(request, exc.status, exc.detail)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects
        if isinstance(exc, web.HTTPNotFound):
            return render_error(request, 404, "there is no console page at {path}", path=request.path)
        response = render_error(request, exc.status, exc.reason or "request failed")
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:
        if unavailable(exc):  # PostgreSQL is down: a page saying so, and one warning per interval
            log_database_unavailable(request, exc)
            error = database_unavailable()
            response = render_error(request, error.status, error.detail)
            response.headers.update(error.headers)
            return response
        log.exception("unhandled error on %s %s", request.method, log_path(request))
        detail = "internal error; quote request id {id} to the operator"
        return render_error(request, 500, detail, id=str(request.get(REQUEST_ID)))


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the console's strict headers on every console response, files included."""
    if is_console(request.path):
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith(PORTAL_PREFIX):
            response.headers.update(PORTAL_LINK_HEADERS)
