"""Group jobs: the linked team's membership follows the group's outbox rows, in commit order.

What changed comes back as events (README.md, What happened): the group linked or unlinked, and each user
who actually joined or left the team; worker/jobs.py records them in the same transaction.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind
from scimsvc.product.events import EventType, NewEvent
from scimsvc.store import teams

MEMBER_CHANGES = (ChangeKind.LINK, ChangeKind.MEMBERS)


async def apply_group_changes(
    conn: asyncpg.Connection, group_id: UUID, rows: list[asyncpg.Record]
) -> list[NewEvent]:
    """Apply a run of one group's outbox rows (oldest first) to its linked team; returns its events.

    A push makes the team exactly the group's current desired members, which already include every later
    incremental change in the run, so one push settles the whole run; otherwise each row adds and removes
    exactly the users it names (a re-link's LINK row adds every member of the group). Either way
    re-running changes nothing. A group that was deleted, or whose team was deleted, applies nothing;
    licenses are never touched.
    """
    link = await teams.linked_team(conn, group_id)
    if link is None:
        return await _unlinked_only(conn, group_id, rows)
    tenant_id, team_id = link["tenant_id"], link["team_id"]
    group = {"id": str(group_id), "displayName": link["display_name"]}
    team = {"id": str(team_id), "name": link["team_name"]}
    events = [
        NewEvent(EventType.GROUP_LINKED, {"group": group, "team": team}, request_id=r["request_id"])
        for r in rows
        if r["change"] == ChangeKind.LINK
    ]
    pushes = [r for r in rows if r["change"] == ChangeKind.PUSH]
    if pushes:
        removed, added = await teams.push_to_team(conn, tenant_id, team_id, group_id)
        return events + _members(team, removed, added, pushes[-1]["request_id"])
    for row in rows:
        if row["change"] not in MEMBER_CHANGES:
            continue
        payload = row["payload"]
        if payload.get("relink"):
            # A re-link (services/groups.py:record_link): the group's members as they now are join the
            # team; nobody leaves, as on a first sync.
            events += _members(
                team, [], await teams.add_group_to_team(conn, tenant_id, team_id, group_id), row["request_id"]
            )
            continue
        removed = await teams.remove_from_team(conn, tenant_id, team_id, payload.get("remove", []))
        added = await teams.add_to_team(conn, tenant_id, team_id, group_id, payload.get("add", []))
        events += _members(team, removed, added, row["request_id"])
    return events


def _members(
    team: dict[str, Any], removed: list[UUID], added: list[UUID], request_id: str | None
) -> list[NewEvent]:
    # One `data` for all of them: a push of 50,000 members makes 50,000 events, whose data is written once
    # (store/events.py:record_args).
    data = {"team": team}
    left = EventType.TEAM_MEMBER_REMOVED
    joined = EventType.TEAM_MEMBER_ADDED
    return [NewEvent(left, data, u, request_id) for u in removed] + [
        NewEvent(joined, data, u, request_id) for u in added
    ]


async def _unlinked_only(
    conn: asyncpg.Connection, group_id: UUID, rows: list[asyncpg.Record]
) -> list[NewEvent]:
    # The group was deleted (or its team was): no member changes apply, but a link made and undone is told.
    # Only the unlink row knows the team and the group's name now (services/groups.py:delete_group).
    unlink = next((r for r in rows if r["change"] == ChangeKind.UNLINK), None)
    if unlink is None:
        return []
    payload = unlink["payload"]
    team_id = UUID(payload["team_id"]) if payload.get("team_id") else None
    names = await teams.team_names(conn, unlink["tenant_id"], [team_id] if team_id else [])
    group = {"id": str(group_id), "displayName": payload.get("display_name")}
    team = {"id": str(team_id), "name": names.get(team_id)} if team_id else None
    kinds = {ChangeKind.LINK: EventType.GROUP_LINKED, ChangeKind.UNLINK: EventType.GROUP_UNLINKED}
    return [
        NewEvent(kinds[ChangeKind(r["change"])], {"group": group, "team": team}, request_id=r["request_id"])
        for r in rows
        # A link to a team deleted since is not told; the group's deletion always is.
        if r["change"] == ChangeKind.UNLINK or (r["change"] == ChangeKind.LINK and team is not None)
    ]
