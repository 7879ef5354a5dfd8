"""SQL for seats and licenses: the tenant lock that serializes allocation, the waiting list, license writes.

Who gets a seat is decided in scimsvc/product/seats.py and scimsvc/product/licenses.py; these statements
read what those rules need and write what they decided.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from scimsvc.store.by_key import of_tenant
from scimsvc.store.outbox import PENDING, pending_rows_of

# Holding the tenant row for the whole drain serializes every allocation of the tenant's seats,
# whatever the number of workers: no seat is ever handed out twice. NO KEY UPDATE, not UPDATE: the
# foreign-key checks of concurrent user and outbox inserts (KEY SHARE) must not wait for a drain.
# `domain_teams` comes along for the users the drain provisions (product/domain_teams.py). What seats are
# decided on is read after it (`SELECT_DRAIN_FIGURES`).
LOCK_TENANT_LICENSING = """
SELECT seats, flexible_licenses, default_license, fallback_license, domain_teams, scim_enabled
FROM tenants WHERE id = $1
FOR NO KEY UPDATE
"""
# Several tenants at once, for a drain of many (worker/user_drain.py:drain_tenants_at_once). It never waits:
# a tenant another transaction holds is skipped (SKIP LOCKED) and drained on its own afterwards.
LOCK_FREE_TENANTS_LICENSING = """
SELECT id AS tenant_id, seats, flexible_licenses, default_license, fallback_license, domain_teams,
       scim_enabled
FROM tenants WHERE id = ANY($1::uuid[])
ORDER BY id
FOR NO KEY UPDATE SKIP LOCKED
"""
# What seats are decided on, per tenant, read in a statement after the tenant's lock is held (a statement's
# snapshot is taken before it waits for or takes a lock, so one that locked would miss seats given out by
# the drain it followed): full seats used, whether anyone waits (the waiting list is read only then, and
# only as far as seats may free), and `now`, the clock of the waiting list (product/seats.py:waiting_since):
# after every place given out already, so users who join later queue later. Not the transaction's time: a
# drain that began before another one committed, then waited for the lock, would place its users (who
# arrived later) ahead of the other's.
SELECT_DRAIN_FIGURES = """
SELECT t.id AS tenant_id,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.license = 'full') AS used,
       w.last IS NOT NULL AS waiters,
       greatest(clock_timestamp(), w.last + interval '1 microsecond') AS now
FROM unnest($1::uuid[]) AS t(id)
CROSS JOIN LATERAL (
    SELECT max(u.waiting_since) AS last FROM users u WHERE u.tenant_id = t.id AND u.waiting_since IS NOT NULL
) AS w
"""
COUNT_FULL_EXCEPT = "SELECT count(*) FROM users WHERE tenant_id = $1 AND license = 'full' AND id <> $2"
# Full seats of the tenant's users but $2, and the license $2 will hold, once the operators' assignments
# still in the outbox are applied: a pending assignment (the newest per user) stands for the user's
# license. Assignments are made by hand and few; the outbox part reads the tenant's unapplied rows
# (store/outbox.py:PENDING).
COUNT_FULL_AFTER_ASSIGNMENTS = f"""
WITH pending AS (
    SELECT DISTINCT ON (payload->>'user_id')
           (payload->>'user_id')::uuid AS user_id, payload->>'license' AS license
    FROM outbox
    WHERE resource_type = 'tenant' AND resource_id = $1 AND change = $3 AND {PENDING}
    ORDER BY payload->>'user_id', id DESC
)
SELECT (SELECT count(*) FROM users
        WHERE tenant_id = $1 AND license = 'full' AND id <> $2
          AND id NOT IN (SELECT user_id FROM pending))
     + (SELECT count(*) FROM pending p JOIN users u ON u.id = p.user_id AND u.tenant_id = $1
        WHERE p.license = 'full' AND p.user_id <> $2) AS used,
       coalesce((SELECT ARRAY[license] FROM pending WHERE user_id = $2),
                (SELECT ARRAY[license] FROM users u WHERE u.id = $2 AND {of_tenant("u")})) AS own
"""
# Users of several tenants: ($1[i], $2[i]) is the i-th (tenant, user).
SELECT_USERS_LICENSING = f"""
SELECT u.tenant_id, u.id, u.active AND u.scim_linked AS eligible, u.resource->>'userType' AS user_type,
       u.license, u.waiting_since, u.user_name
FROM unnest($1::uuid[], $2::uuid[]) AS v(tenant_id, id)
JOIN users u ON u.id = v.id AND {of_tenant("u", "v.tenant_id")}
"""
# The waiting list, oldest first (users_tenant_waiting, 0002_licenses.sql).
SELECT_OLDEST_WAITING = """
SELECT id, waiting_since, license FROM users
WHERE tenant_id = $1 AND waiting_since IS NOT NULL AND active AND scim_linked AND id <> ALL($3::uuid[])
ORDER BY waiting_since, id
LIMIT $2
FOR UPDATE
"""
# One statement for many users: each one's license and place in the waiting list, as decided.
SET_LICENSES = """
UPDATE users u SET license = v.license, waiting_since = v.waiting_since
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS v(id, license, waiting_since)
WHERE u.id = v.id
"""
# After the tenant's license rules changed (worker/seats.py:follow_license_rules): a page of the tenant's
# SCIM-linked users after ($2, $3) in the order they were created (users_tenant_paging, 0001_init.sql),
# for product/seats.py:follow_rules to decide each one's license and waiting state.
SELECT_RULE_PAGE = """
SELECT id, active AND scim_linked AS eligible, resource->>'userType' AS user_type, license, waiting_since,
       created_at
FROM users
WHERE tenant_id = $1 AND scim_linked
  AND ($2::timestamptz IS NULL OR (created_at, id) > ($2::timestamptz, $3::uuid))
ORDER BY created_at, id
LIMIT $4
"""
# Which of these users have changes the worker has not applied yet.
SELECT_UNAPPLIED_USERS = f"""
SELECT DISTINCT r.resource_id FROM {pending_rows_of("(SELECT DISTINCT unnest($1::uuid[]))", "'user'", "id")}
"""
LICENSE_SUMMARY = """
SELECT t.seats,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.license = 'full') AS used,
       coalesce((SELECT array_agg(u.id ORDER BY u.waiting_since, u.id) FROM users u
                 WHERE u.tenant_id = t.id AND u.waiting_since IS NOT NULL AND u.active AND u.scim_linked),
                '{}') AS waiting
FROM tenants t WHERE t.id = $1
"""
SELECT_USER_IN_TENANT = f"""
SELECT id, license, active AND scim_linked AS eligible FROM users u WHERE u.id = $2 AND {of_tenant("u")}
FOR UPDATE
"""


async def lock_tenant_licensing(conn: asyncpg.Connection, tenant_id: UUID) -> asyncpg.Record | None:
    """The tenant's license settings and domain teams, locked until commit."""
    return await conn.fetchrow(LOCK_TENANT_LICENSING, tenant_id)


async def full_seats_used(conn: asyncpg.Connection, tenant_id: UUID, *, excluding: UUID) -> int:
    return await conn.fetchval(COUNT_FULL_EXCEPT, tenant_id, excluding)


async def seats_after_assignments(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, *, change: str
) -> tuple[int, str | None]:
    """Full seats held by other users than `user_id`, and the user's license, once the pending assignments
    (outbox rows of kind `change`) are applied; stable while the tenant lock is held."""
    row = await conn.fetchrow(COUNT_FULL_AFTER_ASSIGNMENTS, tenant_id, user_id, change)
    return row["used"], (row["own"] or [None])[0]


async def lock_free_tenants_licensing(
    conn: asyncpg.Connection, tenant_ids: list[UUID]
) -> list[asyncpg.Record]:
    """The license settings and domain teams (with `tenant_id`) of those tenants no other transaction holds,
    locked until commit, by id; the others are left out."""
    return await conn.fetch(LOCK_FREE_TENANTS_LICENSING, tenant_ids)


async def drain_figures(conn: asyncpg.Connection, tenant_ids: list[UUID]) -> dict[UUID, asyncpg.Record]:
    """Per tenant (locked by this transaction): full seats `used`, whether anyone `waiters`, and the waiting
    list's clock `now`; stable while the locks are held."""
    return {r["tenant_id"]: r for r in await conn.fetch(SELECT_DRAIN_FIGURES, tenant_ids)}


async def users_licensing(conn: asyncpg.Connection, users: list[tuple[UUID, UUID]]) -> list[asyncpg.Record]:
    """Licensing state (tenant_id, id, eligible, user_type, license, waiting_since, user_name) of these
    (tenant, user) pairs: a user of another tenant than the one it is given with is left out."""
    tenant_ids, user_ids = zip(*users, strict=True) if users else ((), ())
    return await conn.fetch(SELECT_USERS_LICENSING, list(tenant_ids), list(user_ids))


async def oldest_waiting(
    conn: asyncpg.Connection, tenant_id: UUID, *, limit: int, excluding: list[UUID]
) -> list[asyncpg.Record]:
    """The `limit` longest-waiting eligible users (id, waiting_since, license) but `excluding`, oldest
    first."""
    return await conn.fetch(SELECT_OLDEST_WAITING, tenant_id, limit, excluding)


async def set_licenses(
    conn: asyncpg.Connection, licensed: list[tuple[UUID, str | None, datetime | None]]
) -> None:
    """Record (user id, license, waiting since or None) for many users at once."""
    if licensed:
        ids, kinds, since = zip(*licensed, strict=True)
        await conn.execute(SET_LICENSES, list(ids), list(kinds), list(since))


async def license_summary(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(LICENSE_SUMMARY, tenant_id)


async def lock_user_in_tenant(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID
) -> asyncpg.Record | None:
    """The user's license and eligibility, the row locked until commit; None if not the tenant's."""
    return await conn.fetchrow(SELECT_USER_IN_TENANT, tenant_id, user_id)


async def rule_page(
    conn: asyncpg.Connection, tenant_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` SCIM-linked users of the tenant created after `after` ((created_at, id)), with their
    licensing state (id, eligible, user_type, license, waiting_since, created_at)."""
    created, user_id = after if after else (None, None)
    return await conn.fetch(SELECT_RULE_PAGE, tenant_id, created, user_id, limit)


async def unapplied_users(conn: asyncpg.Connection | asyncpg.Pool, user_ids: list[UUID]) -> set[UUID]:
    """Those of the users whose changes the worker has not applied yet."""
    if not user_ids:
        return set()
    return {r["resource_id"] for r in await conn.fetch(SELECT_UNAPPLIED_USERS, user_ids)}


# --- the seats page: bounded, indexed reads ---------------------------------------------------------

# Seats, seats used, the waiting list's length (users_tenant_full and users_tenant_waiting,
# 0002_licenses.sql).
SEAT_FIGURES = """
SELECT t.seats, t.flexible_licenses, t.default_license, t.fallback_license, t.scim_enabled,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.license = 'full') AS used,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.waiting_since IS NOT NULL
          AND u.active AND u.scim_linked) AS waiting
FROM tenants t WHERE t.id = $1
"""
# Whether licensing changes of the tenant ($2: change kinds) are still unapplied, and how the worker's last
# attempt failed (store/outbox.py:PENDING).
APPLYING_STATE = f"""
SELECT count(*) > 0 AS applying, coalesce(max(attempts), 0) AS attempts,
       (array_agg(last_error ORDER BY id DESC) FILTER (WHERE last_error IS NOT NULL))[1] AS last_error
FROM outbox
WHERE resource_type = 'tenant' AND resource_id = $1 AND {PENDING} AND change = ANY($2::text[])
"""
# What the seats page shows of a user: its name, userType (whether a change of it is still unapplied is
# `unapplied_users`, asked for the page's ids only).
_SEAT_USER = """
SELECT u.id, coalesce(u.display_name, u.user_name) AS name, u.user_name, u.active, u.license,
       u.waiting_since, u.created_at, u.resource->>'userType' AS user_type
FROM users u
"""
# A page of the waiting list after the place ($2, $3) = (waiting_since, id) (none: from the start), oldest
# first (users_tenant_waiting); the place stays a cursor when its user has left the list.
WAITING_PAGE = (
    _SEAT_USER
    + """
WHERE u.tenant_id = $1 AND u.waiting_since IS NOT NULL AND u.active AND u.scim_linked
  AND ($2::timestamptz IS NULL OR (u.waiting_since, u.id) > ($2::timestamptz, $3::uuid))
ORDER BY u.waiting_since, u.id
LIMIT $4
"""
)
# How many wait before the page that starts after the place ($2, $3): its first position is this + 1.
WAITING_BEFORE = """
SELECT count(*) FROM users u
WHERE u.tenant_id = $1 AND u.waiting_since IS NOT NULL AND u.active AND u.scim_linked
  AND (u.waiting_since, u.id) <= ($2::timestamptz, $3::uuid)
"""
# A page of the active users who hold no full seat and do not wait, after ($2, $3) = (created_at, id), in
# the order they were created (users_tenant_without_seat, the partial index of migration 0023).
WITHOUT_SEAT_PAGE = (
    _SEAT_USER
    + """
WHERE u.tenant_id = $1 AND u.scim_linked AND u.active AND u.waiting_since IS NULL
  AND u.license IS DISTINCT FROM 'full'
  AND ($2::timestamptz IS NULL OR (u.created_at, u.id) > ($2::timestamptz, $3::uuid))
ORDER BY u.created_at, u.id
LIMIT $4
"""
)


Place = tuple[datetime, UUID]  # a page cursor: the (time, id) a page starts after


async def seat_figures(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> asyncpg.Record | None:
    """Seats, used, waiting and the license rules of the tenant."""
    return await conn.fetchrow(SEAT_FIGURES, tenant_id)


async def applying_state(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, *, changes: list[str]
) -> asyncpg.Record:
    """(applying, attempts, last_error) of the tenant's unapplied changes of kinds `changes`."""
    row: asyncpg.Record = await conn.fetchrow(APPLYING_STATE, tenant_id, changes)
    return row


async def waiting_page(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, *, after: Place | None, limit: int
) -> tuple[int, list[asyncpg.Record]]:
    """How many wait before the page, and the page of the waiting list after the place `after`."""
    since, user_id = after if after else (None, None)
    before = await conn.fetchval(WAITING_BEFORE, tenant_id, since, user_id) if after else 0
    return before, await conn.fetch(WAITING_PAGE, tenant_id, since, user_id, limit)


async def without_seat_page(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, *, after: Place | None, limit: int
) -> list[asyncpg.Record]:
    """A page of the active users who hold no full seat and are not waiting, after the place `after`."""
    created, user_id = after if after else (None, None)
    return await conn.fetch(WITHOUT_SEAT_PAGE, tenant_id, created, user_id, limit)


# A waiting user's place on the waiting list (1 = next seat), in its order (users_tenant_waiting).
SELECT_WAITING_PLACE = f"""
SELECT count(*) + 1 FROM users w, users u
WHERE u.id = $2 AND {of_tenant("u")} AND u.waiting_since IS NOT NULL
  AND w.tenant_id = $1 AND w.waiting_since IS NOT NULL AND w.active AND w.scim_linked
  AND (w.waiting_since, w.id) < (u.waiting_since, u.id)
"""


async def waiting_place(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, user_id: UUID) -> int:
    """The user's place on the tenant's waiting list (1 = next seat); meaningful only for a waiting user."""
    place: int = await conn.fetchval(SELECT_WAITING_PLACE, tenant_id, user_id)
    return place
