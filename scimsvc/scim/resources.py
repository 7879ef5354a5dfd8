"""Rendering stored users and groups as SCIM resources, list responses, projections and ETags (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any

from schemas.catalog import AttrPath, ResourceTypeDef
from schemas.group import GROUP_SCHEMA
from schemas.user import ENTERPRISE_SCHEMA, PRODUCT_SCHEMA, USER_SCHEMA
from scimsvc.scim.errors import ScimError, invalid_value, shown

LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MAX_START_INDEX = 2**62


def scim_datetime(value: datetime | None) -> str | None:
    """RFC 3339 with a `Z` for UTC, as IdPs expect."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # as PostgreSQL's timestamps arrive: many share one (a batch's meta.created)
        return _utc_text(value)
    return value.isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=4096)
def _utc_text(value: datetime) -> str:
    # Keyed by the instant: only UTC datetimes come here, so equal keys have equal texts.
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
    if "active" in resource or not row["active"]:  # unassigned (removed by a PATCH) means active, not shown
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


def render_group(
    row: Mapping[str, Any],
    members: Iterable[tuple[Any, str]] | None,
    *,
    base_url: str,
    member_display: bool = False,
) -> dict[str, Any]:
    """A stored group row as the SCIM Group; `members` ((user id, display) pairs) None leaves them out.

    A member's `display` is `returned: request`: rendered only when `member_display` says it was asked for.
    """
    group_id = str(row["id"])
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": group_id}
    body.update(row["resource"])
    if members is not None:
        if member_display:
            rendered = [
                {"value": str(uid), "display": display, "$ref": f"{base_url}/Users/{uid}", "type": "User"}
                for uid, display in members
            ]
        else:
            rendered = [
                {"value": str(uid), "$ref": f"{base_url}/Users/{uid}", "type": "User"} for uid, _ in members
            ]
        if rendered:
            body["members"] = rendered
    body["meta"] = {
        "resourceType": "Group",
        "created": scim_datetime(row["created_at"]),
        "lastModified": scim_datetime(row["updated_at"]),
        "location": f"{base_url}/Groups/{group_id}",
        "version": weak_etag(row["version"]),
    }
    return body


@dataclass(frozen=True)
class Projection:
    """RFC 7644 §3.4.2.5 `attributes` / `excludedAttributes`, resolved against a resource type.

    Names the resource type does not know are ignored (an IdP may ask for attributes we do not keep).
    """

    attributes: tuple[AttrPath, ...] = ()
    excluded: tuple[AttrPath, ...] = field(default=())

    @cached_property
    def named(self) -> frozenset[tuple[str, str, str | None]]:
        """(schema id, attribute, sub-attribute or None) of every path `attributes` names."""
        return frozenset((p.schema.id, p.attr.name, p.sub.name if p.sub else None) for p in self.attributes)

    def names(self, attr_name: str, sub_name: str) -> bool:
        """Whether `attributes` names the core attribute `attr_name` or its sub-attribute `sub_name`."""
        lowered = attr_name.lower()
        return any(
            p.attr.name.lower() == lowered and (p.sub is None or p.sub.name.lower() == sub_name.lower())
            for p in self.attributes
        )

    def wants(self, attr_name: str) -> bool:
        """Whether any part of the top-level core attribute `attr_name` is returned (members: whether
        to read them at all)."""
        lowered = attr_name.lower()
        if self.attributes:
            return any(p.attr.name.lower() == lowered for p in self.attributes)
        return not any(p.attr.name.lower() == lowered and p.sub is None for p in self.excluded)


def parse_projection(query: Mapping[str, str], rtype: ResourceTypeDef) -> Projection:
    """The projection a request's query asks for (comma-separated attribute paths). Names the resource type
    does not have select nothing: `attributes` naming none of its attributes returns what is always
    returned (`id`, `schemas`), not the default set (RFC 7644 §3.9: `attributes` replaces it)."""

    def paths(name: str) -> tuple[AttrPath, ...]:
        resolved = (rtype.resolve(part.strip()) for part in query.get(name, "").split(",") if part.strip())
        return tuple(p for p in resolved if p is not None)

    attributes = paths("attributes")
    if not attributes and query.get("attributes", "").replace(",", "").strip():
        attributes = tuple(p for p in [rtype.resolve("id")] if p is not None)  # every type has an id
    return Projection(attributes=attributes, excluded=paths("excludedAttributes"))


def _holder(body: Mapping[str, Any], path: AttrPath, rtype: ResourceTypeDef) -> Any:
    return body if path.schema is rtype.core else body.get(path.schema.id)


def _only_subs(value: Any, subs: set[str]) -> Any:
    if isinstance(value, list):
        kept = [_only_subs(v, subs) for v in value]
        return [v for v in kept if v]
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k in subs}
    return value


def project(body: dict[str, Any], projection: Projection, rtype: ResourceTypeDef) -> dict[str, Any]:
    """`body` with only the requested attributes (plus those always returned), minus the excluded ones.

    Attributes (and sub-attributes) marked `returned: request` appear only when `attributes` names them
    (or their parent); `returned: never` ones never do (RFC 7643 §7).
    """
    return _drop_unrequested(_select(body, projection, rtype), projection, rtype)


def _drop_unrequested(body: dict[str, Any], projection: Projection, rtype: ResourceTypeDef) -> dict[str, Any]:
    hidden = rtype.hidden_attributes
    if not hidden:
        return body
    named = projection.named
    result = body  # copied before the first change, so the caller's body is not changed
    for schema, attr in hidden:
        holder = result if schema is rtype.core else result.get(schema.id)
        if not isinstance(holder, Mapping) or attr.name not in holder:
            continue
        asked = (schema.id, attr.name, None) in named
        if attr.returned == "never" or (attr.returned == "request" and not asked):
            if result is body:
                result = dict(body)
            del _writable(result, schema, rtype)[attr.name]
            continue
        if asked:
            continue
        dropped = {
            sub.name
            for sub in attr.sub_attributes
            if sub.returned == "never"
            or (sub.returned == "request" and (schema.id, attr.name, sub.name) not in named)
        }
        if dropped:
            if result is body:
                result = dict(body)
            holder = _writable(result, schema, rtype)
            holder[attr.name] = _without_subs(holder[attr.name], dropped)
    return result


def _writable(result: dict[str, Any], schema: Any, rtype: ResourceTypeDef) -> dict[str, Any]:
    """The dict holding `schema`'s attributes in `result`, copied so the caller's body is not changed."""
    if schema is rtype.core:
        return result
    copied = result[schema.id] = dict(result[schema.id])
    return copied


def _without_subs(value: Any, names: set[str]) -> Any:
    if isinstance(value, list):
        if not any(isinstance(v, Mapping) and not names.isdisjoint(v) for v in value):
            return value  # e.g. members rendered without display: nothing to copy
        return [_without_subs(v, names) for v in value]
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k not in names}
    return value


def _select(body: dict[str, Any], projection: Projection, rtype: ResourceTypeDef) -> dict[str, Any]:
    if not projection.attributes and not projection.excluded:
        return body
    if projection.attributes:
        wanted: dict[tuple[str, str], set[str] | None] = {}
        for path in projection.attributes:
            key = (path.schema.id, path.attr.name)
            if path.sub is None or wanted.get(key, set()) is None:
                wanted[key] = None
            else:
                subs = wanted.setdefault(key, set())
                assert subs is not None
                subs.add(path.sub.name)
        result: dict[str, Any] = {"schemas": body.get("schemas", [])}
        for schema in rtype.schemas:
            for attr in schema.attributes:
                holder = body if schema is rtype.core else body.get(schema.id)
                if not isinstance(holder, Mapping) or attr.name not in holder:
                    continue
                key = (schema.id, attr.name)
                if attr.returned != "always" and key not in wanted:
                    continue
                subs = wanted.get(key)
                value = holder[attr.name] if subs is None else _only_subs(holder[attr.name], subs)
                if value in ({}, [], None):
                    continue
                target = result if schema is rtype.core else result.setdefault(schema.id, {})
                target[attr.name] = value
    else:
        result = dict(body)
    for path in projection.excluded:
        if path.target.returned == "always" or path.attr.returned == "always":
            continue
        holder = _holder(result, path, rtype)
        if not isinstance(holder, dict) or path.attr.name not in holder:
            continue
        if path.schema is not rtype.core:
            holder = result[path.schema.id] = dict(holder)
        if path.sub is None:
            del holder[path.attr.name]
            continue
        value = holder[path.attr.name]
        name = path.sub.name
        if isinstance(value, list):
            holder[path.attr.name] = [
                {k: v for k, v in e.items() if k != name} if isinstance(e, Mapping) else e for e in value
            ]
        elif isinstance(value, Mapping):
            holder[path.attr.name] = {k: v for k, v in value.items() if k != name}
    return result


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
            # also past the 4,300 digits int() converts; shown() keeps the echo short
            raise invalid_value(f"{name} must be an integer, got {shown(raw)}") from None

    # Past any real table, but inside PostgreSQL's bigint OFFSET: such a page is simply empty.
    start_index = min(max(1, integer("startIndex", 1)), MAX_START_INDEX)
    count = min(max(0, integer("count", default_count)), max_count)
    return start_index, count
