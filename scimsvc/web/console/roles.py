"""Who may open a console page: the operator opens every one; an organization admin's portal session
opens only the pages marked here, and only for its own organization (`access.py` enforces both)."""

from __future__ import annotations

from typing import TypeVar

from aiohttp.typedefs import Handler

H = TypeVar("H", bound=Handler)

ORG_ADMINS = "scimsvc_org_admins"


def for_org_admins(handler: H) -> H:
    """Mark a page or action under `/console/tenants/{tid}/` as open to that organization's portal
    sessions too. Unmarked pages are the operator's alone (a portal session gets 404 there)."""
    setattr(handler, ORG_ADMINS, True)
    return handler


def open_to_org_admins(handler: object) -> bool:
    """Whether `for_org_admins` marked this handler."""
    return getattr(handler, ORG_ADMINS, False) is True
