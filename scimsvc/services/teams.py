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


async def list_teams(pool: asyncpg.Pool, tenant_id: UUID) -> list[asyncpg.Record]:
    """The tenant's teams, each with its member count and linked SCIM group."""
    return await teams.list_teams(pool, tenant_id)


async def delete_team(pool: asyncpg.Pool, tenant_id: UUID, team_id: UUID) -> bool:
    """Delete a team and its memberships (a linked SCIM group stays, unlinked); False if not the tenant's."""
    return await teams.delete_team(pool, tenant_id, team_id)


async def members_page(
    pool: asyncpg.Pool, team_id: UUID, *, after: UUID | None, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` members of the team by user id, after the user `after`."""
    return await teams.members_page(pool, team_id, after=after, limit=limit)


async def add_member(pool: asyncpg.Pool, tenant_id: UUID, team_id: UUID, user_id: UUID) -> bool:
    """Add a member by hand (allowed with SCIM on: a later group push overwrites it); False when the user is
    not the tenant's."""
    return await teams.add_member(pool, tenant_id, team_id, user_id, added_by="admin")


async def remove_member(pool: asyncpg.Pool, tenant_id: UUID, team_id: UUID, user_id: UUID) -> bool:
    """Remove a member; False when the user is not a member of the tenant's team."""
    return await teams.remove_member(pool, tenant_id, team_id, user_id)
