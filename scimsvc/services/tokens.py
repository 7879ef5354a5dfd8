"""SCIM tokens as operators and organization admins manage them (admin API, console, portal, CLI): create
(shown once, with an optional expiry), list (with who created each, when it was last used and when it
expires), revoke.

Issuing and revoking are actions (services/actions.py): each commits with its audit row and event, which
name the token by id and label, never by its value. An expired token is refused like a revoked one
(scimsvc/web/token_cache.py); when it was last used is written by the web front end in batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.contract import AuditAction
from scimsvc.product.events import EventType, NewEvent
from scimsvc.scim.errors import invalid_value, not_found
from scimsvc.scim.resources import scim_datetime
from scimsvc.services.actions import ActionScope, Actor, record_action, wake_deliverer
from scimsvc.store import tenants as store
from scimsvc.store.db import transaction

MAX_EXPIRY_DAYS = 3650  # a token's expiry is at most this far ahead (ten years)
# Who created a token (`scim_tokens.created_by`), as a page names them.
CREATORS = ("operator", "org_admin", "cli")


@dataclass(frozen=True)
class NewToken:
    """A token just issued: its id, label and expiry, and its value, which the caller shows once."""

    id: UUID
    label: str
    token: str
    expires_at: datetime | None = None


def creator(actor: Actor) -> str:
    """Who creates a token, from the action's actor: an organization admin, the CLI (an operator's action
    with no request), or the operator through the admin API or the console."""
    if actor.kind == "org_admin":
        return "org_admin"
    return "cli" if actor.request_id is None else "operator"


def token_expiry(
    *, expires_at: datetime | None, expires_in_days: int | None, now: datetime | None = None
) -> datetime | None:
    """When a new token expires, from at most one of `expires_at` (a future time; without an offset, UTC)
    and `expires_in_days`; None: never. A 400 naming the field otherwise."""
    if expires_at is not None and expires_in_days is not None:
        raise invalid_value("give expires_at or expires_in_days, not both")
    now = now or datetime.now(UTC)
    latest = now + timedelta(days=MAX_EXPIRY_DAYS)
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise invalid_value(f"expires_in_days must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}")
        return now + timedelta(days=expires_in_days)
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    try:
        expires_at = expires_at.astimezone(UTC)
    except OverflowError:
        raise invalid_value("expires_at must be a time within the next ten years") from None
    if expires_at <= now:
        raise invalid_value(f"expires_at must be in the future, got {scim_datetime(expires_at)}")
    if expires_at > latest:
        raise invalid_value("expires_at must be a time within the next ten years")
    return expires_at


async def list_tokens(pool: asyncpg.Pool, tenant_id: UUID) -> list[asyncpg.Record]:
    """The tenant's SCIM tokens (`store/tenants.py:TOKEN_COLUMNS`; never a value: only its hash is kept)."""
    return await store.list_tokens(pool, tenant_id)


async def token_of(pool: asyncpg.Pool, tenant_id: UUID, token_id: UUID) -> asyncpg.Record:
    """One token of the tenant, revoked or not; 404 when the tenant has no such token."""
    row = await store.get_token(pool, tenant_id, token_id)
    if row is None:
        raise not_found(f"token {token_id} not found in this organization")
    return row


def token_state(row: Any, now: datetime | None = None) -> str:
    """`live`, `expired` or `revoked`."""
    if row["revoked_at"] is not None:
        return "revoked"
    expires_at = row["expires_at"]
    if expires_at is not None and expires_at <= (now or datetime.now(UTC)):
        return "expired"
    return "live"


def render_token(row: Any) -> dict[str, Any]:
    """A token as the admin API lists it (never its value)."""
    return {
        "id": str(row["id"]),
        "label": row["label"],
        "created_by": row["created_by"],
        "created_at": scim_datetime(row["created_at"]),
        "last_used_at": scim_datetime(row["last_used_at"]),
        "expires_at": scim_datetime(row["expires_at"]),
        "revoked_at": scim_datetime(row["revoked_at"]),
        "state": token_state(row),
    }


def _token_data(row: asyncpg.Record) -> dict[str, Any]:
    data = {"id": str(row["id"]), "label": row["label"], "created_at": row["created_at"].isoformat()}
    if row["revoked_at"] is not None:
        data["revoked_at"] = row["revoked_at"].isoformat()
    return data


async def issue_token(
    conn: asyncpg.Connection,
    scope: ActionScope,
    tenant_id: UUID,
    *,
    label: str = "",
    expires_at: datetime | None = None,
) -> tuple[NewToken, int]:
    """Issue a token of an existing tenant in the caller's transaction, audited (`token_created`) with its
    event; returns it and the webhook deliveries queued."""
    row, token = await store.create_token(
        conn, tenant_id, label=label, created_by=creator(scope.actor), expires_at=expires_at
    )
    deliveries = await record_action(
        conn,
        scope,
        tenant_id,
        AuditAction.TOKEN_CREATED,
        {"token_id": str(row["id"]), "label": row["label"]},
        happened=[NewEvent(EventType.TOKEN_CREATED, {"token": _token_data(row)})],
    )
    return NewToken(row["id"], row["label"], token, row["expires_at"]), deliveries


async def create_token(
    scope: ActionScope, tenant_id: UUID, *, label: str = "", expires_at: datetime | None = None
) -> NewToken:
    """A new token of the tenant (404 if there is none), expiring at `expires_at` if given (see
    `token_expiry`); its value is for the caller to show once."""
    async with transaction(scope.pool) as conn:
        if await store.get_tenant(conn, tenant_id) is None:
            raise not_found(f"tenant {tenant_id} not found")
        new, deliveries = await issue_token(conn, scope, tenant_id, label=label, expires_at=expires_at)
    await wake_deliverer(scope, deliveries)
    return new


async def revoke_token(scope: ActionScope, tenant_id: UUID, token_id: UUID) -> bool:
    """Revoke a live token of the tenant, audited (`token_revoked`) with its event; False when it is not
    one (unknown, another tenant's, or revoked), and then nothing is written."""
    async with transaction(scope.pool) as conn:
        row = await store.revoke_token(conn, tenant_id, token_id)
        if row is None:
            return False
        deliveries = await record_action(
            conn,
            scope,
            tenant_id,
            AuditAction.TOKEN_REVOKED,
            {"token_id": str(row["id"]), "label": row["label"]},
            happened=[NewEvent(EventType.TOKEN_REVOKED, {"token": _token_data(row)})],
        )
    await wake_deliverer(scope, deliveries)
    return True
