"""SQL for a SCIM DELETE without If-Match in one statement, one at a time or many at once (the batcher in
store/batches.py): each user unlinked and deactivated, taken out of every group's desired members (those
groups' versions bumped), with its own "delete" outbox row and request id.

A user's lock is taken only if nobody holds it (SKIP LOCKED): a group write that holds it (FOR KEY SHARE,
store/groups.py) may be adding the user to a group, which this statement's snapshot would not see once it
had waited. Such a user, like one the tenant has no linked user for, is skipped (no row, nothing written)
and its request takes the locked path, which waits and then reads the members afresh. A group write that
commits in the instant between this statement's snapshot and its lock is the one case left: the worker
takes that member out when it applies the delete (`groups.forget_unlinked_users`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple
from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind, ResourceType
from scimsvc.store import outbox
from scimsvc.store.batches import BATCH_LOCK_TIMEOUT, Batcher, in_batch_order, waits
from scimsvc.store.db import fetch_in_time

_CHANGES = outbox.insert_changes_from(
    "made m",
    ResourceType.USER,
    row="m",
    change=f"'{ChangeKind.DELETE.value}'",
    payload="jsonb_build_object('active', m.active)",
    request_id="m.request_id",
    where="in_time($4)",
    order_by="m.batch_row",
    returning="id, resource_id",
)


def _statement(*, lock_timeout: str | None) -> str:
    return f"""
WITH waits AS MATERIALIZED (
    {waits(lock_timeout)}
), v AS MATERIALIZED (
    SELECT v.* FROM waits, unnest($1::uuid[], $2::uuid[], $3::text[])
        WITH ORDINALITY AS v(tenant_id, id, request_id, n)
), locked AS MATERIALIZED (
    SELECT l.id FROM users l JOIN v ON l.tenant_id = v.tenant_id AND l.id = v.id
    WHERE l.scim_linked
    ORDER BY l.id
    FOR UPDATE OF l SKIP LOCKED
), u AS (
    UPDATE users AS u
    SET scim_linked = false, active = false, version = u.version + 1, updated_at = now(),
        provisioning_state = 'pending'
    FROM locked
    WHERE u.id = locked.id AND u.scim_linked
    RETURNING u.id, u.tenant_id, u.active
), gone AS (
    DELETE FROM group_members gm USING groups g, u
    WHERE g.tenant_id = u.tenant_id AND gm.group_id = g.id AND gm.user_id = u.id
    RETURNING gm.group_id
), bumped AS (
    UPDATE groups g SET version = g.version + 1, updated_at = now()
    WHERE g.id IN (SELECT group_id FROM gone)
), made AS (
    SELECT u.*, v.n AS batch_row, v.request_id FROM u JOIN v ON v.id = u.id
), change AS (
    {_CHANGES}
)
SELECT m.id, m.batch_row, change.id AS outbox_id FROM made m JOIN change ON change.resource_id = m.id
"""


DELETE_LINKED_USER = _statement(lock_timeout=None)
# A batch waits at most BATCH_LOCK_TIMEOUT for a lock (a group another transaction is writing), then fails
# with nothing written and its deletes go one by one (store/batches.py).
DELETE_LINKED_USERS = _statement(lock_timeout=BATCH_LOCK_TIMEOUT)


class UserDelete(NamedTuple):
    """The SCIM DELETE of a linked user of a tenant."""

    tenant_id: UUID
    user_id: UUID
    request_id: str | None


UserDeletes = Batcher[UserDelete, asyncpg.Record | None]


async def delete_linked_user(
    deletes: UserDeletes | asyncpg.Pool | asyncpg.Connection, delete: UserDelete
) -> asyncpg.Record | None:
    """The SCIM DELETE of a linked user and its outbox row, atomically; None (nothing written) if the
    tenant has no such linked user or another transaction holds it. Through `deletes` (`user_deletes`),
    deletes that arrive together go by one statement. The row carries `id` and `outbox_id`."""
    if isinstance(deletes, Batcher):
        return await deletes.submit(delete)
    return (await _run(deletes, DELETE_LINKED_USER, [delete]))[0]


async def _delete_one(pool: asyncpg.Pool, delete: UserDelete) -> asyncpg.Record | None:
    return (await _run(pool, DELETE_LINKED_USER, [delete]))[0]


async def _delete_many(pool: asyncpg.Pool, deletes: Sequence[UserDelete]) -> list[asyncpg.Record | None]:
    return await _run(pool, DELETE_LINKED_USERS, deletes)


async def _run(
    db: asyncpg.Pool | asyncpg.Connection, sql: str, deletes: Sequence[UserDelete]
) -> list[asyncpg.Record | None]:
    rows = await fetch_in_time(
        db, sql, [d.tenant_id for d in deletes], [d.user_id for d in deletes], [d.request_id for d in deletes]
    )
    return in_batch_order(rows, len(deletes))


def user_deletes(pool: asyncpg.Pool) -> UserDeletes:
    """A batcher of SCIM DELETEs into `pool` (one per pool: the app's)."""
    return Batcher(pool, one=_delete_one, many=_delete_many, key=lambda d: d.user_id, in_flight=2)
