"""CSRF tokens of the console's forms: an HMAC of the session id, checked on every POST."""

from __future__ import annotations

import hashlib
import hmac

from scimsvc.web.console.session import Session, b64, derived_key

FIELD = "csrf_token"


def csrf_token(session: Session, admin_key: str) -> str:
    """The CSRF token of every form of this session: an HMAC of its id, never stored."""
    return b64(hmac.new(derived_key(admin_key, "csrf"), session.sid.encode(), hashlib.sha256).digest())


def csrf_valid(session: Session, admin_key: str, given: str | None) -> bool:
    """Constant-time check of a form's CSRF token against the session's."""
    return bool(given) and hmac.compare_digest(csrf_token(session, admin_key).encode(), str(given).encode())
