"""How large a body each SCIM endpoint reads; past it, its handler answers 413.

The handlers read with these limits, and the rate limiter does not price a request whose body is
larger (it can never pass, so it must not spend the tenant's budget or earn a 429 to retry).
"""

from __future__ import annotations

from scimsvc.settings import Settings

GROUP_WRITES = frozenset({("POST", "/scim/v2/Groups"), ("PUT", "/scim/v2/Groups/{id}")})
GROUP_PATCH = ("PATCH", "/scim/v2/Groups/{id}")
BULK = ("POST", "/scim/v2/Bulk")


def body_limit(settings: Settings, method: str, route: str | None) -> int:
    """The largest body, in bytes, the endpoint `method route` (a route template) accepts."""
    key = (method, route or "")
    if key in GROUP_WRITES:
        return settings.group_max_body_bytes  # a 50,000-member push is about 3 MB
    if key == GROUP_PATCH:
        return settings.group_patch_max_bytes
    if key == BULK:
        return settings.bulk_payload_limit
    return settings.max_body_bytes
