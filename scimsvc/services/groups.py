"""The steps of each SCIM Group request: validate, write with its outbox row, read back.

The SCIM rules are in `scimsvc.scim.groups`; this module chains them with the store calls, in one
transaction per write. Outbox changes for a group (`scimsvc.contract.ChangeKind`, applied by
`worker.groups`):
- LINK (POST) and MEMBERS {"add": [...], "remove": [...]}: the linked team gains / loses exactly
  those users; LINK {"relink": true} (a push of an unlinked group found a team of its exact name, or an
  operator linked it by hand): every member of the group joins the team, nobody leaves;
- PUSH: the linked team's members become exactly the group's members;
- UPDATE (name or externalId only) and UNLINK (group deleted): nothing to apply to the team.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from schemas.group import GROUP_RESOURCE
from scimsvc.contract import AuditAction, ChangeKind, ResourceType
from scimsvc.scim.errors import Reason, ScimError, invalid_value, not_found, uniqueness
from scimsvc.scim.filters.sql import Queryable, where_sql
from scimsvc.scim.groups import MemberChange, plan_group_patch, unknown_members_error, validate_group
from scimsvc.scim.ids import id_or_404
from scimsvc.scim.patch import parse_patch_request
from scimsvc.scim.resources import check_if_match
from scimsvc.scim.sorting import Sort, order_for
from scimsvc.services.actions import ActionScope, record_action
from scimsvc.services.changes import Scope, Transaction, write
from scimsvc.store import audit
from scimsvc.store import groups as store
from scimsvc.store import teams as team_store

TEAMS_API = "POST /admin/v1/tenants/{tenant_id}/teams"


def parse_group_id(raw: str) -> UUID:
    """A group id from a URL; anything that is not one of ours is simply not found."""
    return id_or_404(raw, "Group")


def _no_team(scope: Scope, name: str, similar: list[str]) -> ScimError:
    hint = ""
    if similar:
        hint = (
            f" (there is {', '.join(repr(n) for n in similar)}: team names must match exactly, case included)"
        )
    return invalid_value(
        f"no team is named {name!r} in this organization{hint}. A SCIM group links to an existing product "
        "team with exactly its displayName: create the team first (the console's Teams page, or "
        f"{TEAMS_API.format(tenant_id=scope.tenant_id)} with {orjson.dumps({'name': name}).decode()}), "
        "then send the group again",
        reason=Reason.NO_TEAM,
    )


async def _check_members(tx: Transaction, ids: Sequence[str]) -> None:
    missing = await store.missing_users(tx.conn, tx.scope.tenant_id, ids)
    if missing:
        raise unknown_members_error(missing)


async def _lock(tx: Transaction, raw_id: str, if_match: str | None) -> asyncpg.Record:
    """Lock a group of the tenant (404 if none) and check If-Match against it."""
    row = await store.get_group(tx.conn, tx.scope.tenant_id, parse_group_id(raw_id), for_update=True)
    if row is None:
        raise not_found(f"Group {raw_id!r} not found")
    check_if_match(if_match, row["version"])
    return row


async def _apply_members(
    tx: Transaction, group_id: UUID, change: MemberChange, *, kind: ChangeKind = ChangeKind.MEMBERS
) -> None:
    """Write a member change to the group's desired members and record it for the worker."""
    tenant_id = tx.scope.tenant_id
    # Raising here rolls back the whole write, the group's own changes included.
    if change.replace is not None:
        missing = await store.push_members(tx.conn, tenant_id, group_id, change.replace)
        if missing:
            raise unknown_members_error(missing)
        await tx.record(ResourceType.GROUP, group_id, ChangeKind.PUSH)
        return
    await _check_members(tx, change.add)
    await store.remove_members(tx.conn, tenant_id, group_id, change.remove)
    await store.add_members(tx.conn, tenant_id, group_id, change.add)
    await tx.record(
        ResourceType.GROUP,
        group_id,
        kind,
        {"add": [str(i) for i in change.add], "remove": [str(i) for i in change.remove]},
    )


async def create_group(scope: Scope, body: Any) -> asyncpg.Record:
    """POST /Groups: link to the team named exactly like the group; its members join that team.

    Linking never removes the team's current members (only a push does).
    """
    resource, members = validate_group(body)
    name = resource["displayName"]

    async def steps(tx: Transaction) -> asyncpg.Record:
        team = await team_store.lock_team_by_name(tx.conn, scope.tenant_id, name)
        if team is None:
            raise _no_team(scope, name, await team_store.team_names_like(tx.conn, scope.tenant_id, name))
        if team["group_id"] is not None:
            raise _already_linked(name, team["group_id"], team["group_display_name"])
        try:
            row = await store.insert_group(tx.conn, scope.tenant_id, team["id"], resource)
        except asyncpg.UniqueViolationError:
            raise uniqueness(
                f"the team {name!r} was linked to another SCIM group meanwhile", reason=Reason.TEAM_TAKEN
            ) from None
        await _apply_members(tx, row["id"], MemberChange(add=tuple(members)), kind=ChangeKind.LINK)
        return row

    return await write(scope, steps)


async def _relink(tx: Transaction, row: asyncpg.Record) -> asyncpg.Record:
    """A push of a group linked to no team (its team was deleted) links it to the team with exactly its
    displayName when there is one linked to no other group, as a first sync does: the LINK row recorded
    before the push's own row makes the worker add every member first (README.md, SCIM Groups and teams).

    Audited (`team_linked`, actor scim) in this transaction; the worker tells `group.linked`. The group is
    locked before the team here (the other order of `services/teams.py:link_group`): `write` runs a
    deadlock between the two again.
    """
    if row["team_id"] is not None:
        return row
    tenant_id, name = tx.scope.tenant_id, row["display_name"]
    team = await team_store.lock_team_by_name(tx.conn, tenant_id, name)
    if team is None or team["group_id"] is not None:
        return row
    try:
        async with tx.conn.transaction():  # a savepoint: another group linked to the team meanwhile
            linked = await store.link_group(tx.conn, tenant_id, row["id"], team["id"])
    except asyncpg.UniqueViolationError:
        return row
    if not linked:
        return row
    await record_link(tx, row["id"], row["display_name"], team["id"], team["name"], via="push")
    return await store.get_group(tx.conn, tenant_id, row["id"])


async def record_link(
    tx: Transaction,
    group_id: UUID,
    group_name: str,
    team_id: UUID,
    team_name: str,
    *,
    via: str,
    by: ActionScope | None = None,
) -> None:
    """A re-link's outbox row (the worker adds the group's members and tells `group.linked`) and audit row
    (`team_linked`, `via` "push" or "hand"), in the transaction that linked them. By hand (`by`: the
    action's scope) the row is the action's (`services/actions.py:record_action`: its actor, and an
    organization admin's email as `by`); a push's actor is `scim`."""
    await tx.record(ResourceType.GROUP, group_id, ChangeKind.LINK, {"relink": True})
    detail = {
        "team_id": str(team_id),
        "team": team_name,
        "group_id": str(group_id),
        "group": group_name,
        "via": via,
    }
    if by is not None:
        await record_action(tx.conn, by, tx.scope.tenant_id, AuditAction.TEAM_LINKED, detail)
        return
    await audit.audit_action(
        tx.conn,
        tx.scope.tenant_id,
        AuditAction.TEAM_LINKED,
        actor="scim",
        detail=detail,
        request_id=tx.scope.request_id,
    )


def _already_linked(name: str, group_id: UUID, group_name: str) -> ScimError:
    return uniqueness(
        f"the team {name!r} is already linked to the SCIM group {str(group_id)!r} ({group_name!r}); "
        "a team follows one group. Use that group, or delete it first (DELETE /Groups/{id})",
        reason=Reason.TEAM_TAKEN,
    )


async def get_group(scope: Scope, raw_id: str) -> asyncpg.Record:
    """GET /Groups/{id}."""
    row = await store.get_group(scope.pool, scope.tenant_id, parse_group_id(raw_id))
    if row is None:
        raise not_found(f"Group {raw_id!r} not found")
    return row


async def members_of(scope: Scope, group_ids: list[UUID]) -> dict[UUID, list[tuple[UUID, str]]]:
    """The members to render for each group (users' displayName, else userName)."""
    return await store.members_of(scope.pool, scope.tenant_id, group_ids)


@dataclass(frozen=True)
class Pushed:
    """A group replaced by PUT: its row, and its members as written (user ids, in the order given)."""

    row: asyncpg.Record
    members: tuple[str, ...]


async def push_group(scope: Scope, raw_id: str, body: Any, *, if_match: str | None) -> Pushed:
    """PUT /Groups/{id}: the body replaces the group; its members become exactly the list (a push).

    The team link stays: a new displayName renames the group, never the team. The members come back so
    that the response need not read 50,000 of them back from the database.
    """
    resource, members = validate_group(body)
    change = MemberChange(replace=tuple(members))

    async def steps(tx: Transaction) -> asyncpg.Record:
        current = await _lock(tx, raw_id, if_match)
        row = await store.update_group(tx.conn, scope.tenant_id, current["id"], resource)
        row = await _relink(tx, row)
        await _apply_members(tx, row["id"], change)
        return row

    return Pushed(await write(scope, steps), change.replace or ())


async def replace_group(scope: Scope, raw_id: str, body: Any, *, if_match: str | None) -> asyncpg.Record:
    """PUT /Groups/{id} as `push_group`, for callers that only need the row (/Bulk)."""
    return (await push_group(scope, raw_id, body, if_match=if_match)).row


async def patch_group(scope: Scope, raw_id: str, body: Any, *, if_match: str | None) -> asyncpg.Record:
    """PATCH /Groups/{id}: member operations become set changes, the rest edit the resource."""
    operations = parse_patch_request(body)

    async def steps(tx: Transaction) -> asyncpg.Record:
        current = await _lock(tx, raw_id, if_match)
        resource, change = plan_group_patch(
            current["resource"], operations, max_member_ops=scope.settings.group_patch_max_member_ops
        )
        if change.is_empty and resource == current["resource"]:
            # Nothing to write, but a push all the same: an IdP re-sending the group's name (Okta's push of
            # an unchanged group) re-links it to a team made again with that name.
            return await _relink(tx, current)
        row = await store.update_group(tx.conn, scope.tenant_id, current["id"], resource)
        row = await _relink(tx, row)
        if change.is_empty:
            await tx.record(ResourceType.GROUP, row["id"], ChangeKind.UPDATE)
        else:
            await _apply_members(tx, row["id"], change)
        return row

    return await write(scope, steps)


async def delete_group(scope: Scope, raw_id: str, *, if_match: str | None) -> None:
    """DELETE /Groups/{id}: the group is gone from SCIM; its team and the team's members stay."""

    async def steps(tx: Transaction) -> None:
        current = await _lock(tx, raw_id, if_match)
        await store.delete_group(tx.conn, scope.tenant_id, current["id"])
        await tx.record(
            ResourceType.GROUP,
            current["id"],
            ChangeKind.UNLINK,
            # The name goes along for the worker's group.unlinked event: the group row is gone by then.
            {
                "team_id": current["team_id"] and str(current["team_id"]),
                "display_name": current["display_name"],
            },
        )

    await write(scope, steps)


GROUPS = Queryable(
    GROUP_RESOURCE, store.FILTER_COLUMNS, store.RESOURCE_COLUMN, store.STABLE_ORDER, rows=store.FILTER_ROWS
)


def group_filter_sql(filter_text: str | None, params: list[Any]) -> str:
    """The WHERE condition for a Group filter (TRUE when there is none); values go to `params`."""
    return where_sql(filter_text, GROUPS, params)


async def list_groups(
    scope: Scope,
    *,
    filter_text: str | None,
    start_index: int,
    count: int,
    sort: Sort | None = None,
    where: str | None = None,
    params: list[Any] | None = None,
) -> tuple[int, list[asyncpg.Record]]:
    """GET /Groups: one page of the tenant's groups matching the filter, in `sort` order, with the exact
    total. A caller that compiled the filter already passes `where` and its `params` (`$1` = tenant)."""
    if where is None or params is None:
        params = [scope.tenant_id]
        where = group_filter_sql(filter_text, params)
    ordering = order_for(sort, GROUPS)
    return await store.list_groups(
        scope.pool, where=where, params=params, offset=start_index - 1, limit=count, order_by=ordering
    )
