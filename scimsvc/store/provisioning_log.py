"""SQL for the provisioning log: rows written in batches by the web front end, read newest first, and what
the rows' requests led to (their outbox rows and audit rows)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg
import orjson

from scimsvc.store.by_key import of_tenant
from scimsvc.store.events import told_data


class LogEntry(NamedTuple):
    """One SCIM request of a tenant as its log row holds it (never a token, never the body). A tuple, and
    `at` in seconds since the epoch (`time.time()`): made on every SCIM request, it must be cheap."""

    tenant_id: UUID
    at: float
    request_id: str
    idp: str
    method: str
    endpoint: str
    resource_type: str | None
    resource_id: UUID | None
    user_name: str | None
    summary: str
    status: int
    scim_type: str | None
    detail: str | None
    duration_ms: float
    outbox_ids: tuple[int, ...] = ()
    reason: str | None = None  # scim/errors.py:Reason of a refusal


# One statement for a whole batch, the rows as one JSON array of arrays (a `LogEntry` each, by position):
# asyncpg encodes fifteen arrays element by element (~0.65 µs an element, ~10 µs a row, on the web
# process's event loop), orjson the whole batch at ~1 µs a row. The log has no foreign key (a lookup and
# a lock a row): the statement locks the batch's tenants once each (`live`, KEY SHARE, as a foreign key
# would), so a tenant's deletion waits for a batch naming it and then removes its rows by trigger
# (migration 0039), and a batch that meets a deletion waits for it and skips that tenant's rows and counts
# (a tenant already gone is not found at all): the other tenants' rows are written.
# The same statement adds the batch's counts per tenant and minute ($2, `minute_counts`) to
# tenant_request_minutes, so the per-organization figures (store/tenant_stats.py) read a row per minute
# instead of every logged request, and the log and its counts commit together. The counts come sorted by
# (minute, tenant), so two web processes upserting the same rows lock them in one order (never a deadlock).
INSERT_ENTRIES = """
WITH live AS (
    SELECT id FROM tenants
    WHERE id IN (SELECT (c ->> 0)::uuid FROM jsonb_array_elements($2::text::jsonb) AS w(c))
    ORDER BY id
    FOR KEY SHARE
), logged AS (
    INSERT INTO provisioning_log (tenant_id, at, request_id, idp, method, endpoint, resource_type,
                                  resource_id, user_name, summary, status, scim_type, detail, duration_ms,
                                  outbox_ids, reason)
    SELECT (r ->> 0)::uuid, to_timestamp((r ->> 1)::float8), r ->> 2, r ->> 3, r ->> 4, r ->> 5, r ->> 6,
           (r ->> 7)::uuid, r ->> 8, r ->> 9, (r ->> 10)::smallint, r ->> 11, r ->> 12, (r ->> 13)::real,
           CASE WHEN r -> 14 = '[]' THEN '{}'::bigint[]
                ELSE ARRAY(SELECT jsonb_array_elements_text(r -> 14)::bigint) END,
           r ->> 15
    FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS v(r, n)
    JOIN live t ON t.id = (r ->> 0)::uuid
    ORDER BY v.n
    RETURNING 1
), counted AS (
    INSERT INTO tenant_request_minutes AS m (tenant_id, minute, requests, rate_limited, server_errors)
    SELECT (c ->> 0)::uuid, to_timestamp((c ->> 1)::float8), (c ->> 2)::int, (c ->> 3)::int, (c ->> 4)::int
    FROM jsonb_array_elements($2::text::jsonb) WITH ORDINALITY AS w(c, n)
    JOIN live t ON t.id = (c ->> 0)::uuid
    ORDER BY w.n
    ON CONFLICT (tenant_id, minute) DO UPDATE
    SET requests = m.requests + EXCLUDED.requests,
        rate_limited = m.rate_limited + EXCLUDED.rate_limited,
        server_errors = m.server_errors + EXCLUDED.server_errors
)
SELECT count(*) FROM logged
"""


def _plain(value: object) -> object:
    """What orjson does not write itself: a `LogEntry` (a tuple subclass) as its fields, asyncpg's UUID as
    text."""
    return tuple(value) if isinstance(value, tuple) else str(value)


def minute_counts(entries: list[LogEntry]) -> list[tuple[str, int, int, int, int]]:
    """The batch's (tenant, minute start in epoch seconds, requests, 429s, 5xx), sorted by minute and
    tenant. 499 (the client left) is a request, not a 5xx, as in /metrics."""
    counts: dict[tuple[int, UUID], list[int]] = {}  # a few keys a batch: the text of each id is made once
    for entry in entries:
        key = (int(entry.at) // 60, entry.tenant_id)
        found = counts.get(key)
        if found is None:
            found = counts[key] = [0, 0, 0]
        found[0] += 1
        status = entry.status
        if status == 429:
            found[1] += 1
        elif status >= 500:
            found[2] += 1
    rows = [(str(tenant), minute * 60, n[0], n[1], n[2]) for (minute, tenant), n in counts.items()]
    rows.sort(key=lambda row: (row[1], row[0]))
    return rows


async def insert_entries(pool: asyncpg.Pool, entries: list[LogEntry]) -> int:
    """Write a batch of log rows and add their counts per tenant and minute, in one statement; returns how
    many rows were written (not a deleted tenant's)."""
    if not entries:
        return 0
    written: int = await pool.fetchval(
        INSERT_ENTRIES,
        orjson.dumps(entries, default=_plain).decode(),
        orjson.dumps(minute_counts(entries)).decode(),
    )
    return written


ENTRY_COLUMNS = """id, at, request_id, idp, method, endpoint, resource_type, resource_id, user_name, summary,
       status, scim_type, detail, reason, duration_ms, outbox_ids"""
# Every page scans the ids of one tenant newest first, between two bounds: $5 (older than: the cursor, or
# the end of an until) and $6 (newer than: the start of a since, or how far a status filter may look).
# $2 status class (2 for 2xx, ...) and $3/$4 since/until are then exact filters of the rows scanned; $7 is
# the page size. One statement per variant so each uses its index (the resource and userName indexes are
# partial): a user's entries are the union of those of its id and of its userName.
_WHERE = """tenant_id = $1
      AND ($2::int IS NULL OR status / 100 = $2)
      AND ($3::timestamptz IS NULL OR at >= $3)
      AND ($4::timestamptz IS NULL OR at < $4)
      AND id < $5 AND id > $6"""
SELECT_PAGE = f"""
SELECT {ENTRY_COLUMNS}
FROM provisioning_log
WHERE {_WHERE}
ORDER BY id DESC
LIMIT $7
"""
SELECT_PAGE_OF_GROUP = f"""
SELECT {ENTRY_COLUMNS}
FROM provisioning_log
WHERE {_WHERE} AND resource_id IS NOT NULL AND resource_id = $8 AND resource_type = 'group'
ORDER BY id DESC
LIMIT $7
"""
# $8 the user's id, $9 its userName (either may be NULL: a user never created, or one deleted and gone
# from the log); UNION drops an entry both match (a POST).
SELECT_PAGE_OF_USER = f"""
SELECT {ENTRY_COLUMNS}
FROM (
    (SELECT {ENTRY_COLUMNS} FROM provisioning_log
     WHERE {_WHERE} AND resource_id IS NOT NULL AND resource_id = $8 AND resource_type = 'user'
     ORDER BY id DESC LIMIT $7)
    UNION
    (SELECT {ENTRY_COLUMNS} FROM provisioning_log
     WHERE {_WHERE} AND user_name IS NOT NULL AND lower(user_name) = lower($9)
     ORDER BY id DESC LIMIT $7)
) u
ORDER BY id DESC
LIMIT $7
"""
# The SCIM panel's "last request seen from your IdP": one row through provisioning_log_tenant
# (tenant_id, id DESC), the newest written (rows get their ids as their batches are written, a fraction
# of a second after their requests).
SELECT_NEWEST = f"""
SELECT {ENTRY_COLUMNS}
FROM provisioning_log
WHERE tenant_id = $1
ORDER BY id DESC
LIMIT 1
"""
# The other identifier of a user given by id or by userName: the user as it is, else (deleted, or renamed
# since) the newest log entry naming both.
SELECT_USER_BY_ID = f"""
(SELECT id, user_name FROM users u WHERE u.id = $2 AND {of_tenant("u")})
UNION ALL
(SELECT resource_id, user_name FROM provisioning_log
 WHERE tenant_id = $1 AND resource_id IS NOT NULL AND resource_id = $2 AND resource_type = 'user'
   AND user_name IS NOT NULL
 ORDER BY id DESC LIMIT 1)
LIMIT 1
"""
SELECT_USER_BY_NAME = """
(SELECT id, user_name FROM users WHERE tenant_id = $1 AND lower(user_name) = lower($2))
UNION ALL
(SELECT resource_id, user_name FROM provisioning_log
 WHERE tenant_id = $1 AND user_name IS NOT NULL AND lower(user_name) = lower($2) AND resource_type = 'user'
   AND resource_id IS NOT NULL
 ORDER BY id DESC LIMIT 1)
LIMIT 1
"""
# The ids a time range spans, through (tenant_id, at). Rows get their id when their batch is written, up
# to a flush later than their `at`, and web processes write their batches independently: each bound is
# taken `ID_BOUND_MARGIN` wider than the range (the exact `at` filter then drops the extra rows).
ID_BOUND_MARGIN = "5 minutes"
SELECT_ID_BOUNDS = f"""
SELECT
    (SELECT min(id) FROM provisioning_log
     WHERE tenant_id = $1 AND at >= $2::timestamptz - interval '{ID_BOUND_MARGIN}'
       AND at < $2::timestamptz + interval '{ID_BOUND_MARGIN}') AS first_near_since,
    (SELECT id FROM provisioning_log
     WHERE tenant_id = $1 AND at >= $2::timestamptz ORDER BY at LIMIT 1) AS first_since,
    (SELECT max(id) FROM provisioning_log
     WHERE tenant_id = $1 AND at >= $3::timestamptz - interval '{ID_BOUND_MARGIN}'
       AND at < $3::timestamptz + interval '{ID_BOUND_MARGIN}') AS last_near_until,
    (SELECT id FROM provisioning_log
     WHERE tenant_id = $1 AND at < $3::timestamptz ORDER BY at DESC LIMIT 1) AS last_until
"""
# How far a status filter looks: the id `$3` rows below `$2` in the tenant's index (NULL: fewer are left).
SELECT_SCAN_FLOOR = """
SELECT id FROM provisioning_log
WHERE tenant_id = $1 AND id < $2
ORDER BY id DESC
OFFSET $3 LIMIT 1
"""


async def log_page(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    status_class: int | None,
    group_id: UUID | None,
    user: tuple[UUID | None, str | None] | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int,
    after_id: int,
    limit: int,
) -> list[asyncpg.Record]:
    """Log rows of the tenant with ids between the bounds, newest first, of one group or user if given."""
    args = (tenant_id, status_class, since, until, before_id, after_id, limit)
    if group_id is not None:
        return await pool.fetch(SELECT_PAGE_OF_GROUP, *args, group_id)
    if user is not None:
        return await pool.fetch(SELECT_PAGE_OF_USER, *args, user[0], user[1])
    return await pool.fetch(SELECT_PAGE, *args)


async def newest_entry(pool: asyncpg.Pool, tenant_id: UUID) -> asyncpg.Record | None:
    """The tenant's newest log row, None when it has none."""
    return await pool.fetchrow(SELECT_NEWEST, tenant_id)


async def user_identity(
    pool: asyncpg.Pool, tenant_id: UUID, *, user_id: UUID | None, user_name: str | None
) -> tuple[UUID | None, str | None]:
    """A user's (id, userName) from either one; the one given alone when nothing names both."""
    if user_id is not None:
        row = await pool.fetchrow(SELECT_USER_BY_ID, tenant_id, user_id)
    else:
        row = await pool.fetchrow(SELECT_USER_BY_NAME, tenant_id, user_name)
    return (row["id"], row["user_name"]) if row is not None else (user_id, user_name)


async def id_bounds(
    pool: asyncpg.Pool, tenant_id: UUID, since: datetime | None, until: datetime | None
) -> tuple[int | None, int | None] | None:
    """(newer than, older than) ids that hold every row of [since, until), each widened by the margin and
    None for an open end; None when no row is in the range."""
    row = await pool.fetchrow(SELECT_ID_BOUNDS, tenant_id, since, until)
    if (since is not None and row["first_since"] is None) or (
        until is not None and row["last_until"] is None
    ):
        return None
    lows = [i for i in (row["first_near_since"], row["first_since"]) if i is not None]
    highs = [i for i in (row["last_near_until"], row["last_until"]) if i is not None]
    return (min(lows) - 1 if lows else None, max(highs) + 1 if highs else None)


async def scan_floor(pool: asyncpg.Pool, tenant_id: UUID, before_id: int, rows: int) -> int | None:
    """The id `rows` entries below `before_id` in the tenant's log; None when fewer are left."""
    found: int | None = await pool.fetchval(SELECT_SCAN_FLOOR, tenant_id, before_id, rows)
    return found


SELECT_OUTBOX_ROWS = """
SELECT id, resource_type, resource_id, change, applied_at, attempts, last_error,
       applied_tx::text AS applied_tx
FROM outbox
WHERE tenant_id = $1 AND id = ANY ($2::bigint[])
"""
# What a page's entries led to, per entry key (request id, user id or NULL): rows that carry the request id
# and, for a user's entry, name that user. The request id is the client's X-Request-Id when it sent one, so
# two requests may share it: the user keeps them apart, and `$4` rows per key bound what a reused id loads.
# The two branches of each lateral are exclusive (one-time filters on k.user_id): with a user, the audit
# rows come through (tenant_id, request_id) or (tenant_id, user_id), whichever the planner finds narrower.
SELECT_AUDIT_OF_ENTRIES = """
SELECT k.n, a.id, a.user_id, a.action, a.actor, a.detail, a.request_id, a.created_at
FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS k(request_id, user_id, n)
CROSS JOIN LATERAL (
    (SELECT id, user_id, action, actor, detail, request_id, created_at
     FROM audit_log
     WHERE k.user_id IS NULL AND tenant_id = $1 AND request_id IS NOT NULL AND request_id = k.request_id
     ORDER BY id LIMIT $4)
    UNION ALL
    (SELECT id, user_id, action, actor, detail, request_id, created_at
     FROM audit_log
     WHERE k.user_id IS NOT NULL AND tenant_id = $1 AND request_id IS NOT NULL
       AND request_id = k.request_id AND user_id = k.user_id
     ORDER BY id LIMIT $4)
) a
ORDER BY k.n, a.id
"""
# A key's events are those the transactions that applied its outbox rows wrote ($5: their `applied_tx`,
# as an xid8 array's text) with its request id, through (tenant_id, tx, id): `events` keeps no index on
# request ids, which every event written would pay for (a random key in a growing index). Each distinct
# transaction is read once for the whole page (`e`, keeping only the page's request ids), and its rows are
# matched to the keys in one pass: a drain's transaction holds a thousand events, shared by many entries.
# One index lookup per transaction (`x.tx`, a scalar, in a lateral kept apart by OFFSET 0): a generic plan
# that guesses a tenant holds a few events would else read the tenant's whole index range and filter it.
# An event names its user in `user_id` (0038; before, in `data.user.id`), but for a hard delete's
# `user.deleted`, which holds the user it removed in `data`.
SELECT_EVENTS_OF_ENTRIES = f"""
WITH k AS (
    SELECT * FROM unnest($2::text[], $3::uuid[], $5::text[]) WITH ORDINALITY AS k(request_id, user_id, txs, n)
), e AS MATERIALIZED (
    SELECT v.id, v.tx, v.type, v.request_id, v.data, v.snapshot_id, v.user_id, v.user_snapshot
    FROM (SELECT DISTINCT t FROM k CROSS JOIN unnest(k.txs::xid8[]) AS t) AS x(tx)
    CROSS JOIN LATERAL (
        SELECT id, tx, type, request_id, data, snapshot_id, user_id, user_snapshot
        FROM events
        WHERE tenant_id = $1 AND tx = x.tx AND request_id = ANY ($2::text[])
        OFFSET 0
    ) v
), m AS (
    SELECT k.n, e.id, e.type, e.request_id, e.data, e.snapshot_id, e.user_id, e.user_snapshot,
           row_number() OVER (PARTITION BY k.n ORDER BY e.id) AS r
    FROM k JOIN e ON e.request_id = k.request_id AND e.tx = ANY (k.txs::xid8[])
        AND (k.user_id IS NULL OR e.user_id = k.user_id OR e.data -> 'user' ->> 'id' = k.user_id::text)
)
SELECT m.n, m.id, m.type, m.request_id, {told_data("m")} AS data
FROM m
WHERE m.r <= $4
ORDER BY m.n, m.id
"""


class OutcomeKey(NamedTuple):
    """What an entry's outcome rows are matched on: its request id, and its user when it is a user's."""

    request_id: str
    user_id: UUID | None


async def outbox_rows(pool: asyncpg.Pool, tenant_id: UUID, ids: list[int]) -> list[asyncpg.Record]:
    """The tenant's outbox rows with these ids that still exist (retention deletes applied ones)."""
    if not ids:
        return []
    return await pool.fetch(SELECT_OUTBOX_ROWS, tenant_id, ids)


async def _of_entries(
    pool: asyncpg.Pool, sql: str, tenant_id: UUID, keys: list[OutcomeKey], limit: int
) -> dict[OutcomeKey, list[asyncpg.Record]]:
    found: dict[OutcomeKey, list[asyncpg.Record]] = {k: [] for k in keys}
    if keys:
        rows = await pool.fetch(
            sql, tenant_id, [k.request_id for k in keys], [k.user_id for k in keys], limit
        )
        for r in rows:
            found[keys[r["n"] - 1]].append(r)
    return found


async def audit_of_entries(
    pool: asyncpg.Pool, tenant_id: UUID, keys: list[OutcomeKey], *, limit: int
) -> dict[OutcomeKey, list[asyncpg.Record]]:
    """The tenant's audit rows of each key (its request id, and its user if any), oldest first, at most
    `limit` per key."""
    return await _of_entries(pool, SELECT_AUDIT_OF_ENTRIES, tenant_id, keys, limit)


async def events_of_entries(
    pool: asyncpg.Pool, tenant_id: UUID, keys: dict[OutcomeKey, set[str]], *, limit: int
) -> dict[OutcomeKey, list[asyncpg.Record]]:
    """The tenant's events of each key (its request id, and its user if any) written by the transactions
    that applied its outbox rows (`keys`' values: their `applied_tx`), in order, at most `limit` per key."""
    found: dict[OutcomeKey, list[asyncpg.Record]] = {k: [] for k in keys}
    looked = [k for k, txs in keys.items() if txs]
    if looked:
        rows = await pool.fetch(
            SELECT_EVENTS_OF_ENTRIES,
            tenant_id,
            [k.request_id for k in looked],
            [k.user_id for k in looked],
            limit,
            ["{" + ",".join(sorted(keys[k])) + "}" for k in looked],
        )
        for r in rows:
            found[looked[r["n"] - 1]].append(r)
    return found
