"""SQL for the PUTs and PATCHes that change neither userName nor manager: the user's new state and its
outbox row in one statement, one at a time or many at once (the batcher in store/batches.py).

Four kinds, each saved only while the user is as the request expects, else nothing is written (no row,
no outbox row) and the caller takes the locked path (or, for `texts`, the read path):
- `read`: a resource built on the user as read at `version` (a PATCH, a PUT with If-Match);
- `put`: a PUT's whole resource, while the user still has its userName (no read: `active` left out keeps
  the stored value);
- `active`: a PATCH that only sets `active`, while the user has another value and no manager (no read:
  the stored resource with `active` set, as applying the PATCH to it gives);
- `texts`: a PATCH that only sets single text attributes (`resource` holds them, nested as stored), while
  the user has no manager and the values change something (no read: the stored resource, with `active`
  as the read path puts it, and each value set, as applying the PATCH to it gives).
The outbox row's change is picked in SQL between two kinds the caller computed (`scim.users.change_kind`
for a user that was active and one that was not), from the user as locked. The merges of `put`,
`active` and `texts` are what services/users.py's `build` makes of the stored user (for a user stored as
validation stores it: an unread kind checks what the request sets, never the rest):
tests/test_user_write_batches.py checks that the two paths save the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple
from uuid import UUID

import asyncpg

from schemas.user import ENTERPRISE_SCHEMA
from scimsvc.contract import ResourceType
from scimsvc.store import outbox
from scimsvc.store.batches import BATCH_LOCK_TIMEOUT, Batcher, in_batch_order, waits
from scimsvc.store.db import fetch_in_time
from scimsvc.store.users import USER_COLUMNS

Kind = Literal["read", "put", "active", "texts"]

_CHANGES = outbox.insert_changes_from(
    "made m",
    ResourceType.USER,
    row="m",
    change="m.change",
    payload="jsonb_build_object('active', m.active)",
    request_id="m.request_id",
    where="in_time($13)",
    order_by="m.batch_row",
    returning="id, resource_id",
)


# The stored resource as services/users.py's `build` starts from it (`active` there whenever it is stored or
# false), and that with the `texts` kind's values set: each attribute, and each sub-attribute of an object
# (name, an extension) beside the ones stored (an object in place of anything else, as apply_patch does).
_AS_READ = """(u.resource || CASE WHEN u.resource ? 'active' OR NOT u.active
                               THEN jsonb_build_object('active', u.active) ELSE '{}' END)"""
_WITH_TEXTS = f"""{_AS_READ} || (
    SELECT jsonb_object_agg(
        t.key,
        CASE WHEN jsonb_typeof(t.value) <> 'object' THEN t.value
             WHEN jsonb_typeof(u.resource -> t.key) = 'object' THEN (u.resource -> t.key) || t.value
             ELSE t.value END)
    FROM jsonb_each(v.resource) AS t)"""
_NO_MANAGER = f"u.resource -> '{ENTERPRISE_SCHEMA}' -> 'manager' ->> 'value' IS NULL"


def _statement(*, lock_timeout: str | None) -> str:
    # Users are locked in id order, so two front ends' batches that meet wait for each other in one order.
    return f"""
WITH waits AS MATERIALIZED (
    {waits(lock_timeout)}
), v AS MATERIALIZED (
    SELECT v.*
    FROM waits, unnest(
        $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::jsonb[],
        $9::bigint[], $10::text[], $11::text[], $12::text[]
    ) WITH ORDINALITY AS v(
        tenant_id, id, kind, user_name, external_id, display_name, active, resource, version,
        change_if_active, change_if_inactive, request_id, n
    )
), locked AS MATERIALIZED (
    SELECT u.id, u.active AS was_active
    FROM users u JOIN v ON u.tenant_id = v.tenant_id AND u.id = v.id
    WHERE u.scim_linked
      AND CASE v.kind
          WHEN 'read' THEN u.version = v.version
          WHEN 'put' THEN u.user_name = v.user_name
          WHEN 'texts' THEN {_NO_MANAGER} AND {_WITH_TEXTS} IS DISTINCT FROM {_AS_READ}
          ELSE u.active <> v.active AND {_NO_MANAGER}
      END
    ORDER BY u.id
    FOR NO KEY UPDATE OF u
), u AS (
    UPDATE users AS u
    SET user_name = CASE WHEN v.kind IN ('active', 'texts') THEN u.user_name ELSE v.user_name END,
        external_id = CASE WHEN v.kind IN ('active', 'texts') THEN u.external_id ELSE v.external_id END,
        display_name = CASE WHEN v.kind = 'active' THEN u.display_name
                            WHEN v.kind = 'texts' THEN coalesce(v.display_name, u.display_name)
                            ELSE v.display_name END,
        active = coalesce(v.active, u.active),
        resource = CASE
            WHEN v.kind = 'active' THEN u.resource || jsonb_build_object('active', v.active)
            WHEN v.kind = 'texts' THEN {_WITH_TEXTS}
            WHEN v.active IS NULL THEN v.resource || jsonb_build_object('active', u.active)
            ELSE v.resource
        END,
        version = u.version + 1, updated_at = now(), provisioning_state = 'pending'
    FROM v, locked
    WHERE u.id = locked.id AND u.id = v.id AND u.tenant_id = v.tenant_id
    RETURNING {USER_COLUMNS}
), made AS (
    SELECT u.*, v.n AS batch_row, v.request_id,
           CASE WHEN locked.was_active THEN v.change_if_active ELSE v.change_if_inactive END AS change
    FROM u JOIN v ON v.id = u.id JOIN locked ON locked.id = u.id
), change AS (
    {_CHANGES}
)
SELECT m.*, change.id AS outbox_id FROM made m JOIN change ON change.resource_id = m.id
"""


# One update: a lock is waited for as long as any other statement's.
UPDATE_USER_AS_EXPECTED = _statement(lock_timeout=None)
# Many: a batch waits at most BATCH_LOCK_TIMEOUT for a row lock (a user another transaction is writing),
# then fails with nothing written and its updates go one by one (store/batches.py).
UPDATE_USERS_AS_EXPECTED = _statement(lock_timeout=BATCH_LOCK_TIMEOUT)


class UserUpdate(NamedTuple):
    """A user's new state, saved only while the user is as `kind` expects (see the module's docstring)."""

    tenant_id: UUID
    user_id: UUID
    kind: Kind
    resource: dict[str, Any] | None  # None for `active`
    active: bool | None  # None: keep the stored value
    version: int | None  # for `read`
    change_if_active: str  # the outbox row's change if the user was active, and if it was not
    change_if_inactive: str
    request_id: str | None


UserUpdates = Batcher[UserUpdate, asyncpg.Record | None]


async def update_user(
    updates: UserUpdates | asyncpg.Pool | asyncpg.Connection, update: UserUpdate
) -> asyncpg.Record | None:
    """Save the update and its outbox row, atomically; None (nothing written) if the user is not as it
    expects. Through `updates` (`user_updates`), updates that arrive together go by one statement. The row
    carries `outbox_id`."""
    if isinstance(updates, Batcher):
        return await updates.submit(update)
    return (await _run(updates, UPDATE_USER_AS_EXPECTED, [update]))[0]


async def _update_one(pool: asyncpg.Pool, update: UserUpdate) -> asyncpg.Record | None:
    return (await _run(pool, UPDATE_USER_AS_EXPECTED, [update]))[0]


async def _update_many(pool: asyncpg.Pool, updates: Sequence[UserUpdate]) -> list[asyncpg.Record | None]:
    return await _run(pool, UPDATE_USERS_AS_EXPECTED, updates)


async def _run(
    db: asyncpg.Pool | asyncpg.Connection, sql: str, updates: Sequence[UserUpdate]
) -> list[asyncpg.Record | None]:
    resources = [u.resource or {} for u in updates]
    rows = await fetch_in_time(
        db,
        sql,
        [u.tenant_id for u in updates],
        [u.user_id for u in updates],
        [u.kind for u in updates],
        [r.get("userName") for r in resources],
        [r.get("externalId") for r in resources],
        [r.get("displayName") for r in resources],
        [u.active for u in updates],
        [u.resource for u in updates],
        [u.version for u in updates],
        [u.change_if_active for u in updates],
        [u.change_if_inactive for u in updates],
        [u.request_id for u in updates],
    )
    return in_batch_order(rows, len(updates))


def user_updates(pool: asyncpg.Pool) -> UserUpdates:
    """A batcher of user updates into `pool` (one per pool: the app's)."""
    return Batcher(
        pool,
        one=_update_one,
        many=_update_many,
        # A user is in one batch at a time: a second update of it waits for the first (and then finds the
        # user changed, or not as it expects, and takes the locked path if it must).
        key=lambda update: update.user_id,
        in_flight=2,
    )
