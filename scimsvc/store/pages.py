"""One page of a SCIM list: the page's ids picked by a narrow query, then its rows; the total only when
the page itself cannot tell it."""

from __future__ import annotations

from typing import Any

import asyncpg


def page_sql(*, table: str, columns: str, condition: str, order_by: str, first_param: int) -> str:
    """SELECT `columns` of one page of `table` ("users u") rows matching `condition`, in `order_by`.

    The inner query skips `OFFSET` rows carrying only their ids and sort keys, which the paging index
    serves without reading the table (a deep page of 100,000 users reads no row it doesn't return);
    the outer one reads the page's rows. `$first_param` is the offset, the next one the limit.
    """
    alias = table.split()[-1]
    return f"""
        SELECT {columns} FROM {table}
        JOIN (SELECT {alias}.id FROM {table} WHERE {condition}
              ORDER BY {order_by} OFFSET ${first_param} LIMIT ${first_param + 1}) page ON page.id = {alias}.id
        ORDER BY {order_by}
    """


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
    rows = await conn.fetch(sql, *params, skip, limit)
    if total is None and skip == offset:
        total = total_from_page(rows, offset=offset, limit=limit)
    if total is None:
        total = await conn.fetchval(count_sql, *count_params)
    return total, rows
