"""The console's session: an HMAC-signed cookie with an expiry, keyed from the operator key.

Stateless on purpose: any web replica can check it, and it keeps working while Redis is down (which is
when an operator most needs the queue page). The signing key is derived from `SCIMSVC_ADMIN_KEY` with
PBKDF2, so changing the admin key signs every console session out, and a stolen cookie does not make
guessing the admin key offline cheap. The cookie holds no secret: a random session id, the expiry and
whether the operator signed in. Signing out removes it from the browser; a copy taken before then stays
valid until it expires (at most `SIGNED_IN_SECONDS`), or until the admin key changes.
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


def new_session(*, operator: bool, now: float | None = None) -> Session:
    """A fresh session id (a new one at sign-in, so an id seen before sign-in is worth nothing after)."""
    lifetime = SIGNED_IN_SECONDS if operator else SIGN_IN_FORM_SECONDS
    started = int(now if now is not None else time.time())
    return Session(secrets.token_urlsafe(18), started + lifetime, operator)


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
    payload = b64(orjson.dumps({"sid": session.sid, "exp": session.expires, "op": session.operator}))
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
        session = Session(str(data["sid"]), int(data["exp"]), data["op"] is True)
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    if session.expires <= (now if now is not None else time.time()):
        return None
    return session
