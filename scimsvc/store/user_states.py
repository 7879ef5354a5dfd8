"""SQL for the state the worker applies to users: license, place on the waiting list, provisioning state.

The worker records here what it applied to a batch of users (worker/user_drain.py, with the seats
worker/seats.py decided); a SCIM write only sets a user back to 'pending' (store/users.py).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

# The worker records a batch's applied state in one statement (one new row version per user): each user's
# license, its place on the waiting list (as scimsvc/product/seats.py:waiting_since decided it) and its
# provisioning state. `provisioned_at` is the first time the worker provisioned the user (active and linked):
# later updates keep it, and a user only ever deprovisioned has none.
APPLY_USER_STATES = """
UPDATE users u SET
    license = v.license,
    waiting_since = v.waiting_since,
    provisioning_state = CASE WHEN u.active AND u.scim_linked THEN 'provisioned' ELSE 'deprovisioned' END,
    provisioned_at = CASE
        WHEN u.active AND u.scim_linked THEN coalesce(u.provisioned_at, now()) ELSE u.provisioned_at
    END
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS v(id, license, waiting_since)
WHERE u.id = v.id
RETURNING u.id, u.provisioning_state = 'provisioned' AS provisioned
"""


async def apply_user_states(
    conn: asyncpg.Connection, applied: list[tuple[UUID, str | None, datetime | None]]
) -> list[UUID]:
    """Record (user id, license, waiting since or None) and the provisioning state of many users; returns
    those now provisioned (active and linked), in the order given."""
    if not applied:
        return []
    ids, kinds, since = (list(column) for column in zip(*applied, strict=True))
    rows = await conn.fetch(APPLY_USER_STATES, ids, kinds, since)
    provisioned = {r["id"] for r in rows if r["provisioned"]}
    return [user_id for user_id in ids if user_id in provisioned]
