"""Tenant settings as operators change them (admin API, console, CLI): validation against the tenant, the
licensing change the worker must re-apply, and the audit row of what changed (services/actions.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.contract import AuditAction, ChangeKind, ResourceType
from scimsvc.product.events import EventType, NewEvent
from scimsvc.scim.errors import ScimError, invalid_value, not_found
from scimsvc.services.actions import ActionScope, record_action, wake_deliverer
from scimsvc.services.changes import Transaction, write
from scimsvc.services.tokens import NewToken, issue_token
from scimsvc.store import teams
from scimsvc.store import tenants as store
from scimsvc.store.db import transaction

# A change of any of these re-runs allocation in the worker (e.g. raised seats promote waiting users).
LICENSING_SETTINGS = frozenset({"seats", "flexible_licenses", "default_license", "fallback_license"})
# What an organization admin (a portal session) may change; seats, the rate limit and the name are shown
# to them but only the operator changes them.
ORG_ADMIN_SETTINGS = frozenset(
    {"flexible_licenses", "default_license", "fallback_license", "allowed_domains", "domain_teams"}
)
SETTING_WORDS = {"seats": "the seats", "rate_limit": "the rate limit", "name": "the organization's name"}
# Name the refused settings in this order in a sentence.
SETTING_ORDER = ("seats", "name", "rate_limit")
# Settings whose changes a `settings_changed` audit row lists (the SCIM switch has actions of its own).
AUDITED_SETTINGS = tuple(name for name in store.TENANT_SETTINGS if name != "scim_enabled")


async def check_domain_teams(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID | None, changes: Mapping[str, Any]
) -> None:
    """Every team named in `domain_teams` must be a team of the tenant (400 naming those that are not)."""
    wanted = sorted({UUID(t) for ids in changes.get("domain_teams", {}).values() for t in ids})
    missing = await teams.missing_teams(conn, tenant_id, wanted) if tenant_id and wanted else wanted
    if missing:
        raise invalid_value(
            "domain_teams names teams that are not teams of this tenant: "
            + ", ".join(sorted(str(t) for t in missing))
            + " (create them first with POST /admin/v1/tenants/{tid}/teams)"
        )


async def create_tenant(scope: ActionScope, data: dict[str, Any]) -> asyncpg.Record:
    """Create a tenant from validated `TenantCreateSchema` data (a new tenant has no teams yet), audited."""
    async with transaction(scope.pool) as conn:
        row = await _create(conn, scope, data)
    return row


async def create_tenant_with_token(
    scope: ActionScope, data: dict[str, Any], *, reuse: bool = False, label: str = ""
) -> tuple[asyncpg.Record, NewToken]:
    """Create a tenant (with `reuse`, take the oldest one of that name) and issue it a token, in one
    transaction, each audited (the CLI's `tenant create` and `up`)."""
    async with transaction(scope.pool) as conn:
        row = await store.find_tenant_by_name(conn, data["name"]) if reuse else None
        if row is None:
            row = await _create(conn, scope, data)
        new, deliveries = await issue_token(conn, scope, row["id"], label=label)
    await wake_deliverer(scope, deliveries)
    return row, new


async def _create(conn: asyncpg.Connection, scope: ActionScope, data: dict[str, Any]) -> asyncpg.Record:
    settings = dict(data)
    await check_domain_teams(conn, None, settings)
    row = await store.create_tenant(conn, name=settings.pop("name"), settings=settings)
    given = {k: row[k] for k in data if k != "name"}
    await record_action(
        conn, scope, row["id"], AuditAction.TENANT_CREATED, {"name": row["name"], "settings": given}
    )
    return row


def org_admin_refusal(changes: Mapping[str, Any]) -> str | None:
    """Why an organization admin may not make these changes (None: they may): only the operator changes
    the seats, the rate limit and the name."""
    names = changes.keys() - ORG_ADMIN_SETTINGS
    ordered = [n for n in SETTING_ORDER if n in names] + sorted(names - set(SETTING_ORDER))
    refused = [SETTING_WORDS.get(name, name) for name in ordered]
    if not refused:
        return None
    return (
        f"Only the operator of this service changes {_and(refused)}. "
        "Ask them to change it; the license rules, allowed domains and domain teams are yours to change."
    )


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


async def update_tenant_settings(
    scope: ActionScope, tenant_id: UUID, changes: dict[str, Any]
) -> asyncpg.Record:
    """Apply validated `TenantSettingsSchema` changes: a licensing setting that really changed is recorded
    for the worker (only the settings that changed, from → to); what really changed is audited
    (`settings_changed`; SCIM on or off as `set_scim_enabled` does).

    An organization admin (`scope.actor.kind == "org_admin"`, a portal session) changes only
    `ORG_ADMIN_SETTINGS`: anything else is a 403 and nothing changes.
    """
    if scope.actor.kind == "org_admin" and (refusal := org_admin_refusal(changes)) is not None:
        raise ScimError(403, refusal)

    async def steps(tx: Transaction) -> tuple[asyncpg.Record, int]:
        await check_domain_teams(tx.conn, tenant_id, changes)
        before = await store.lock_tenant(tx.conn, tenant_id)
        if before is None:
            raise not_found(f"tenant {tenant_id} not found")
        row = await store.update_tenant(tx.conn, tenant_id, changes)
        assert row is not None  # locked above
        changed = {k: row[k] for k in sorted(LICENSING_SETTINGS & changes.keys()) if before[k] != row[k]}
        if changed:  # flexible_licenses among them: the worker decides every user again (worker/jobs.py)
            await tx.record(ResourceType.TENANT, tenant_id, ChangeKind.LICENSING, changed)
        return row, await _audit_changes(tx.conn, scope, before, row)

    row, deliveries = await write(scope.for_tenant(tenant_id), steps, tries=1)
    await wake_deliverer(scope, deliveries)
    return row


async def set_scim_enabled(scope: ActionScope, tenant_id: UUID, enabled: bool) -> asyncpg.Record:
    """Turn SCIM provisioning on or off for a tenant (its tokens get 403 while it is off), audited with its
    event; asking for the state it is already in changes and records nothing.

    Turned back on, the identity provider assigns the licenses again: a licensing change makes the worker
    decide every user by the license rules (worker/jobs.py:RULE_KEYS), as turning flexible licenses on or
    off does (an operator's assignments stood while SCIM was off)."""

    async def steps(tx: Transaction) -> tuple[asyncpg.Record, int]:
        before = await store.lock_tenant(tx.conn, tenant_id)
        if before is None:
            raise not_found(f"tenant {tenant_id} not found")
        row = await store.update_tenant(tx.conn, tenant_id, {"scim_enabled": enabled})
        if enabled and not before["scim_enabled"]:
            await tx.record(ResourceType.TENANT, tenant_id, ChangeKind.LICENSING, {"scim_enabled": True})
        return row, await _audit_changes(tx.conn, scope, before, row)

    row, deliveries = await write(scope.for_tenant(tenant_id), steps, tries=1)
    await wake_deliverer(scope, deliveries)
    return row


def setting_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{setting: {"from", "to"}} for every setting but the SCIM switch whose value really changed."""
    return {
        name: {"from": before[name], "to": after[name]}
        for name in AUDITED_SETTINGS
        if before[name] != after[name]
    }


async def _audit_changes(
    conn: asyncpg.Connection, scope: ActionScope, before: asyncpg.Record, after: asyncpg.Record
) -> int:
    """The audit rows and events of a tenant's change: the SCIM switch, then the other settings."""
    tenant_id = after["id"]
    deliveries = 0
    if before["scim_enabled"] != after["scim_enabled"]:
        on = after["scim_enabled"]
        tenant = {"id": str(tenant_id), "name": after["name"], "scim_enabled": on}
        deliveries += await record_action(
            conn,
            scope,
            tenant_id,
            AuditAction.SCIM_ENABLED if on else AuditAction.SCIM_DISABLED,
            {},
            happened=[
                NewEvent(EventType.SCIM_ENABLED if on else EventType.SCIM_DISABLED, {"tenant": tenant})
            ],
        )
    changes = setting_changes(before, after)
    if changes:
        await record_action(conn, scope, tenant_id, AuditAction.SETTINGS_CHANGED, {"changes": changes})
    return deliveries


async def tenant_or_404(pool: asyncpg.Pool, tenant_id: UUID) -> asyncpg.Record:
    """The tenant's row; a 404 if there is no such tenant."""
    row = await store.get_tenant(pool, tenant_id)
    if row is None:
        raise not_found(f"tenant {tenant_id} not found")
    return row


async def list_tenants(pool: asyncpg.Pool, *, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` tenants, for the console's list."""
    return await store.list_tenants(pool, limit=limit)


async def team_ids_by_name(pool: asyncpg.Pool, tenant_id: UUID) -> dict[str, UUID]:
    """The tenant's teams, id by name (names are unique in a tenant), to read domain teams typed by name."""
    return {r["name"]: r["id"] for r in await teams.tenant_team_names(pool, tenant_id)}
