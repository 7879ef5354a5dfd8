"""How the product reads a SCIM user: full name, photo, role (ARCHITECTURE.md, Where each rule lives)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.user import ENTERPRISE_SCHEMA

ENTERPRISE_FIELDS = ("employeeNumber", "costCenter", "organization", "division", "department")


def full_name(resource: Mapping[str, Any]) -> str:
    """First present of displayName; name.formatted; givenName + familyName; userName."""
    name = resource.get("name") or {}
    given_family = " ".join(p for p in (name.get("givenName"), name.get("familyName")) if p)
    return resource.get("displayName") or name.get("formatted") or given_family or resource["userName"]


def _pick(items: Any, key: str, wanted: Any) -> str | None:
    for item in items or []:
        if item.get(key) == wanted and item.get("value"):
            return str(item["value"])
    return None


def photo(resource: Mapping[str, Any]) -> str | None:
    """photos[type eq "photo"].value."""
    return _pick(resource.get("photos"), "type", "photo")


def role(resource: Mapping[str, Any]) -> str | None:
    """roles[primary eq true].value (Entra's "True" is already a boolean once validated)."""
    return _pick(resource.get("roles"), "primary", True)


def user_state(user: Mapping[str, Any]) -> str:
    """active, inactive (deactivated) or unlinked (SCIM-DELETEd: deactivated and hidden from SCIM)."""
    if not user["scim_linked"]:
        return "unlinked"
    return "active" if user["active"] else "inactive"


def export_row(user: Mapping[str, Any]) -> list[Any]:
    """One CSV row: every attribute the product uses, plus license and state (see EXPORT_HEADER)."""
    resource = user["resource"]
    ext = resource.get(ENTERPRISE_SCHEMA) or {}
    manager = ext.get("manager") or {}
    name = resource.get("name") or {}
    state = user_state(user)
    return [
        str(user["id"]),
        resource["userName"],
        full_name(resource),
        resource.get("displayName"),
        name.get("givenName"),
        name.get("familyName"),
        resource.get("userType"),
        user["active"],
        state,
        user["license"] or "none",
        user["waiting_since"] is not None,
        photo(resource),
        role(resource),
        *(ext.get(f) for f in ENTERPRISE_FIELDS),
        manager.get("value"),
        manager.get("displayName"),
        resource.get("externalId"),
        ";".join(e.get("value", "") for e in resource.get("emails") or []),
        user["created_at"].isoformat(),
        user["updated_at"].isoformat(),
    ]


EXPORT_HEADER = [
    "id",
    "userName",
    "fullName",
    "displayName",
    "givenName",
    "familyName",
    "userType",
    "active",
    "state",
    "license",
    "waiting",
    "photo",
    "role",
    *ENTERPRISE_FIELDS,
    "managerId",
    "managerDisplayName",
    "externalId",
    "emails",
    "created",
    "lastModified",
]
