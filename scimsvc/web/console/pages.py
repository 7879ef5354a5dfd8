"""Rendering a console page with what every page needs: the language, the CSRF token, the notice, the
sign-out form; and the confirmation page of a destructive action."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from scimsvc.scim.errors import ScimError, not_found
from scimsvc.services.tenants import tenant_or_404
from scimsvc.web.admin_requests import tenant_id_of
from scimsvc.web.admin_views import render_tenant
from scimsvc.web.console.csrf import csrf_token
from scimsvc.web.console.i18n import Translate, back_to, request_language, translator
from scimsvc.web.console.session import SESSION, is_portal, signed_in
from scimsvc.web.keys import POOL, SETTINGS

# Notices after a change (Post/Redirect/Get): only these fixed texts are ever shown, in the page's language
# (their Japanese is in locales/ja/common.json).
NOTICES = {
    "tenant-created": (
        "Organization created. Generate a SCIM token on this page to connect an identity provider."
    ),
    "scim-on": "SCIM provisioning is on: this organization's tokens work, and licenses follow the IdP.",
    "scim-off": "SCIM provisioning is off: this organization's tokens are refused; assign licenses here.",
    "token-revoked": "Token revoked: the identity provider using it gets 401 from now on.",
    "seats-saved": "Saved. The worker re-applies licenses (a raised seat count promotes waiting users).",
    "license-assigned": "License assignment accepted: it shows here once the worker has applied it.",
    "license-rules-saved": (
        "License rules saved. When flexible licenses changed, every user's license follows the new rules "
        "once applied."
    ),
    "domains-saved": "Allowed domains and domain teams saved.",
    "organization-saved": "Organization name and rate limit saved.",
    "team-created": "Team created.",
    "team-renamed": "Team renamed. Its linked SCIM group keeps its own name.",
    "team-deleted": "Team deleted. A linked SCIM group stays, no longer linked.",
    "team-linked": "SCIM group linked: its members join the team once the worker has applied the link.",
    "member-added": "Member added.",
    "member-removed": "Member removed.",
}


def texts(request: web.Request) -> Translate:
    """`_` of the request's language, for texts a handler puts on a page (a confirmation's words)."""
    return translator(request_language(request))


async def organization(request: web.Request) -> dict[str, Any]:
    """The organization of the URL (`{tid}`) as its pages show it; no such organization is a 404 in the
    console's words (the admin API's says "tenant ... not found")."""
    try:
        row = await tenant_or_404(request.app[POOL], tenant_id_of(request))
    except ScimError as exc:
        if exc.status != 404:
            raise
        _ = texts(request)
        raise not_found(
            _("There is no such organization: it was deleted, or the address is wrong.")
        ) from None
    return render_tenant(row, public_url=request.app[SETTINGS].public_url)


def _here(request: web.Request) -> str:
    """Where the language switch brings the browser back: this page, or for the answer to a form (a POST
    has no page to GET again) the page the form was on."""
    if request.method in ("GET", "HEAD"):
        return back_to(request.path_qs)
    came_from = urlsplit(request.headers.get("Referer", ""))
    if came_from.netloc != request.host:
        return back_to("")
    return back_to(came_from.path + (f"?{came_from.query}" if came_from.query else ""))


def page(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    notices: Mapping[str, str] = NOTICES,
) -> web.Response:
    """Render `template` with `context` over the defaults every page uses. `notices`: the fixed texts a
    `?done=` key may show (NOTICES, or a page family's own)."""
    session = request.get(SESSION)
    admin_key = request.app[SETTINGS].admin_key
    lang = request_language(request)
    _ = translator(lang)
    notice = notices.get(request.query.get("done", ""))
    base = {
        "lang": lang,
        "_": _,
        "portal": is_portal(session),
        "csrf": csrf_token(session, admin_key) if session is not None else "",
        "signed_in": signed_in(session),
        "notice": _(notice) if notice else None,
        "error": None,
        "section": None,
        "tenant": None,
        "here": _here(request),
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def confirmation(
    request: web.Request,
    *,
    title: str,
    message: str,
    action: str,
    button: str,
    cancel: str,
    fields: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
) -> web.Response:
    """The confirmation step of a destructive action (`confirm.html`): a GET page whose form POSTs to
    `action` with `fields` (and the CSRF token); it works without script. Texts come translated
    (`texts(request)`); `context` adds the page's tenant and section for its tabs."""
    shown = {
        "title": title,
        "message": message,
        "action": action,
        "button": button,
        "cancel": cancel,
        "fields": dict(fields or {}),
    }
    return page(request, "confirm.html", {**dict(context or {}), **shown})
