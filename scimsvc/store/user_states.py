"""SQL for the state the worker applies to users: license, place on the waiting list, provisioning state.

The worker records here what it applied to a batch of users (worker/user_drain.py, with the seats
worker/seats.py decided); a SCIM write only sets a user back to 'pending' (store/users.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

# The worker records a batch's applied state in one statement (one new row version per user): each user's
# license, its place on the waiting list (as scimsvc/product/seats.py:waiting_since decided it) and its
# provisioning state. `provisioned_at` is the first time the worker provisioned the user (active and linked):
# later updates keep it, and a user only ever deprovisioned has none. The columns are parameters `first`,
# `first + 1` and `first + 2`: with events on, the statement that records the batch's events holds this
# one (store/events.py:RECORD_EVENTS_APPLYING_STATES) and takes the snapshots from what it returns.
States = Sequence[tuple[UUID, str | None, datetime | None]]


def apply_states(first: int, returning: str = "") -> str:
    """SQL: the UPDATE of a batch's applied states, its columns from parameter `first` on, returning
    `returning` (of the updated user `u`) if given."""
    returned = f" RETURNING {returning}" if returning else ""
    return f"""UPDATE users u SET
    license = st.license,
    waiting_since = st.waiting_since,
    provisioning_state = CASE WHEN u.active AND u.scim_linked THEN 'provisioned' ELSE 'deprovisioned' END,
    provisioned_at = CASE
        WHEN u.active AND u.scim_linked THEN coalesce(u.provisioned_at, now()) ELSE u.provisioned_at
    END
FROM unnest(${first}::uuid[], ${first + 1}::text[], ${first + 2}::timestamptz[])
    AS st(id, license, waiting_since)
WHERE u.id = st.id{returned}"""


APPLY_USER_STATES = apply_states(1)


def states_args(applied: States) -> tuple[list[Any], ...]:
    """The three columns of (user id, license, waiting since or None) rows, for `apply_states`."""
    ids, kinds, since = (list(column) for column in zip(*applied, strict=True))
    return ids, kinds, since


async def apply_user_states(conn: asyncpg.Connection, applied: States) -> None:
    """Record (user id, license, waiting since or None) and the provisioning state of many users."""
    if applied:
        await conn.execute(APPLY_USER_STATES, *states_args(applied))
