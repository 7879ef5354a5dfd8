"""Events: what the rest of the product hears about applied changes (README.md, What happened).

The event types and the JSON shape every event has, in the events API and in webhook bodies alike. An
event is created in the transaction that applies its change (store/events.py:record_events), so it exists
exactly once and only if the change happened.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple
from uuid import UUID


class EventType(StrEnum):
    """The `type` of an event; `data` holds the resource as it now is, plus what the type adds."""

    USER_CREATED = "user.created"  # {"user"}
    USER_UPDATED = "user.updated"  # {"user"}
    USER_DEACTIVATED = "user.deactivated"  # {"user"}
    USER_REACTIVATED = "user.reactivated"  # {"user"}
    USER_DELETED = "user.deleted"  # {"user"}: a SCIM DELETE (unlinked) or a hard delete ({"user": {"id"}})
    USER_EMAIL_CHANGED = "user.email_changed"  # {"user", "previous_user_name"}
    LICENSE_CHANGED = "license.changed"  # {"user", "from", "to", "seat", "waiting"}
    TEAM_MEMBER_ADDED = "team.member_added"  # {"team": {"id", "name"}, "user"}
    TEAM_MEMBER_REMOVED = "team.member_removed"  # {"team": {"id", "name"}, "user"}
    GROUP_LINKED = "group.linked"  # {"group": {"id", "displayName"}, "team": {"id", "name"}}
    GROUP_UNLINKED = "group.unlinked"  # {"group": {"id", "displayName"}, "team": {"id", "name"}}
    SCIM_ENABLED = "scim.enabled"  # {"tenant": {"id", "name", "scim_enabled"}}
    SCIM_DISABLED = "scim.disabled"  # {"tenant": {"id", "name", "scim_enabled"}}
    TOKEN_CREATED = "token.created"  # {"token": {"id", "label", "created_at"}}: never the token itself
    TOKEN_REVOKED = "token.revoked"  # {"token": {"id", "label", "created_at", "revoked_at"}}


EVENT_TYPES = tuple(t.value for t in EventType)


class NewEvent(NamedTuple):
    """An event to record. With `user_id`, the event shows the user as it is when the event is written in
    `data["user"]` (stored beside `data`, store/events.py); a user already gone keeps what `data` says. A
    named tuple: a drain makes a thousand a batch, at half a frozen dataclass's cost."""

    type: EventType
    data: dict[str, Any]
    user_id: UUID | None = None
    request_id: str | None = None


def event_id(row_id: int) -> str:
    """The public id of an event (also the `webhook-id` of its deliveries)."""
    return f"evt_{row_id}"


def event_body(
    *,
    id: int,
    type: str,
    tenant_id: UUID,
    seq: int,
    occurred_at: datetime,
    request_id: str | None,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The JSON of one event, as the events API lists it and a webhook sends it."""
    return {
        "id": event_id(id),
        "type": type,
        "tenant_id": str(tenant_id),
        "sequence": seq,
        "occurred_at": occurred_at.isoformat(),
        "request_id": request_id,
        "data": data,
    }
