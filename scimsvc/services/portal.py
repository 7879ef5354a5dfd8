"""Portal access for an organization's admins (README.md, For organization admins): links the operator
makes (admin API, console, CLI), sign-in links by email, opening a link into a portal session, ending
an organization's portal sessions, and the organization's registered admin addresses.

Making a link, ending sessions and changing the registered addresses are actions (services/actions.py),
audited; a link's token is shown once and only its hash is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis

from scimsvc.contract import AuditAction
from scimsvc.enqueue import enqueue_deliver_notices
from scimsvc.product.portal import (
    link_token_hash,
    link_url,
    new_link_token,
    normal_email,
    session_id_hash,
    storable_address,
)
from scimsvc.scim.errors import not_found
from scimsvc.services.actions import ActionScope, record_action
from scimsvc.settings import Settings
from scimsvc.store import console_sessions, tenants
from scimsvc.store import portal as store
from scimsvc.store.db import transaction

ADMINS_SHOWN = 500


@dataclass(frozen=True)
class NewLink:
    """A link just made: its address (shown once; only the token's hash is kept), expiry and admin."""

    id: UUID
    url: str
    expires_at: datetime
    email: str | None


@dataclass(frozen=True)
class Opened:
    """A link just used: the portal session it started."""

    tenant_id: UUID
    email: str | None


async def create_link(
    scope: ActionScope,
    tenant_id: UUID,
    *,
    email: str | None = None,
    minutes: int | None = None,
    redirect: bool = False,
) -> NewLink:
    """A single-use link to the organization's portal (404 without the tenant), audited
    (`portal_link_created`, never with the token). Only a `redirect` link (the admin API's, for a settings
    page that redirects its admin's browser to it) signs in on a GET; any other shows a Continue button."""
    token = new_link_token()
    minutes = minutes or scope.settings.portal_link_minutes
    email = normal_email(email) if email else None
    async with transaction(scope.pool) as conn:
        if await tenants.get_tenant(conn, tenant_id) is None:
            raise not_found(f"tenant {tenant_id} not found")
        row = await store.create_link(
            conn, tenant_id, link_token_hash(token), email=email, minutes=minutes, redirect=redirect
        )
        detail = {"link_id": str(row["id"]), "email": email, "expires_at": row["expires_at"].isoformat()}
        if redirect:
            detail["redirect"] = True
        await record_action(conn, scope, tenant_id, AuditAction.PORTAL_LINK_CREATED, detail)
    return NewLink(row["id"], link_url(scope.settings.public_url, token), row["expires_at"], email)


async def usable_link(pool: asyncpg.Pool, token: str) -> asyncpg.Record | None:
    """The link a token opens, if it may still be opened (nothing is used up): id, tenant_id, email,
    emailed, redirect, tenant_name."""
    return await store.usable_link(pool, link_token_hash(token))


async def open_link(
    scope: ActionScope, token: str, *, sid: str, expires: int, previous_sid: str | None = None
) -> Opened | None:
    """Use the link up and start portal session `sid` of its organization, audited
    (`portal_session_started`: the link, and whether it was emailed, i.e. its mailbox was proven; the
    actor is the organization admin), ending the browser's earlier session `previous_sid`, in one
    transaction; None when the link is unknown, used or expired (nothing started, nothing ended)."""
    async with transaction(scope.pool) as conn:
        row = await store.use_link(conn, link_token_hash(token))
        if row is None:
            return None
        if previous_sid is not None:
            await console_sessions.end_session(conn, session_id_hash(previous_sid))
        await console_sessions.start_session(
            conn, session_id_hash(sid), tenant_id=row["tenant_id"], email=row["email"], expires=expires
        )
        by = replace(scope, actor=replace(scope.actor, kind="org_admin", email=row["email"]))
        detail = {"link_id": str(row["id"]), "emailed": bool(row["emailed"])}
        await record_action(conn, by, row["tenant_id"], AuditAction.PORTAL_SESSION_STARTED, detail)
    return Opened(row["tenant_id"], row["email"])


async def end_portal_sessions(scope: ActionScope, tenant_id: UUID) -> tuple[int, int]:
    """End every live portal session of the organization and make its unused links (console, CLI, API,
    emailed) stop working, in one transaction (404 without the tenant), audited (`portal_sessions_ended`);
    how many sessions were ended and links retired."""
    async with transaction(scope.pool) as conn:
        if await tenants.get_tenant(conn, tenant_id) is None:
            raise not_found(f"tenant {tenant_id} not found")
        ended = await console_sessions.end_tenant_sessions(conn, tenant_id)
        retired = await store.retire_tenant_links(conn, tenant_id)
        detail = {"ended": ended, "links_retired": retired}
        await record_action(conn, scope, tenant_id, AuditAction.PORTAL_SESSIONS_ENDED, detail)
    return ended, retired


async def request_sign_in_links(
    pool: asyncpg.Pool, redis: ArqRedis, settings: Settings, email: str, *, request_id: str | None
) -> None:
    """Ask for a sign-in link by email: one row and a wake-up of the worker, the same work whether or not
    the address is registered anywhere (so neither the answer nor its time tells); the worker looks the
    address up (`worker/sign_in_links.py:resolve_sign_in_requests`)."""
    await store.add_sign_in_request(pool, normal_email(email), request_id=request_id)
    await enqueue_deliver_notices(
        redis, queue_name=settings.queue_name, wait=settings.enqueue_timeout_seconds
    )


async def list_admins(pool: asyncpg.Pool, tenant_id: UUID) -> list[asyncpg.Record]:
    """The organization's registered admin addresses (email, created_at)."""
    return await store.list_admins(pool, tenant_id, limit=ADMINS_SHOWN)


async def add_admin(scope: ActionScope, tenant_id: UUID, email: str) -> tuple[asyncpg.Record, bool]:
    """Register an admin address (case-insensitive), audited (`org_admin_added`): its row (email,
    created_at) and whether it is new (else nothing was written)."""
    address = normal_email(email)
    async with transaction(scope.pool) as conn:
        if await tenants.get_tenant(conn, tenant_id) is None:
            raise not_found(f"tenant {tenant_id} not found")
        row = await store.add_admin(conn, tenant_id, address)
        if row["added"]:
            await record_action(conn, scope, tenant_id, AuditAction.ORG_ADMIN_ADDED, {"email": address})
    return row, bool(row["added"])


async def remove_admin(scope: ActionScope, tenant_id: UUID, email: str) -> bool:
    """Remove a registered admin address with its access: the portal sessions opened with links made for
    it end and its unused links stop working, in one transaction, audited (`org_admin_removed`); False when
    it was not one (an address that could never be registered is not one: nothing is looked up)."""
    address = normal_email(email)
    if not storable_address(address):
        return False
    async with transaction(scope.pool) as conn:
        if not await store.remove_admin(conn, tenant_id, address):
            return False
        ended = await console_sessions.end_email_sessions(conn, tenant_id, address)
        retired = await store.retire_email_links(conn, tenant_id, address)
        detail = {"email": address, "sessions_ended": ended, "links_retired": retired}
        await record_action(conn, scope, tenant_id, AuditAction.ORG_ADMIN_REMOVED, detail)
    return True
