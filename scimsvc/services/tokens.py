"""SCIM tokens as operators manage them (admin API, console, CLI): create (shown once), list, revoke.

Issuing and revoking are actions (services/actions.py): each commits with its audit row and event, which
name the token by id and label, never by its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.product.events import EventType, NewEvent
from scimsvc.scim.errors import not_found
from scimsvc.services.actions import ActionScope, record_action, wake_deliverer
from scimsvc.store import tenants as store
from scimsvc.store.db import transaction


@dataclass(frozen=True)
class NewToken:
    """A token just issued: its id and label, and its value, which the caller shows once."""

    id: UUID
    label: str
    token: str


async def list_tokens(pool: asyncpg.Pool, tenant_id: UUID) -> list[asyncpg.Record]:
    """The tenant's SCIM tokens: id, label, created_at, revoked_at (never a value: only its hash is kept)."""
    return await store.list_tokens(pool, tenant_id)


def _token_data(row: asyncpg.Record) -> dict[str, Any]:
    data = {"id": str(row["id"]), "label": row["label"], "created_at": row["created_at"].isoformat()}
    if "revoked_at" in row.keys():
        data["revoked_at"] = row["revoked_at"].isoformat()
    return data


async def issue_token(
    conn: asyncpg.Connection, scope: ActionScope, tenant_id: UUID, *, label: str = ""
) -> tuple[NewToken, int]:
    """Issue a token of an existing tenant in the caller's transaction, audited (`token_created`) with its
    event; returns it and the webhook deliveries queued."""
    row, token = await store.create_token(conn, tenant_id, label=label)
    deliveries = await record_action(
        conn,
        scope,
        tenant_id,
        "token_created",
        {"token_id": str(row["id"]), "label": row["label"]},
        happened=[NewEvent(EventType.TOKEN_CREATED, {"token": _token_data(row)})],
    )
    return NewToken(row["id"], row["label"], token), deliveries


async def create_token(scope: ActionScope, tenant_id: UUID, *, label: str = "") -> NewToken:
    """A new token of the tenant (404 if there is none); its value is for the caller to show once."""
    async with transaction(scope.pool) as conn:
        if await store.get_tenant(conn, tenant_id) is None:
            raise not_found(f"tenant {tenant_id} not found")
        new, deliveries = await issue_token(conn, scope, tenant_id, label=label)
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
            "token_revoked",
            {"token_id": str(row["id"]), "label": row["label"]},
            happened=[NewEvent(EventType.TOKEN_REVOKED, {"token": _token_data(row)})],
        )
    await wake_deliverer(scope, deliveries)
    return True
