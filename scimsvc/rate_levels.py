"""What each SCIM request costs and how many credits a tenant has per 30 s (DESIGN.md §6); pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

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


BULK = ("POST", "/scim/v2/Bulk")
_BULK_PATH = re.compile(r"/?(Users|Groups)(/[^/]+)?/?", re.IGNORECASE)


def bulk_credits(body: Any) -> int:
    """Credits of a parsed POST /Bulk body: the sum of what its operations would cost as single requests
    (a group PATCH sized by its `data`); an operation that is not one costs L1, a body that is not a
    BulkRequest L4, and a bulk never less than L1."""
    operations = None
    if isinstance(body, Mapping):
        operations = next((v for k, v in body.items() if str(k).lower() == "operations"), None)
    if not isinstance(operations, list):
        return LEVELS["L4"]
    total = 0
    for op in operations:
        level = DEFAULT_LEVEL
        if isinstance(op, Mapping):
            fields = {str(k).lower(): v for k, v in op.items()}
            method, path = fields.get("method"), fields.get("path")
            match = _BULK_PATH.fullmatch(path) if isinstance(path, str) else None
            if isinstance(method, str) and match:
                route = f"/scim/v2/{match.group(1).capitalize()}" + ("/{id}" if match.group(2) else "")
                size = len(orjson.dumps(fields.get("data"))) if method.upper() == "PATCH" else None
                level = request_level(method.upper(), route, size)
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
