"""What each SCIM request costs and how many credits a tenant has per 30 s (DESIGN.md §6); pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WINDOW_SECONDS = 30
LEVELS = {"L1": 50, "L2": 100, "L3": 500, "L4": 2000}
# A group PATCH above this many bytes is a bulk membership change (L4), at or below it an edit (L2).
SMALL_GROUP_PATCH_BYTES = 500

STRICT_CREDITS = (
    10_000  # reproduces the published table: 200 user GETs, 100 PUT/PATCH, 20 DELETEs, 5 group lists
)
# The published levels, plus our choices for what the table leaves open (documented in the README).
ROUTE_LEVELS: dict[tuple[str, str], str] = {
    ("GET", "/scim/v2/Users"): "L1",
    ("POST", "/scim/v2/Users"): "L1",
    ("GET", "/scim/v2/Users/{id}"): "L1",
    ("PUT", "/scim/v2/Users/{id}"): "L2",
    ("PATCH", "/scim/v2/Users/{id}"): "L2",
    ("DELETE", "/scim/v2/Users/{id}"): "L3",
    ("POST", "/scim/v2/Users/.search"): "L1",
    ("GET", "/scim/v2/Groups"): "L4",
    ("GET", "/scim/v2/Groups/{id}"): "L3",
    ("POST", "/scim/v2/Groups"): "L3",
    ("PUT", "/scim/v2/Groups/{id}"): "L4",
    ("DELETE", "/scim/v2/Groups/{id}"): "L3",
    ("POST", "/scim/v2/Groups/.search"): "L4",
    ("POST", "/scim/v2/.search"): "L4",
    ("POST", "/scim/v2/Bulk"): "L4",
}
GROUP_PATCH = ("PATCH", "/scim/v2/Groups/{id}")
DEFAULT_LEVEL = "L1"  # discovery documents, unknown SCIM paths


def request_level(method: str, route: str | None, body_bytes: int | None) -> str:
    """The level of a SCIM request, from its method, route template and (for group PATCH) body size."""
    if (method, route) == GROUP_PATCH:
        return "L4" if (body_bytes or 0) > SMALL_GROUP_PATCH_BYTES else "L2"
    return ROUTE_LEVELS.get((method, route or ""), DEFAULT_LEVEL)


def tenant_credits(rate_limit: Mapping[str, Any] | None, *, default_credits: int) -> int | None:
    """Credits per 30 s for a tenant's `rate_limit` setting; None means not limited.

    `credits_per_30s` wins over `preset`; presets: `default` (the deployment's default), `strict`
    (the published table) and `off`.
    """
    rate_limit = rate_limit or {}
    if rate_limit.get("credits_per_30s") is not None:
        return int(rate_limit["credits_per_30s"])
    preset = rate_limit.get("preset", "default")
    if preset == "off":
        return None
    if preset == "strict":
        return STRICT_CREDITS
    return default_credits
