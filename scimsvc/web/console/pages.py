"""Rendering a console page with what every page needs: the CSRF token, the notice, the sign-out form."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from scimsvc.web.console.csrf import csrf_token
from scimsvc.web.console.i18n import request_language, translator
from scimsvc.web.console.session import SESSION
from scimsvc.web.keys import SETTINGS

# Notices after a change (Post/Redirect/Get): only these fixed texts are ever shown.
NOTICES = {
    "tenant-created": "Tenant created. Generate a SCIM token on this page to connect an identity provider.",
    "scim-on": "SCIM provisioning is on: this organization's tokens work, and licenses follow the IdP.",
    "scim-off": "SCIM provisioning is off: this organization's tokens are refused; assign licenses here.",
    "token-revoked": "Token revoked: the identity provider using it gets 401 from now on.",
    "seats-saved": "Saved. The worker re-applies licenses (a raised seat count promotes waiting users).",
    "license-assigned": "License assignment accepted: it shows here once the worker has applied it.",
    "license-rules-saved": "License rules saved. Licenses are re-applied to the organization's users.",
    "domains-saved": "Allowed domains and domain teams saved.",
    "organization-saved": "Organization name and rate limit saved.",
    "team-created": "Team created.",
    "team-renamed": "Team renamed. Its linked SCIM group keeps its own name.",
    "team-deleted": "Team deleted. A linked SCIM group stays, no longer linked.",
    "team-linked": "SCIM group linked: its members join the team once the worker has applied the link.",
    "member-added": "Member added.",
    "member-removed": "Member removed.",
}


def page(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """Render `template` with `context` over the defaults every page uses."""
    session = request.get(SESSION)
    admin_key = request.app[SETTINGS].admin_key
    lang = request_language(request)
    base = {
        "lang": lang,
        "_": translator(lang),
        "portal": session is not None and session.tenant_id is not None,
        "csrf": csrf_token(session, admin_key) if session is not None else "",
        "signed_in": session is not None and (session.operator or session.tenant_id is not None),
        "notice": NOTICES.get(request.query.get("done", "")),
        "error": None,
        "section": None,
        "tenant": None,
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
