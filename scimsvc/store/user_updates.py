"""SQL for a PUT or PATCH built on a user as read: its new resource and its outbox row, saved if the user
is still at the version read, one at a time or many in one statement (the batcher in store/batches.py).

`UPDATE_READ_USER` (store/users.py) is the single-row statement; `UPDATE_READ_USERS` does the same for
the updates that arrive together, each user with its own outbox row, change kind and request id, and
each skipped (no row, no outbox row) when it is no longer at the version its update was built on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from scimsvc.contract import ResourceType
from scimsvc.store import outbox
from scimsvc.store.batches import Batcher
from scimsvc.store.db import fetch_in_time
from scimsvc.store.new_users import BATCH_LOCK_TIMEOUT
from scimsvc.store.users import UPDATE_READ_USER, USER_COLUMNS, resource_columns

_CHANGES = outbox.insert_changes_from(
    "made m",
    ResourceType.USER,
    row="m",
    change="m.change",
    payload="jsonb_build_object('active', m.active)",
    request_id="m.request_id",
    where="in_time($11)",
    order_by="m.batch_row",
    returning="id, resource_id",
)
# Users are locked in id order, so two front ends' batches that meet wait for each other in one order;
# a batch waits at most BATCH_LOCK_TIMEOUT for a row lock (a user another transaction is writing), then
# fails with nothing written and its updates go one by one (store/batches.py).
UPDATE_READ_USERS = f"""
WITH waits AS MATERIALIZED (
    SELECT set_config('lock_timeout', '{BATCH_LOCK_TIMEOUT}', true)
), v AS MATERIALIZED (
    SELECT v.*
    FROM waits, unnest(
        $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::jsonb[],
        $8::bigint[], $9::text[], $10::text[]
    ) WITH ORDINALITY AS v(
        tenant_id, id, user_name, external_id, display_name, active, resource, version, change, request_id, n
    )
), locked AS MATERIALIZED (
    SELECT u.id FROM users u JOIN v ON u.tenant_id = v.tenant_id AND u.id = v.id
    WHERE u.version = v.version AND u.scim_linked
    ORDER BY u.id
    FOR NO KEY UPDATE OF u
), u AS (
    UPDATE users AS u
    SET user_name = v.user_name, external_id = v.external_id, display_name = v.display_name,
        active = v.active, resource = v.resource, version = u.version + 1, updated_at = now(),
        provisioning_state = 'pending'
    FROM v, locked
    WHERE u.id = locked.id AND u.id = v.id AND u.tenant_id = v.tenant_id AND u.version = v.version
      AND u.scim_linked
    RETURNING {USER_COLUMNS}
), made AS (
    SELECT u.*, v.n AS batch_row, v.change, v.request_id FROM u JOIN v ON v.id = u.id
), change AS (
    {_CHANGES}
)
SELECT m.*, change.id AS outbox_id FROM made m JOIN change ON change.resource_id = m.id
"""


class ReadUpdate(NamedTuple):
    """A user's new resource, built on the user as read at `version`, and the change it makes."""

    tenant_id: UUID
    user_id: UUID
    resource: dict[str, Any]
    version: int
    change: str
    request_id: str | None


UserUpdates = Batcher[ReadUpdate, asyncpg.Record | None]


async def update_read_user(
    updates: UserUpdates | asyncpg.Pool | asyncpg.Connection, update: ReadUpdate
) -> asyncpg.Record | None:
    """Save a linked user read at `update.version` and its outbox row, atomically; None (nothing written)
    if the user has changed since. Through `updates` (`user_updates`), updates that arrive together go
    by one statement. The row carries `outbox_id`."""
    if isinstance(updates, Batcher):
        return await updates.submit(update)
    return await _update_one(updates, update)


async def _update_one(db: asyncpg.Pool | asyncpg.Connection, update: ReadUpdate) -> asyncpg.Record | None:
    rows = await fetch_in_time(
        db,
        UPDATE_READ_USER,
        update.tenant_id,
        update.user_id,
        *resource_columns(update.resource),
        update.version,
        update.change,
        update.request_id,
    )
    return rows[0] if rows else None


async def _update_many(pool: asyncpg.Pool, updates: Sequence[ReadUpdate]) -> list[asyncpg.Record | None]:
    columns = zip(*(resource_columns(u.resource) for u in updates), strict=True)
    rows = await fetch_in_time(
        pool,
        UPDATE_READ_USERS,
        [u.tenant_id for u in updates],
        [u.user_id for u in updates],
        *columns,
        [u.version for u in updates],
        [u.change for u in updates],
        [u.request_id for u in updates],
    )
    made = {row["batch_row"]: row for row in rows}
    return [made.get(n) for n in range(1, len(updates) + 1)]


def user_updates(pool: asyncpg.Pool) -> UserUpdates:
    """A batcher of read-then-saved user updates into `pool` (one per pool: the app's)."""
    return Batcher(
        pool,
        one=_update_one,
        many=_update_many,
        # A user is in one batch at a time: a second update of it waits for the first (and, built on the
        # same version, then finds it changed and takes the locked path).
        key=lambda update: update.user_id,
        in_flight=2,
    )
