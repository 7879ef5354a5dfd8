"""The request bodies an IdP sends (Okta's and Entra's shapes), and the credits the server charges.

Costs are priced with `scimsvc.ratelimit.levels`, the same table the server charges from.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from scimsvc.ratelimit.levels import LEVELS, request_level

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCIM_PREFIX = "/scim/v2"  # the server's route templates, as `scimsvc.ratelimit.levels` prices them


def user_resource(user_name: str, *, style: str, serial: int = 0) -> dict[str, Any]:
    """A User as the IdP sends it in POST (and Okta in PUT)."""
    body: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Load", "familyName": f"Test{serial}"},
        "displayName": f"Load Test{serial}",
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }
    if style == "entra":
        body["schemas"].append(ENTERPRISE)
        body["externalId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, user_name))
        body[ENTERPRISE] = {"department": "Load"}
    else:
        body["title"] = f"Revision {serial}"
    return body


def patch_request(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def profile_patch(*, style: str, serial: int) -> dict[str, Any]:
    """A profile update PATCH: Entra's capitalised op names and dotted keys, or Okta's plain replace."""
    if style == "entra":
        return patch_request(
            {"op": "Replace", "path": "displayName", "value": f"Load Test {serial}"},
            {"op": "Replace", "path": "name.givenName", "value": f"Load{serial}"},
            {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": f"Dept {serial % 7}"},
        )
    return patch_request({"op": "replace", "value": {"displayName": f"Load Test {serial}"}})


def deactivate_patch(*, style: str) -> dict[str, Any]:
    """Deactivation: Entra sends the string "False" on path active, Okta a no-path replace of active."""
    if style == "entra":
        return patch_request({"op": "Replace", "path": "active", "value": "False"})
    return patch_request({"op": "replace", "value": {"active": False}})


def member_add_patch(members: Sequence[tuple[str, str]], *, style: str) -> dict[str, Any]:
    """Add (id, userName) members to a group, with display names as Okta sends them."""
    op = "Add" if style == "entra" else "add"
    value: list[dict[str, str]] = [
        {"value": uid} if style == "entra" else {"value": uid, "display": name} for uid, name in members
    ]
    return patch_request({"op": op, "path": "members", "value": value})


def member_remove_patch(user_id: str, *, style: str) -> dict[str, Any]:
    op = "Remove" if style == "entra" else "remove"
    return patch_request({"op": op, "path": f'members[value eq "{user_id}"]'})


def written(body: dict[str, Any]) -> dict[str, Any]:
    """The user attributes a write of ours sets, as they read back: `displayName` and `active` of a
    User body, or of the PATCH operations above (Entra's string "False" is the boolean false)."""
    if "userName" in body:
        return {"displayName": body["displayName"], "active": body["active"]}
    state: dict[str, Any] = {}
    for op in body.get("Operations", ()):
        path, value = op.get("path"), op.get("value")
        changes = value if path is None and isinstance(value, dict) else {path: value}
        for name in ("displayName", "active"):
            if name in changes:
                given = changes[name]
                state[name] = (
                    given.lower() == "true" if isinstance(given, str) and name == "active" else given
                )
    return state


def user_name_filter(user_name: str) -> str:
    return f'userName eq "{user_name}"'


def request_cost(method: str, template: str, body_bytes: int | None) -> int:
    """Credits the server charges for a request, from its route template relative to the SCIM base."""
    return LEVELS[request_level(method, SCIM_PREFIX + template, body_bytes)]
