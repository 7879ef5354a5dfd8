"""One page of a SCIM list: the page's ids picked by a narrow query, then its rows; the total only when
the page itself cannot tell it. A deep page of the unfiltered user list starts from a checkpoint.

Checkpoints: `OFFSET n` steps over n index entries and counting totalResults over all of them, so a
page at a random startIndex of a million users cost ~0.7 s. For the unfiltered list of a tenant's users
(an IdP's import, the console), one index-only pass keeps the sort key of every `CHECKPOINT_EVERY`-th
row and the count; a page at offset n then seeks to the checkpoint at or before n, skips fewer than
`CHECKPOINT_EVERY` rows and answers with that count. The page reads exactly the rows and total OFFSET
and a count would: each use first checks, in the same snapshot as the page, that the list has not
changed since the pass (`_changes`, two small index-only reads), and drops it when it has (a later
page passes over it again: one pass per list at a time, at most every `REBUILD_SECONDS`).
The list lives in this process (about 200 bytes per thousand users, at most `CHECKPOINT_QUERIES` lists,
each for `CHECKPOINT_SECONDS`).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

CHECKPOINT_EVERY = 1000  # rows between checkpoints: a checkpointed page skips fewer than this
CHECKPOINT_SECONDS = 600.0  # a list is rebuilt at least this often
CHECKPOINT_QUERIES = 64  # lists kept per process (least recently used dropped)
# A write to a user sets its updated_at to its transaction's start. A change that commits after a pass
# comes from a transaction open (or not yet begun) when the pass took its snapshot: the window `_changes`
# looks at starts at the oldest transaction open then that pg_stat_activity shows (`OPEN_SINCE`: every
# session of the service's own role, through a pooler too, a COMMIT waiting for a synchronous standby
# included), and no later than START_SECONDS before the pass (a transaction whose first statement has
# fixed its start but that has not yet shown it in pg_stat_activity: microseconds of CPU between the two).
# When pg_stat_activity hides a session's xact_start from this role (a session of another role, to a role
# without pg_read_all_stats: an operator's script, assumed to commit within WRITE_SECONDS), no later than
# WRITE_SECONDS before. Every check reads the window's rows: the shorter it is, the cheaper each deep page
# after a burst of writes (docs/performance-history.md, What changed in this round: the window rule).
START_SECONDS = 5
WRITE_SECONDS = 60
WINDOW_LIMIT = 20_000  # more recent writes than this: the list is not checked, pages read by OFFSET
REBUILD_SECONDS = 10.0  # a key's list is passed over at most this often (changed, dropped or failed)

# Lists with checkpoints: the table, the condition of its unfiltered list (columns changed without
# updated_at, such as the license the worker applies, could change a filtered one unseen), the window
# of recent writes ($1 tenant, $2 from, $3 limit; users_tenant_updated alone) and the count of rows
# deleted outright (user_removals, by primary key; store/user_admin.py:HARD_DELETE_USER bumps it).
CHECKPOINTED = {
    "users u": (
        "u.tenant_id = $1 AND u.scim_linked AND (TRUE)",
        """
        SELECT count(*), coalesce(sum((extract(epoch FROM w.updated_at) * 1000000)::bigint), 0)
        FROM (SELECT updated_at FROM users WHERE tenant_id = $1 AND updated_at >= $2
              ORDER BY updated_at LIMIT $3) w
        """,
        "SELECT coalesce((SELECT removed FROM user_removals WHERE tenant_id = $1), 0)",
    ),
}
# Read before a pass's snapshot is taken: now, the start of the oldest transaction then open in this
# database (other than this one), and whether a session's is hidden from this role (PostgreSQL shows such
# a session's query as '<insufficient privilege>' and its xact_start as NULL).
OPEN_SINCE = """
SELECT clock_timestamp(), min(xact_start), coalesce(bool_or(query = '<insufficient privilege>'), false)
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
Stamp = tuple[int, int, int]  # rows written since a moment, their updated_at summed (µs), rows deleted
_PLAIN_KEY = re.compile(r"\w+\.\w+")


class PageSql(str):
    """The text of `page_sql`, with the parts a checkpointed read rebuilds it from."""

    table: str
    columns: str
    condition: str
    order_by: str


def page_sql(*, table: str, columns: str, condition: str, order_by: str, first_param: int) -> PageSql:
    """SELECT `columns` of one page of `table` ("users u") rows matching `condition`, in `order_by`.

    The inner query skips `OFFSET` rows carrying only their ids and sort keys, which the paging index
    serves without reading the table (a deep page of 100,000 users reads no row it doesn't return);
    the outer one reads the page's rows. `$first_param` is the offset, the next one the limit.
    """
    alias = table.split()[-1]
    sql = PageSql(f"""
        SELECT {columns} FROM {table}
        JOIN (SELECT {alias}.id FROM {table} WHERE {condition}
              ORDER BY {order_by} OFFSET ${first_param} LIMIT ${first_param + 1}) page ON page.id = {alias}.id
        ORDER BY {order_by}
    """)
    sql.table, sql.columns, sql.condition, sql.order_by = table, columns, condition, order_by
    return sql


def total_from_page(rows: list[asyncpg.Record], *, offset: int, limit: int) -> int | None:
    """The total a page implies on its own: a short page is the last one. None when it can't tell."""
    if rows and len(rows) < limit:
        return offset + len(rows)
    if not rows and offset == 0 and limit > 0:
        return 0
    return None


async def fetch_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    sql: str,
    params: list[Any],
    *,
    offset: int,
    limit: int,
    count_sql: str,
    count_params: list[Any],
    skip: int | None = None,
    total: int | None = None,
) -> tuple[int, list[asyncpg.Record]]:
    """Run `sql` (from `page_sql`) and count with `count_sql` only if the page can't tell the total.

    `offset` is the page's place in the list; `skip` the rows the query itself skips (`offset` unless
    `sql`'s condition already starts the page after a position, whose walk brings its `total`).
    """
    skip = offset if skip is None else skip
    if skip == offset and skip >= CHECKPOINT_EVERY and total is None and _checkpointed(conn, sql):
        assert isinstance(sql, PageSql)
        return await _fetch_from_checkpoint(
            conn, sql, params, offset=offset, limit=limit, count_sql=count_sql, count_params=count_params
        )
    rows = await conn.fetch(str(sql), *params, skip, limit)  # asyncpg takes an exact str
    if total is None and skip == offset:
        total = total_from_page(rows, offset=offset, limit=limit)
    if total is None:
        total = await conn.fetchval(count_sql, *count_params)
    return total, rows


@dataclass(frozen=True)
class Checkpoints:
    """The sort keys of rows CHECKPOINT_EVERY, 2 × CHECKPOINT_EVERY, ... of a list, and what it was."""

    keys: list[tuple[Any, ...]]
    total: int
    window_from: datetime
    window: Stamp  # `_changes` since window_from when the pass ran
    built: float  # time.monotonic() when the pass's snapshot was asked for: a later one replaces it
    usable: bool  # False: too many recent writes to check cheaply, so pages are read by OFFSET a while


_lists: OrderedDict[tuple[Any, ...], Checkpoints] = OrderedDict()
# Passes per key in this process: when the last one began (kept for keys whose list was dropped or whose
# pass failed, at most PASSES_KEPT), and which are under way (one at a time per key).
PASSES_KEPT = 4096
_passes: OrderedDict[tuple[Any, ...], float] = OrderedDict()
_passing: set[tuple[Any, ...]] = set()


def _checkpointed(conn: asyncpg.Connection | asyncpg.Pool, sql: str) -> bool:
    """Whether the page may start from a checkpoint: the unfiltered list of a table that has them, in
    plain column order, read where this module can take a snapshot of its own (not inside a caller's
    transaction, whose statements may each see another)."""
    if not isinstance(sql, PageSql) or sql.table not in CHECKPOINTED:
        return False
    if isinstance(conn, asyncpg.Connection) and conn.is_in_transaction():
        return False
    keys = [key.strip() for key in sql.order_by.split(",")]
    return sql.condition == CHECKPOINTED[sql.table][0] and all(_PLAIN_KEY.fullmatch(k) for k in keys)


@asynccontextmanager
async def _snapshot(
    conn: asyncpg.Connection | asyncpg.Pool, *, open_since: bool
) -> AsyncIterator[tuple[asyncpg.Connection, datetime | None]]:
    """A connection whose statements all see one snapshot (a read-only repeatable-read transaction) and,
    if `open_since`, the earliest updated_at a write not in that snapshot may carry (`OPEN_SINCE`, read
    just before the snapshot: a transaction that begins after it starts later)."""
    async with _acquired(conn) as one:
        since = None
        if open_since:
            now, oldest, hidden = await one.fetchrow(OPEN_SINCE)
            since = now - timedelta(seconds=WRITE_SECONDS if hidden else START_SECONDS)
            since = since if oldest is None else min(since, oldest)
        async with one.transaction(isolation="repeatable_read", readonly=True):
            yield one, since


@asynccontextmanager
async def _acquired(conn: asyncpg.Connection | asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as one:
            yield one
    else:
        yield conn


def _may_pass(list_key: tuple[Any, ...]) -> bool:
    """Whether this page may pass over the list: none under way for the key in this process, and none
    begun in the last REBUILD_SECONDS (whether its list was kept, dropped or the pass failed)."""
    began = _passes.get(list_key)
    return list_key not in _passing and (began is None or time.monotonic() - began >= REBUILD_SECONDS)


async def _fetch_from_checkpoint(
    conn: asyncpg.Connection | asyncpg.Pool,
    sql: PageSql,
    params: list[Any],
    *,
    offset: int,
    limit: int,
    count_sql: str,
    count_params: list[Any],
) -> tuple[int, list[asyncpg.Record]]:
    """The page at `offset` from the checkpoint at or before it: the same rows and total as OFFSET and
    a count, fewer read (a current list brings its total: nothing is counted).

    A list that changed is passed over again, one pass at a time per key and at most once per
    REBUILD_SECONDS: meanwhile (an import under way, another page's pass) pages are read by OFFSET and
    counted.
    """
    list_key = (str(sql), *params)
    asked = time.monotonic()
    kept = _lists.get(list_key)
    fresh = kept is not None and kept.usable and asked - kept.built <= CHECKPOINT_SECONDS
    # A kept list is checked without reading OPEN_SINCE: one found changed is dropped, and the next page
    # passes over it (if REBUILD_SECONDS allow).
    async with _snapshot(conn, open_since=not fresh and _may_pass(list_key)) as (one, since):
        marks = await _current(one, sql, list_key, params[0])
        if marks is None:
            if since is None or not _may_pass(list_key):
                rows = await one.fetch(str(sql), *params, offset, limit)
                total = total_from_page(rows, offset=offset, limit=limit)
                return (await one.fetchval(count_sql, *count_params) if total is None else total), rows
            _passing.add(list_key)
            _passes[list_key] = asked
            _passes.move_to_end(list_key)
            while len(_passes) > PASSES_KEPT:
                _passes.popitem(last=False)
            try:
                total = await one.fetchval(count_sql, *count_params)
                marks = await _build(one, sql, params, total, since=since, asked=asked)
            finally:
                _passing.discard(list_key)
        mark = min(offset // CHECKPOINT_EVERY, len(marks.keys))
        if mark == 0:
            return marks.total, await one.fetch(str(sql), *params, offset, limit)
        keys = [k.strip() for k in sql.order_by.split(",")]
        after = len(params)
        places = ", ".join(f"${after + 1 + i}" for i in range(len(keys)))
        seek = page_sql(
            table=sql.table,
            columns=sql.columns,
            condition=f"{sql.condition} AND ({sql.order_by}) > ({places})",
            order_by=sql.order_by,
            first_param=after + len(keys) + 1,
        )
        rows = await one.fetch(
            str(seek), *params, *marks.keys[mark - 1], offset - mark * CHECKPOINT_EVERY, limit
        )
        return marks.total, rows


async def _current(
    conn: asyncpg.Connection, sql: PageSql, list_key: tuple[Any, ...], tenant: Any
) -> Checkpoints | None:
    """The list kept for `list_key` if it is young enough and its rows are still the ones it saw."""
    marks = _lists.get(list_key)
    if marks is None or not marks.usable or time.monotonic() - marks.built > CHECKPOINT_SECONDS:
        return None
    if await _changes(conn, sql.table, tenant, marks.window_from, marks.window[0] + 1) != marks.window:
        if _lists.get(list_key) is marks:
            del _lists[list_key]
        return None
    if _lists.get(list_key) is marks:  # other passes may have dropped it (or replaced it) meanwhile
        _lists.move_to_end(list_key)
    return marks


async def _changes(conn: asyncpg.Connection, table: str, tenant: Any, since: datetime, limit: int) -> Stamp:
    """What tells a change of the list: every write of a row (an insert, a change, a SCIM DELETE) sets its
    updated_at, so it adds a row to the window of writes since `since` or moves one into it; a row
    deleted outright adds one to the tenant's user_removals (store/user_admin.py). Index-only reads."""
    _, window_sql, removals_sql = CHECKPOINTED[table]
    rows, stamp = await conn.fetchrow(window_sql, tenant, since, limit)
    return int(rows), int(stamp), int(await conn.fetchval(removals_sql, tenant))


async def _build(
    conn: asyncpg.Connection, sql: PageSql, params: list[Any], total: int, *, since: datetime, asked: float
) -> Checkpoints:
    """One pass down the paging index, by keyed seeks: the sort keys of every CHECKPOINT_EVERY-th row;
    kept unless a pass from a later snapshot (`asked`) kept its list meanwhile."""
    keys = [k.strip() for k in sql.order_by.split(",")]
    named = ", ".join(f"{k} AS k{i}" for i, k in enumerate(keys))
    outer = ", ".join(f"k{i}" for i in range(len(keys)))
    mark = ", ".join(f"m.k{i}" for i in range(len(keys)))
    step = len(params) + 1
    rows = await conn.fetch(
        f"""
        WITH RECURSIVE marks (n, {outer}) AS (
            (SELECT 1, {named} FROM {sql.table} WHERE {sql.condition}
             ORDER BY {sql.order_by} OFFSET ${step} LIMIT 1)
            UNION ALL
            SELECT m.n + 1, nx.* FROM marks m, LATERAL (
                SELECT {named} FROM {sql.table} WHERE {sql.condition} AND ({sql.order_by}) > ({mark})
                ORDER BY {sql.order_by} OFFSET ${step} LIMIT 1
            ) nx
        )
        SELECT {outer} FROM marks ORDER BY n
        """,
        *params,
        CHECKPOINT_EVERY - 1,
    )
    window = await _changes(conn, sql.table, params[0], since, WINDOW_LIMIT + 1)
    marks = Checkpoints(
        keys=[tuple(r) for r in rows],
        total=total,
        window_from=since,
        window=window,
        built=asked,
        usable=window[0] <= WINDOW_LIMIT,
    )
    list_key = (str(sql), *params)
    kept = _lists.get(list_key)
    if kept is not None and kept.built > asked:
        return marks
    _lists[list_key] = marks
    _lists.move_to_end(list_key)
    while len(_lists) > CHECKPOINT_QUERIES:
        _lists.popitem(last=False)
    return marks
