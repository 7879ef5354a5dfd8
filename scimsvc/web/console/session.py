"""The console's session: an HMAC-signed cookie with an expiry, keyed from the operator key.

Stateless on purpose: any web replica can check it, and it keeps working while Redis is down (which is
when an operator most needs the queue page). The signing key is derived from `SCIMSVC_ADMIN_KEY` with
PBKDF2, so changing the admin key signs every console session out, and a stolen cookie does not make
guessing the admin key offline cheap. The cookie holds no secret: a random session id, the expiry and
whether the operator signed in (or, for an organization admin's portal session, its organization). A
signed-in session must also be live on the server (`services/console_sessions.py`, checked by
`access.py`): signing out ends it there, so a copy of the cookie taken before then is refused.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

import orjson
from aiohttp import web

from scimsvc.web.keys import SETTINGS

COOKIE = "scimsvc_console"
COOKIE_PATH = "/console/"
SIGNED_IN_SECONDS = 8 * 3600  # a working day; then the operator signs in again
SIGN_IN_FORM_SECONDS = 3600  # the anonymous session that carries the sign-in form's CSRF token
_KDF_ITERATIONS = 200_000


@dataclass(frozen=True)
class Session:
    """A console session: `operator` once the operator key was given; `sid` keys its CSRF token."""

    sid: str
    expires: int
    operator: bool
    tenant_id: UUID | None = None  # an organization admin's portal session: bound to this organization


SESSION = web.RequestKey("console_session", Session)
# The organization admin's address of a live portal session, when its link named one (for the audit).
ADMIN_EMAIL = web.RequestKey("console_admin_email", str)


def new_session(
    *,
    operator: bool,
    now: float | None = None,
    tenant_id: UUID | None = None,
    lifetime: int | None = None,
) -> Session:
    """A fresh session id (a new one at sign-in, so an id seen before sign-in is worth nothing after);
    with `tenant_id`, an organization admin's portal session, which lasts `lifetime` seconds."""
    if lifetime is None:
        lifetime = SIGNED_IN_SECONDS if operator else SIGN_IN_FORM_SECONDS
    started = int(now if now is not None else time.time())
    return Session(secrets.token_urlsafe(18), started + lifetime, operator, tenant_id)


def signed_in(session: Session | None) -> bool:
    """Whether the session signed in (the operator's, or a portal session), not the anonymous one."""
    return session is not None and (session.operator or is_portal(session))


def is_portal(session: Session | None) -> bool:
    """Whether it is an organization admin's portal session (bound to one organization)."""
    return session is not None and session.tenant_id is not None


@functools.lru_cache(maxsize=4)
def _root_key(admin_key: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", admin_key.encode(), b"scimsvc console", _KDF_ITERATIONS)


def derived_key(admin_key: str, purpose: str) -> bytes:
    """A key for one purpose (`session`, `csrf`), derived from the operator key."""
    return hmac.new(_root_key(admin_key), purpose.encode(), hashlib.sha256).digest()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_session(session: Session, admin_key: str) -> str:
    """`<payload>.<HMAC-SHA256 of payload>`, both base64url."""
    data: dict[str, object] = {"sid": session.sid, "exp": session.expires, "op": session.operator}
    if session.tenant_id is not None:
        data["tid"] = str(session.tenant_id)
    payload = b64(orjson.dumps(data))
    mac = hmac.new(derived_key(admin_key, "session"), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{b64(mac)}"


def decode_session(value: str | None, admin_key: str, *, now: float | None = None) -> Session | None:
    """The session in a cookie value, or None if it is missing, forged, malformed or expired."""
    if not value or not admin_key or value.count(".") != 1:
        return None
    payload, mac = value.split(".")
    expected = hmac.new(derived_key(admin_key, "session"), payload.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        data = orjson.loads(_unb64(payload))
        tid = data.get("tid")
        tenant_id = UUID(tid) if isinstance(tid, str) else None
        session = Session(
            str(data["sid"]), int(data["exp"]), data["op"] is True and tenant_id is None, tenant_id
        )
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
        return None
    if session.expires <= (now if now is not None else time.time()):
        return None
    return session


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    """The session's cookie: HttpOnly, SameSite=Strict, path /console/, Secure when the public URL is
    https. Every sign-in sets it here, the operator's and a portal session's alike."""
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
