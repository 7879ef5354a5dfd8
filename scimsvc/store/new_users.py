"""SQL for new users from a POST: a user with a new userName and its "create" outbox row, one at a time
or many in one statement (the batcher in store/batches.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind, ResourceType
from scimsvc.store import outbox
from scimsvc.store.batches import BATCH_LOCK_TIMEOUT, Batcher, in_batch_order, waits
from scimsvc.store.db import fetch_in_time
from scimsvc.store.users import USER_COLUMNS, resource_columns, with_outbox

CREATE = f"'{ChangeKind.CREATE.value}'"  # the change of a new user's outbox row, as SQL
# A new userName is one statement: the user and its "create" outbox row commit together without an explicit
# transaction (a statement is atomic), saving the BEGIN, lock and COMMIT round trips. A taken userName,
# linked or not, inserts nothing and returns no row.
INSERT_NEW_USER = with_outbox(
    """INSERT INTO users AS u (tenant_id, user_name, external_id, display_name, active, resource)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (tenant_id, lower(user_name)) DO NOTHING""",
    change=CREATE,
    request_id="$7",
    write_by="$8",
)
# INSERT_NEW_USER for many users at once (store/batches.py): each user with its own "create" outbox row,
# a taken userName skipped. Ids are drawn first, so each row written maps back to its own place in the
# arrays (`batch_row`, 1-based). Users go in by name, and one name's spellings in arrival order: two batches
# that meet on names wait for each other in one order, and the first request of a name is the one created.
_NEW_USER_CHANGES = outbox.insert_changes_from(
    "made m",
    ResourceType.USER,
    row="m",
    change=CREATE,
    payload="jsonb_build_object('active', m.active)",
    request_id="m.request_id",
    where="in_time($8)",
    order_by="m.batch_row",
    returning="id, resource_id",
)
INSERT_NEW_USERS = f"""
WITH waits AS MATERIALIZED (
    {waits(BATCH_LOCK_TIMEOUT)}
), v AS MATERIALIZED (
    SELECT uuid_v7() AS id, v.*
    FROM waits, unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::jsonb[], $7::text[])
        WITH ORDINALITY AS v(tenant_id, user_name, external_id, display_name, active, resource, request_id, n)
), u AS (
    INSERT INTO users AS u (id, tenant_id, user_name, external_id, display_name, active, resource)
    SELECT v.id, v.tenant_id, v.user_name, v.external_id, v.display_name, v.active, v.resource
    FROM v ORDER BY v.tenant_id, lower(v.user_name), v.n
    ON CONFLICT (tenant_id, lower(user_name)) DO NOTHING
    RETURNING {USER_COLUMNS}
), made AS (
    SELECT u.*, v.n AS batch_row, v.request_id FROM u JOIN v ON v.id = u.id
), change AS (
    {_NEW_USER_CHANGES}
)
SELECT m.*, change.id AS outbox_id FROM made m JOIN change ON change.resource_id = m.id
"""


class NewUser(NamedTuple):
    """A POSTed user with a new userName, as `insert_new_user` writes it."""

    tenant_id: UUID
    resource: dict[str, Any]
    request_id: str | None


NewUserInserts = Batcher[NewUser, asyncpg.Record | None]


async def insert_new_user(
    inserts: NewUserInserts | asyncpg.Pool,
    tenant_id: UUID,
    resource: dict[str, Any],
    *,
    request_id: str | None,
) -> asyncpg.Record | None:
    """Insert a user and its "create" outbox row, atomically; None (nothing written) if the name is taken.

    Through `inserts` (`new_user_inserts`), users that arrive together go in by one statement. The row
    carries `outbox_id`, the outbox row to wake the worker for.
    """
    user = NewUser(tenant_id, resource, request_id)
    if isinstance(inserts, asyncpg.Pool):
        return await _insert_one(inserts, user)
    return await inserts.submit(user)


async def _insert_one(pool: asyncpg.Pool, user: NewUser) -> asyncpg.Record | None:
    rows = await fetch_in_time(
        pool, INSERT_NEW_USER, user.tenant_id, *resource_columns(user.resource), user.request_id
    )
    return rows[0] if rows else None


async def _insert_many(pool: asyncpg.Pool, users: Sequence[NewUser]) -> list[asyncpg.Record | None]:
    columns = zip(*(resource_columns(user.resource) for user in users), strict=True)
    rows = await fetch_in_time(
        pool,
        INSERT_NEW_USERS,
        [user.tenant_id for user in users],
        *columns,
        [user.request_id for user in users],
    )
    return in_batch_order(rows, len(users))


def new_user_inserts(pool: asyncpg.Pool) -> NewUserInserts:
    """A batcher of new-user inserts into `pool` (one per pool: the app's)."""
    return Batcher(
        pool,
        one=_insert_one,
        many=_insert_many,
        # A name is in one batch at a time: a second POST of it (an IdP's retry) waits for the first.
        key=lambda user: (user.tenant_id, user.resource["userName"].lower()),
        # A second batch beside one waiting for a lock (up to BATCH_LOCK_TIMEOUT): that one does not stop
        # every POST of this process for longer than OVERLAP_AFTER.
        in_flight=2,
    )
