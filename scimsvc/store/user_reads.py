"""SQL for the read of a PATCH (the user its new resource is built on), one at a time or many at once (the
batcher in store/batches.py): the reads that arrive together are one statement, each answered with its
own user (or None when the tenant has no such linked user)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple
from uuid import UUID

import asyncpg

from scimsvc.store.batches import Batcher, in_batch_order
from scimsvc.store.users import SELECT_USER, USER_COLUMNS

SELECT_USERS = f"""
SELECT {USER_COLUMNS}, v.n AS batch_row
FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS v(tenant_id, id, n)
JOIN users u ON u.tenant_id = v.tenant_id AND u.id = v.id
WHERE u.scim_linked
"""


class UserRead(NamedTuple):
    """A linked user of a tenant, to read."""

    tenant_id: UUID
    user_id: UUID


UserReads = Batcher[UserRead, asyncpg.Record | None]


async def read_user(reads: UserReads | asyncpg.Pool, read: UserRead) -> asyncpg.Record | None:
    """The linked user, or None; through `reads` (`user_reads`), reads that arrive together are one query."""
    if isinstance(reads, Batcher):
        return await reads.submit(read)
    return await _read_one(reads, read)


async def _read_one(pool: asyncpg.Pool, read: UserRead) -> asyncpg.Record | None:
    return await pool.fetchrow(SELECT_USER, read.tenant_id, read.user_id)


async def _read_many(pool: asyncpg.Pool, reads: Sequence[UserRead]) -> list[asyncpg.Record | None]:
    rows = await pool.fetch(SELECT_USERS, [r.tenant_id for r in reads], [r.user_id for r in reads])
    return in_batch_order(rows, len(reads))


def user_reads(pool: asyncpg.Pool) -> UserReads:
    """A batcher of user reads from `pool` (one per pool: the app's)."""
    # Keyed by the read itself: the same user read twice at once waits for the first read (a moment).
    return Batcher(pool, one=_read_one, many=_read_many, key=lambda read: read, in_flight=2)
