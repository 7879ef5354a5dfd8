"""The contract between the front end and the worker: what an outbox row says and which jobs apply it.

Every write commits its outbox rows with it (`scimsvc.services.changes`); the worker applies them in id
order per resource (`worker.jobs`). Both sides name resource types, change kinds and jobs from here, and
nothing here does I/O: the values are the strings stored in `outbox.resource_type` and `outbox.change`
(migrations 0001 and 0003 check the resource types) and the names arq queues jobs under.

Adding a change kind: add it to `ChangeKind` under its resource type, record it in a service
through `Transaction.record`, and give it a meaning in the worker's applier for that resource type.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class ResourceType(StrEnum):
    """What an outbox row is about (`outbox.resource_type`)."""

    USER = "user"  # drained per tenant, in batches (worker/user_drain.py)
    GROUP = "group"  # applied per group to its linked team (worker/groups.py)
    TENANT = "tenant"  # the tenant-wide part of seat allocation (worker/seats.py)


class ChangeKind(StrEnum):
    """What a write did to its resource (`outbox.change`), grouped by the resource type that records it."""

    # Users (the SCIM rule that picks one is `scimsvc.scim.users.change_kind`).
    CREATE = "create"  # a new userName
    UPDATE = "update"  # a user or group changed, its state (active, linked) as before
    DEACTIVATE = "deactivate"  # active became false
    REACTIVATE = "reactivate"  # active became true
    RELINK = "relink"  # a SCIM-deleted user's userName was provisioned again: the same product user
    DELETE = "delete"  # SCIM DELETE: deactivated and unlinked
    # Groups.
    # POST: linked to the team of the same name; payload {"add": [user ids], "remove": []}. A re-link (a push
    # of an unlinked group, or linked by hand): payload {"relink": true}, every member of the group joins.
    LINK = "link"
    MEMBERS = "members"  # payload {"add": [...], "remove": [...]}: exactly these users join / leave the team
    PUSH = "push"  # the team's members become exactly the group's
    UNLINK = "unlink"  # the group was deleted; its team stays
    # Tenants.
    LICENSING = "licensing"  # licensing settings changed; payload: the new values
    SEAT_RELEASED = "seat_released"  # a hard delete freed a full seat; {"user_id"}
    MANUAL_LICENSE = (
        "manual_license"  # an operator's assignment; {"user_id", "license"} (license may be null)
    )


class AuditAction(StrEnum):
    """What an audit row records (`audit_log.action`), written by the front end and the worker alike: every
    writer of an audit row names its action from here (store/audit.py takes nothing else), and the console
    names each in words (web/console/names.py:ACTIONS, one entry per member)."""

    # A user's license and seat (worker/seats.py, product/seats.py:seat_action).
    ALLOCATION = "allocation"  # a full seat taken
    RELEASE = "release"  # a full seat given up
    LICENSE_CHANGE = "license_change"  # another license change
    WAITING = "waiting"  # joined the waiting list
    PROMOTION = "promotion"  # a seat given from the waiting list
    MANUAL_ASSIGNMENT = "manual_assignment"
    MANUAL_ASSIGNMENT_REFUSED = "manual_assignment_refused"
    # A user's lifecycle.
    DEACTIVATION = "deactivation"
    REACTIVATION = "reactivation"
    EMAIL_CHANGE = "email_change"
    HARD_DELETE = "hard_delete"
    HANDOVER = "handover"  # a hard-deleted user's boards handed over
    # Admin and settings actions (services/actions.py:record_action).
    TENANT_CREATED = "tenant_created"
    SETTINGS_CHANGED = "settings_changed"
    SCIM_ENABLED = "scim_enabled"
    SCIM_DISABLED = "scim_disabled"
    TOKEN_CREATED = "token_created"
    TOKEN_REVOKED = "token_revoked"
    TEAM_CREATED = "team_created"
    TEAM_RENAMED = "team_renamed"
    TEAM_DELETED = "team_deleted"
    TEAM_LINKED = "team_linked"
    MEMBER_ADDED = "member_added"
    MEMBER_REMOVED = "member_removed"
    PORTAL_LINK_CREATED = "portal_link_created"
    PORTAL_SESSION_STARTED = "portal_session_started"
    PORTAL_SESSIONS_ENDED = "portal_sessions_ended"
    ORG_ADMIN_ADDED = "org_admin_added"
    ORG_ADMIN_REMOVED = "org_admin_removed"
    WEBHOOK_CREATED = "webhook_created"
    WEBHOOK_UPDATED = "webhook_updated"
    WEBHOOK_ENABLED = "webhook_enabled"
    WEBHOOK_DISABLED = "webhook_disabled"
    WEBHOOK_SECRET_ROTATED = "webhook_secret_rotated"
    WEBHOOK_REPLAYED = "webhook_replayed"
    WEBHOOK_DELETED = "webhook_deleted"


# arq job names (the worker registers its functions under these, worker/settings.py).
APPLY_OUTBOX = "apply_outbox"  # (resource_type, resource_id): apply one group's or tenant's pending rows
DRAIN_USERS = "drain_users"  # (tenant_id, outbox_ids or None): apply a tenant's pending user rows
# ([[tenant_id, outbox_ids or None], ...]): apply the pending user rows of tenants woken together, at
# most DRAIN_TENANTS_MAX of them
DRAIN_TENANTS = "drain_tenants"
DRAIN_TENANTS_MAX = 200
DELIVER_NOTICES = "deliver_notices"  # (): send the notices committed with email changes
DELIVER_WEBHOOKS = "deliver_webhooks"  # (): send the webhook deliveries that are due (queued with events)
JOB_NAMES = (APPLY_OUTBOX, DRAIN_USERS, DRAIN_TENANTS, DELIVER_NOTICES, DELIVER_WEBHOOKS)


@dataclass(frozen=True)
class Wakeup:
    """A committed outbox row that a worker should apply."""

    tenant_id: UUID
    resource_type: ResourceType
    resource_id: UUID
    outbox_id: int
