"""Teams as operators change them (Teams API and console): names unique per tenant, case-sensitively.

Each change is an action (services/actions.py): it commits with its audit row, and a membership made or
ended by hand with its event.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.contract import AuditAction, ResourceType
from scimsvc.product.events import EventType, NewEvent
from scimsvc.scim.errors import not_found, uniqueness
from scimsvc.services.actions import ActionScope, record_action, wake_deliverer
from scimsvc.services.changes import Transaction, write
from scimsvc.services.groups import record_link
from scimsvc.store import groups as group_store
from scimsvc.store import outbox, teams
from scimsvc.store import tenants as tenant_store
from scimsvc.store.db import transaction

NAME_TAKEN = "this organization already has a team named {name!r} (team names are unique, case-sensitively)"


async def team_or_404(pool: asyncpg.Pool, tenant_id: UUID, team_id: UUID) -> asyncpg.Record:
    """One team of the tenant, with its member count and linked SCIM group."""
    rows = await teams.list_teams(pool, tenant_id, only=team_id)
    if not rows:
        raise not_found(f"team {team_id} not found in this organization")
    return rows[0]


async def create_team(scope: ActionScope, tenant_id: UUID, name: str) -> asyncpg.Record:
    """A new team of the tenant, audited (`team_created`); 409 `uniqueness` if the name is taken."""
    try:
        async with transaction(scope.pool) as conn:
            if await tenant_store.get_tenant(conn, tenant_id) is None:
                raise not_found(f"tenant {tenant_id} not found")
            row = await teams.create_team(conn, tenant_id, name)
            await record_action(
                conn, scope, tenant_id, AuditAction.TEAM_CREATED, {"team_id": str(row["id"]), "name": name}
            )
    except asyncpg.UniqueViolationError:
        raise uniqueness(NAME_TAKEN.format(name=name)) from None
    return row


async def rename_team(scope: ActionScope, tenant_id: UUID, team_id: UUID, name: str) -> asyncpg.Record:
    """Rename a team, audited (`team_renamed`, from → to) when the name changes; its linked SCIM group keeps
    its own displayName (names are decoupled)."""
    try:
        async with transaction(scope.pool) as conn:
            previous = await teams.rename_team(conn, tenant_id, team_id, name)
            if previous is None:
                raise not_found(f"team {team_id} not found in this organization")
            if previous != name:
                detail = {"team_id": str(team_id), "from": previous, "to": name}
                await record_action(conn, scope, tenant_id, AuditAction.TEAM_RENAMED, detail)
    except asyncpg.UniqueViolationError:
        raise uniqueness(NAME_TAKEN.format(name=name)) from None
    return await team_or_404(scope.pool, tenant_id, team_id)


async def list_teams(pool: asyncpg.Pool, tenant_id: UUID) -> list[asyncpg.Record]:
    """The tenant's teams, each with its member count and linked SCIM group."""
    return await teams.list_teams(pool, tenant_id)


async def delete_team(scope: ActionScope, tenant_id: UUID, team_id: UUID) -> bool:
    """Delete a team and its memberships (a linked SCIM group stays, unlinked), audited (`team_deleted`);
    False, and nothing written, if it is not the tenant's."""
    async with transaction(scope.pool) as conn:
        name = await teams.delete_team(conn, tenant_id, team_id)
        if name is None:
            return False
        await record_action(
            conn, scope, tenant_id, AuditAction.TEAM_DELETED, {"team_id": str(team_id), "name": name}
        )
    return True


async def members_page(
    pool: asyncpg.Pool, team_id: UUID, *, after: UUID | None, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` members of the team by user id, after the user `after`."""
    return await teams.members_page(pool, team_id, after=after, limit=limit)


async def add_member(scope: ActionScope, tenant_id: UUID, team_id: UUID, user_id: UUID) -> bool:
    """Add a member by hand (allowed with SCIM on: a later group push overwrites it), audited
    (`member_added`) with its event; one already a member stays as it is and nothing is recorded. False when
    the team or the user is not the tenant's."""
    async with transaction(scope.pool) as conn:
        row = await teams.add_member(conn, tenant_id, team_id, user_id, added_by="admin")
        if row is None:
            return False
        deliveries = 0
        if row["added"]:
            deliveries = await _record_membership(
                conn, scope, tenant_id, team_id, row["team_name"], user_id, added=True
            )
    await wake_deliverer(scope, deliveries)
    return True


async def remove_member(scope: ActionScope, tenant_id: UUID, team_id: UUID, user_id: UUID) -> bool:
    """Remove a member by hand, audited (`member_removed`) with its event; False, and nothing written, when
    the user is not a member of the tenant's team."""
    async with transaction(scope.pool) as conn:
        team_name = await teams.remove_member(conn, tenant_id, team_id, user_id)
        if team_name is None:
            return False
        deliveries = await _record_membership(
            conn, scope, tenant_id, team_id, team_name, user_id, added=False
        )
    await wake_deliverer(scope, deliveries)
    return True


async def _record_membership(
    conn: asyncpg.Connection,
    scope: ActionScope,
    tenant_id: UUID,
    team_id: UUID,
    team_name: str,
    user_id: UUID,
    *,
    added: bool,
) -> int:
    event = NewEvent(
        EventType.TEAM_MEMBER_ADDED if added else EventType.TEAM_MEMBER_REMOVED,
        {"team": {"id": str(team_id), "name": team_name}},
        user_id=user_id,
    )
    return await record_action(
        conn,
        scope,
        tenant_id,
        AuditAction.MEMBER_ADDED if added else AuditAction.MEMBER_REMOVED,
        {"team_id": str(team_id), "team": team_name, "user_id": str(user_id)},
        user_id=user_id,
        happened=[event],
    )


LINKABLE_SHOWN = 200  # unlinked groups a team page offers to link
LINKABLE_MEMBERS_COUNTED = 100  # their members are counted up to this: more shows as "100+"


async def unlinked_groups(pool: asyncpg.Pool, tenant_id: UUID) -> list[dict[str, Any]]:
    """The tenant's SCIM groups linked to no team (a team page's "Link a SCIM group"), by name, with their
    member counts as shown ("100+" past `LINKABLE_MEMBERS_COUNTED`: a page view stays cheap)."""
    cap = LINKABLE_MEMBERS_COUNTED
    rows = await group_store.unlinked_groups(pool, tenant_id, limit=LINKABLE_SHOWN, count_up_to=cap + 1)
    return [
        {**dict(r), "member_count": f"{cap}+" if r["member_count"] > cap else str(r["member_count"])}
        for r in rows
    ]


async def group_applying(pool: asyncpg.Pool, tenant_id: UUID, group_id: UUID) -> bool:
    """Whether the worker still has changes of the group to apply to its team (a page says "applying…")."""
    return (await outbox.unapplied_of(pool, tenant_id, ResourceType.GROUP, group_id))["rows"] > 0


async def link_group(scope: ActionScope, tenant_id: UUID, team_id: UUID, group_id: UUID) -> asyncpg.Record:
    """Link one of the tenant's SCIM groups linked to no team to a team linked to no group (a re-link by
    hand, whatever the names): audited (`team_linked`); the worker then adds every member of the group to
    the team (nobody leaves) and tells `group.linked`. 404 when the team or the group is not the tenant's,
    409 `uniqueness` when either is linked already."""

    async def steps(tx: Transaction) -> None:
        # The team first, then the group: the order of a team's deletion (which unlinks its group) and of a
        # group's POST. A push that re-links locks the other way round; `write` runs a deadlock again.
        team = await teams.lock_team(tx.conn, tenant_id, team_id)
        if team is None:
            raise not_found(f"team {team_id} not found in this organization")
        group = await group_store.get_group(tx.conn, tenant_id, group_id, for_update=True)
        if group is None:
            raise not_found(f"SCIM group {group_id} not found in this organization")
        if team["group_id"] is not None:
            raise uniqueness(
                f"the team {team['name']!r} is already linked to the SCIM group "
                f"{team['group_display_name']!r}; a team follows one group: choose a team with no SCIM "
                "group, or create one"
            )
        if group["team_id"] is not None:
            raise uniqueness(
                f"the SCIM group {group['display_name']!r} is already linked to another team; a group links "
                "to one team"
            )
        try:
            async with tx.conn.transaction():  # a savepoint: another group linked to the team meanwhile
                linked = await group_store.link_group(tx.conn, tenant_id, group_id, team_id)
        except asyncpg.UniqueViolationError:
            linked = False
        if not linked:
            raise uniqueness(f"the team {team['name']!r} was linked to another SCIM group meanwhile")
        await record_link(tx, group_id, group["display_name"], team_id, team["name"], via="hand", by=scope)

    await write(scope.for_tenant(tenant_id), steps)
    return await team_or_404(scope.pool, tenant_id, team_id)
