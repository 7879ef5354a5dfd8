"""Rendering stored users as SCIM resources, list responses and ETags (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from schemas.user import ENTERPRISE_SCHEMA, PRODUCT_SCHEMA, USER_SCHEMA
from scimsvc.scim.errors import ScimError, invalid_value

LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MAX_START_INDEX = 2**62


def scim_datetime(value: datetime | None) -> str | None:
    """RFC 3339 with a `Z` for UTC, as IdPs expect."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def weak_etag(version: int) -> str:
    """The resource's `meta.version` and ETag header value."""
    return f'W/"{version}"'


def _etag_versions(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")]


def check_if_match(if_match: str | None, version: int) -> None:
    """RFC 7644 §3.14: a stale `If-Match` gets 412 and changes nothing (compared weakly)."""
    if if_match is None or if_match.strip() == "*":
        return
    if str(version) not in _etag_versions(if_match):
        raise ScimError(
            412,
            f'the resource has changed since you read it (now W/"{version}"): read it again and retry',
            "preconditionFailed",
        )


def not_modified(if_none_match: str | None, version: int) -> bool:
    """Whether a GET with this `If-None-Match` should get 304 (compared weakly)."""
    if not if_none_match:
        return False
    return if_none_match.strip() == "*" or str(version) in _etag_versions(if_none_match)


def render_user(row: Mapping[str, Any], *, base_url: str) -> dict[str, Any]:
    """A stored user row as the SCIM User the IdP reads back."""
    resource: dict[str, Any] = dict(row["resource"])
    user_id = str(row["id"])
    schemas = [USER_SCHEMA]
    if ENTERPRISE_SCHEMA in resource:
        schemas.append(ENTERPRISE_SCHEMA)
    schemas.append(PRODUCT_SCHEMA)
    body: dict[str, Any] = {"schemas": schemas, "id": user_id}
    body.update(resource)
    body["active"] = row["active"]
    body[PRODUCT_SCHEMA] = {
        "provisioningState": row["provisioning_state"],
        **({"license": row["license"]} if row["license"] else {}),
        "seat": row["license"] == "full",
        "waiting": row["waiting_since"] is not None,
        **({"provisionedAt": scim_datetime(row["provisioned_at"])} if row["provisioned_at"] else {}),
    }
    body["meta"] = {
        "resourceType": "User",
        "created": scim_datetime(row["created_at"]),
        "lastModified": scim_datetime(row["updated_at"]),
        "location": f"{base_url}/Users/{user_id}",
        "version": weak_etag(row["version"]),
    }
    return body


def list_response(resources: Sequence[dict[str, Any]], *, total: int, start_index: int) -> dict[str, Any]:
    """An RFC 7644 §3.4.2 ListResponse."""
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": list(resources),
    }


def parse_paging(query: Mapping[str, str], *, default_count: int, max_count: int) -> tuple[int, int]:
    """(startIndex, count) from the query: RFC 7644 §3.4.2.4 (below 1 means 1; negative count means 0)."""

    def integer(name: str, default: int) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise invalid_value(f"{name} must be an integer, got {raw!r}") from None

    # Past any real table, but inside PostgreSQL's bigint OFFSET: such a page is simply empty.
    start_index = min(max(1, integer("startIndex", 1)), MAX_START_INDEX)
    count = min(max(0, integer("count", default_count)), max_count)
    return start_index, count
