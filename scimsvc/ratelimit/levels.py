"""What each SCIM request costs and how many credits a tenant has per 30 s (README.md, Rate limits); pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from scimsvc.scim.bulk import BulkOperation

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
    ("POST", "/scim/v2/Bulk"): "L4",  # the level's label; the cost is `bulk_credits` of the body
}
GROUP_PATCH = ("PATCH", "/scim/v2/Groups/{id}")
DEFAULT_LEVEL = "L1"  # discovery documents, unknown SCIM paths


def request_level(method: str, route: str | None, body_bytes: int | None) -> str:
    """The level of a SCIM request, from its method, route template and (for group PATCH) body size."""
    if (method, route) == GROUP_PATCH:
        return "L4" if (body_bytes or 0) > SMALL_GROUP_PATCH_BYTES else "L2"
    return ROUTE_LEVELS.get((method, route or ""), DEFAULT_LEVEL)


# Requests whose handler prices them once it has read and checked them (`scimsvc.web.rate_limiting.charge`).
PRICED_BY_HANDLER = frozenset({("POST", "/scim/v2/Bulk")})


def _json_bytes(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: priced as a large body
        return SMALL_GROUP_PATCH_BYTES + 1


def bulk_credits(operations: Iterable[BulkOperation]) -> int:
    """Credits of a parsed /Bulk: the sum of what its operations would cost as single requests (a group
    PATCH sized by its `data`), an operation that is not one (malformed) L1, and never less than L1."""
    total = 0
    for op in operations:
        level = DEFAULT_LEVEL
        if op.error is None:
            route = f"/scim/v2/{op.endpoint}" + ("/{id}" if op.target is not None else "")
            size = _json_bytes(op.data) if op.method == "PATCH" else None
            level = request_level(op.method, route, size)
        total += LEVELS[level]
    return max(total, LEVELS[DEFAULT_LEVEL])


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
