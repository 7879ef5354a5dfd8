"""A new secret shown once across a redirect (Post/Redirect/Get): a new SCIM token (`scim_pages.py`), a new or
rotated webhook signing secret (`webhook_pages.py`).

The POST that makes the secret answers 303 to a reveal page and hands the secret over in a cookie scoped to
that exact path, living `REVEAL_SECONDS`, HttpOnly and SameSite=Strict, bound by an HMAC to this session,
the owner (an organization, or the operator) and the item (token or endpoint id). The GET that shows it
clears the cookie, so a reload shows "shown once" and never repeats the action (a second token, endpoint
or rotation). The secret never goes into a URL; a cookie set any other way (another session, another
owner, a changed byte) shows nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from aiohttp import web

from scimsvc.web.console.session import SESSION, b64, derived_key
from scimsvc.web.keys import SETTINGS

REVEAL_SECONDS = 60  # the secret waits this long in its cookie for the page that shows it


def _mac(request: web.Request, purpose: str, owner: str, item_id: str, secret: str) -> str:
    session = request.get(SESSION)
    sid = session.sid if session is not None else ""
    key = derived_key(request.app[SETTINGS].admin_key, purpose)
    message = f"{sid}|{owner}|{item_id}|{secret}".encode()
    return b64(hmac.new(key, message, hashlib.sha256).digest())


def reveal_next(
    request: web.Request,
    response: web.StreamResponse,
    *,
    cookie: str,
    path: str,
    purpose: str,
    owner: str,
    item_id: str,
    secret: str,
) -> None:
    """Hand `secret` (of `item_id`, owned by `owner`) to the GET of `path`, the redirect's target."""
    value = f"{item_id}.{b64(secret.encode())}.{_mac(request, purpose, owner, item_id, secret)}"
    response.set_cookie(
        cookie,
        value,
        max_age=REVEAL_SECONDS,
        path=path,
        httponly=True,
        samesite="Strict",
        secure=request.app[SETTINGS].public_url.startswith("https://"),
    )


def revealed(request: web.Request, *, cookie: str, purpose: str, owner: str) -> tuple[str, str] | None:
    """(item id, secret) that this session's POST handed over for `owner`, or None (none, or not valid)."""
    item_id, _, rest = request.cookies.get(cookie, "").partition(".")
    encoded, _, mac = rest.partition(".")
    try:
        secret = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not secret or not mac.isascii():
        return None
    if not hmac.compare_digest(mac, _mac(request, purpose, owner, item_id, secret)):
        return None
    return item_id, secret


def forget(response: web.StreamResponse, *, cookie: str, path: str) -> None:
    """Clear the cookie (the answer that showed the secret, or found none)."""
    response.del_cookie(cookie, path=path)
