"""Group jobs: the linked team's membership follows the group's outbox rows, in commit order."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind
from scimsvc.store import teams

MEMBER_CHANGES = (ChangeKind.LINK, ChangeKind.MEMBERS)


async def apply_group_changes(conn: asyncpg.Connection, group_id: UUID, rows: list[asyncpg.Record]) -> None:
    """Apply a run of one group's outbox rows (oldest first) to its linked team.

    A push makes the team exactly the group's current desired members, which already include every later
    incremental change in the run, so one push settles the whole run; otherwise each row adds and removes
    exactly the users it names. Either way re-running changes nothing. A group that was deleted, or whose
    team was deleted, applies nothing; licenses are never touched.
    """
    link = await teams.linked_team(conn, group_id)
    if link is None:
        return
    tenant_id, team_id = link["tenant_id"], link["team_id"]
    if any(r["change"] == ChangeKind.PUSH for r in rows):
        await teams.push_to_team(conn, tenant_id, team_id, group_id)
        return
    for row in rows:
        if row["change"] not in MEMBER_CHANGES:
            continue
        payload = row["payload"]
        await teams.remove_from_team(conn, tenant_id, team_id, payload.get("remove", []))
        await teams.add_to_team(conn, tenant_id, team_id, group_id, payload.get("add", []))
