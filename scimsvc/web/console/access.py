"""The console's gate: sign-in required, a CSRF token checked on every POST, errors shown as pages."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from scimsvc.scim.errors import ScimError
from scimsvc.web.console.csrf import FIELD, csrf_valid
from scimsvc.web.console.i18n import LANGUAGE_PATH
from scimsvc.web.console.pages import page
from scimsvc.web.console.session import COOKIE, SESSION, decode_session
from scimsvc.web.keys import REQUEST_ID, SETTINGS

log = logging.getLogger(__name__)

CONSOLE_PREFIX = "/console"
LOGIN_PATH = "/console/login"
STATIC_PREFIX = "/console/static/"

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
FORM_EXPIRED = (
    "this form has expired or did not come from this console (its security token does not match): "
    "reload the page and try again"
)


def is_console(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def render_error(request: web.Request, status: int, detail: str) -> web.Response:
    """An error as a console page (never JSON, never a traceback)."""
    return page(request, "error.html", {"status": status, "detail": detail}, status=status)


async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(STATIC_PREFIX):
        return await handler(request)
    admin_key = request.app[SETTINGS].admin_key
    if not admin_key:
        raise ScimError(403, "the console is off: set SCIMSVC_ADMIN_KEY on the server, then sign in with it")
    session = decode_session(request.cookies.get(COOKIE), admin_key)
    if session is not None:
        request[SESSION] = session
    if request.method not in ("GET", "HEAD"):
        form = await request.post()
        given = form.get(FIELD)
        if session is None or not csrf_valid(session, admin_key, given if isinstance(given, str) else None):
            raise ScimError(403, FORM_EXPIRED)
    if request.path not in (LOGIN_PATH, LANGUAGE_PATH) and (session is None or not session.operator):
        raise web.HTTPSeeOther(LOGIN_PATH)
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
            return render_error(request, 404, f"there is no console page at {request.path}")
        return render_error(request, exc.status, exc.reason or "request failed")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        detail = f"internal error; quote request id {request.get(REQUEST_ID)} to the operator"
        return render_error(request, 500, detail)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the console's strict headers on every console response, files included."""
    if is_console(request.path):
        response.headers.update(SECURITY_HEADERS)
