"""One user as the console's user page shows it: every attribute, the provisioning state, license and seat,
place on the waiting list, license history, notices, and the latest provisioning log and audit entries.

Every list is bounded (the latest few, with a link to the full page) and read in one query each; ids of
another tenant are not found (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from schemas.user import ENTERPRISE_SCHEMA
from scimsvc.contract import AuditAction, ResourceType
from scimsvc.scim.errors import not_found
from scimsvc.services import provisioning_log
from scimsvc.store import audit, licenses, notices, outbox, teams, user_admin, users

SHOWN = 10  # entries of each list on the page; the full list is a link away

# The audit actions of a license change (worker/seats.py, product/seats.py:seat_action).
LICENSE_ACTIONS = [
    AuditAction.ALLOCATION,
    AuditAction.RELEASE,
    AuditAction.LICENSE_CHANGE,
    AuditAction.WAITING,
    AuditAction.PROMOTION,
    AuditAction.MANUAL_ASSIGNMENT,
    AuditAction.MANUAL_ASSIGNMENT_REFUSED,
]


@dataclass(frozen=True)
class Provisioning:
    """Whether the worker applied the user's last change: applied, pending, or failed (with the error)."""

    state: str  # "applied" | "pending" | "failed"
    rows: int  # outbox rows still to apply
    attempts: int
    error: str | None


@dataclass(frozen=True)
class UserDetails:
    """Everything the user page shows about one user."""

    row: asyncpg.Record
    teams: list[dict[str, Any]]
    provisioning: Provisioning
    waiting_place: int | None
    manager: dict[str, str] | None  # {id, name} of the manager, when it is a user of the tenant
    license_history: list[asyncpg.Record]
    notices: list[asyncpg.Record]
    log_entries: list[dict[str, Any]]
    audit_entries: list[asyncpg.Record]


def provisioning_of(row: asyncpg.Record, unapplied: asyncpg.Record) -> Provisioning:
    """Applied when nothing is left to apply; failed when the worker tried and recorded an error."""
    if unapplied["rows"] == 0 and row["provisioning_state"] != "pending":
        return Provisioning("applied", 0, 0, None)
    if unapplied["last_error"] is not None:
        return Provisioning("failed", unapplied["rows"], unapplied["attempts"], unapplied["last_error"])
    return Provisioning("pending", unapplied["rows"], unapplied["attempts"], None)


def manager_id(resource: dict[str, Any]) -> UUID | None:
    """The enterprise extension's manager.value, when it is a user id."""
    value = ((resource.get(ENTERPRISE_SCHEMA) or {}).get("manager") or {}).get("value")
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


async def user_details(pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID) -> UserDetails:
    """The user page of one user of the tenant; 404 when the tenant has no such user."""
    rows = await user_admin.admin_page(
        pool, tenant_id, state=None, license=None, q=None, after=None, limit=1, only=user_id
    )
    if not rows:
        raise not_found(f"user {user_id} not found in this organization")
    row = rows[0]
    unapplied = await outbox.unapplied_of(pool, tenant_id, ResourceType.USER, user_id)
    place = await licenses.waiting_place(pool, tenant_id, user_id) if row["waiting_since"] else None
    boss = manager_id(row["resource"])
    manager = None
    if boss is not None:
        names = await users.display_names(pool, tenant_id, [boss])
        if boss in names:
            manager = {"id": str(boss), "name": names[boss]}
    log = await provisioning_log.log_page(
        pool, tenant_id, provisioning_log.LogFilters(resource=("user", user_id)), limit=SHOWN
    )
    return UserDetails(
        row=row,
        teams=(await teams.teams_of(pool, [user_id]))[user_id],
        provisioning=provisioning_of(row, unapplied),
        waiting_place=place,
        manager=manager,
        license_history=await audit.user_audit_of_actions(
            pool, tenant_id, user_id, LICENSE_ACTIONS, limit=SHOWN
        ),
        notices=await notices.notices_of_user(pool, tenant_id, user_id, limit=SHOWN),
        log_entries=log.entries,
        audit_entries=await audit.audit_page(pool, tenant_id, user_id=user_id, before_id=None, limit=SHOWN),
    )
