"""Portal access for an organization's admins (README.md, For organization admins): the rules of portal
links and sign-in emails, as values and text (no I/O)."""

from __future__ import annotations

import hashlib
import secrets

# An emailed link's token is made by the worker when it sends the email; the notice's body holds this
# marker where the token goes, so the token is never stored anywhere but as its hash.
LINK_TOKEN_PLACEHOLDER = "{portal-link-token}"
LINK_PATH = "/console/portal/"
MAX_LINK_MINUTES = 7 * 24 * 60  # a link the operator makes lives a week at most
# Sign-in links asked for by email: at most this many per address per hour, whatever the organization,
# so the form cannot be used to flood someone's inbox.
SIGN_IN_EMAILS_PER_HOUR = 5
# Console sessions and portal links are deleted this many days after they expired (worker/retention.py),
# not with SCIMSVC_RETENTION_NOTICES_DAYS (which may keep notices forever).
FINISHED_ACCESS_DAYS = 1


def new_link_token() -> str:
    """A portal link's secret part: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def link_token_hash(token: str) -> bytes:
    """The only form in which a link's token is stored."""
    return hashlib.sha256(token.encode()).digest()


def session_id_hash(sid: str) -> bytes:
    """The only form in which a console session's id is stored."""
    return hashlib.sha256(sid.encode()).digest()


def normal_email(raw: str) -> str:
    """An admin's address as it is kept and compared: trimmed, lower-cased."""
    return raw.strip().lower()


MAX_ADDRESS_LENGTH = 320  # org_admins.email's CHECK


def storable_address(address: str) -> bool:
    """Whether `address` (normalised) could be a registered admin address at all: within the column's
    length, with no NUL (PostgreSQL text cannot hold one) and no other control character."""
    return 0 < len(address) <= MAX_ADDRESS_LENGTH and address.isprintable()


def link_url(public_url: str, token: str) -> str:
    """The address an admin opens (public_url is SCIMSVC_PUBLIC_URL, without a trailing slash)."""
    return f"{public_url}{LINK_PATH}{token}"


def sign_in_email(*, organization: str, url: str, minutes: int) -> tuple[str, str]:
    """Subject and body of an emailed sign-in link (`url` holds LINK_TOKEN_PLACEHOLDER)."""
    subject = f"Your sign-in link for {organization}"
    body = (
        "Hello,\n\n"
        f"Someone asked for a link to sign in to the SCIM settings of {organization}. "
        "If it was you, open this link and choose Continue:\n\n"
        f"{url}\n\n"
        f"It works once, within {minutes} minutes. If you did not ask for it, ignore this email: "
        "nothing changes.\n"
    )
    return subject, body
