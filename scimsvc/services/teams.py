"""Teams as operators change them (Teams API and console): names unique per tenant, case-sensitively."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from scimsvc.scim.errors import not_found, uniqueness
from scimsvc.store import teams
from scimsvc.store import tenants as tenant_store

NAME_TAKEN = "this tenant already has a team named {name!r} (team names are unique, case-sensitively)"


async def team_or_404(pool: asyncpg.Pool, tenant_id: UUID, team_id: UUID) -> asyncpg.Record:
    """One team of the tenant, with its member count and linked SCIM group."""
    rows = await teams.list_teams(pool, tenant_id, only=team_id)
    if not rows:
        raise not_found(f"team {team_id} not found in tenant {tenant_id}")
    return rows[0]


async def create_team(pool: asyncpg.Pool, tenant_id: UUID, name: str) -> asyncpg.Record:
    """A new team of the tenant; 409 `uniqueness` if the name is taken."""
    if await tenant_store.get_tenant(pool, tenant_id) is None:
        raise not_found(f"tenant {tenant_id} not found")
    try:
        return await teams.create_team(pool, tenant_id, name)
    except asyncpg.UniqueViolationError:
        raise uniqueness(NAME_TAKEN.format(name=name)) from None


async def rename_team(pool: asyncpg.Pool, tenant_id: UUID, team_id: UUID, name: str) -> asyncpg.Record:
    """Rename a team; its linked SCIM group keeps its own displayName (names are decoupled)."""
    try:
        renamed = await teams.rename_team(pool, tenant_id, team_id, name)
    except asyncpg.UniqueViolationError:
        raise uniqueness(NAME_TAKEN.format(name=name)) from None
    if not renamed:
        raise not_found(f"team {team_id} not found in tenant {tenant_id}")
    return await team_or_404(pool, tenant_id, team_id)
