"""Tenant settings as operators change them (admin API and console): validation against the tenant, and the
licensing change the worker must re-apply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind, ResourceType
from scimsvc.scim.errors import invalid_value, not_found
from scimsvc.services.changes import Scope, Transaction, write
from scimsvc.store import teams
from scimsvc.store import tenants as store

# A change of any of these re-runs allocation in the worker (e.g. raised seats promote waiting users).
LICENSING_SETTINGS = frozenset({"seats", "flexible_licenses", "default_license", "fallback_license"})


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


async def create_tenant(pool: asyncpg.Pool, data: dict[str, Any]) -> asyncpg.Record:
    """Create a tenant from validated `TenantCreateSchema` data (a new tenant has no teams yet)."""
    settings = dict(data)
    await check_domain_teams(pool, None, settings)
    async with pool.acquire() as conn:
        return await store.create_tenant(conn, name=settings.pop("name"), settings=settings)


async def update_tenant_settings(scope: Scope, changes: dict[str, Any]) -> asyncpg.Record:
    """Apply validated `TenantSettingsSchema` changes; a licensing change is recorded for the worker."""
    tenant_id = scope.tenant_id

    async def steps(tx: Transaction) -> asyncpg.Record:
        await check_domain_teams(tx.conn, tenant_id, changes)
        row = await store.update_tenant(tx.conn, tenant_id, changes)
        if row is None:
            raise not_found(f"tenant {tenant_id} not found")
        if LICENSING_SETTINGS & changes.keys():
            await tx.record(
                ResourceType.TENANT,
                tenant_id,
                ChangeKind.LICENSING,
                {k: changes[k] for k in LICENSING_SETTINGS & changes.keys()},
            )
        return row

    return await write(scope, steps, tries=1)


async def set_scim_enabled(pool: asyncpg.Pool, tenant_id: UUID, enabled: bool) -> asyncpg.Record:
    """Turn SCIM provisioning on or off for a tenant; its tokens get 403 while it is off."""
    row = await store.update_tenant(pool, tenant_id, {"scim_enabled": enabled})
    if row is None:
        raise not_found(f"tenant {tenant_id} not found")
    return row


async def tenant_or_404(pool: asyncpg.Pool, tenant_id: UUID) -> asyncpg.Record:
    """The tenant's row; a 404 if there is no such tenant."""
    row = await store.get_tenant(pool, tenant_id)
    if row is None:
        raise not_found(f"tenant {tenant_id} not found")
    return row


async def list_tenants(pool: asyncpg.Pool, *, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` tenants, for the console's list."""
    return await store.list_tenants(pool, limit=limit)
