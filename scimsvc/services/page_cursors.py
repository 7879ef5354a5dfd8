"""Where the next page of a list starts, kept in Redis so an IdP's walk through startIndex reads by key.

An IdP imports users by asking for startIndex=1, 101, 201, … of the same query. OFFSET makes page n
step over n×100 index entries (~10 ms at 50,000), and counting totalResults reads all of them again
(~7 ms at 100,000) on every page. After serving a full page we remember, under the query and the next
page's offset, the sort key of its last row and the total; the next request starts right after it,
whichever replica it reaches, and answers with the same total. So a walk's totalResults is the count
taken on its first page (RFC 7644 §3.4.2.4 does not promise more across pages): an IdP that loops
while startIndex <= totalResults sees one stable bound. A hint holds no data, is scoped to the tenant
and the exact query, expires after `TTL_SECONDS`, and when it is missing or Redis is slow or down the
page is read by OFFSET and counted, as any page out of a walk is (a deep one of the unfiltered list
from a checkpoint, `store/pages.py`). Between pages a walk by key neither
skips nor repeats a user when earlier users are deleted, where OFFSET would.

Hints live with the other per-request keys (`Scope.limiter_redis`; README.md, Running at scale, Redis),
which may be a Redis Cluster: each hint is one key read by GET and written by SET, so it may sit on any
slot.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

TTL_SECONDS = 600  # an import pass that pauses longer than this reads its next page by OFFSET
LOOKUP_SECONDS = 0.05  # a slow Redis costs a page no more than this
Position = tuple[datetime, UUID, int]  # (created_at, id) of the row the next page follows; the total

_writes: set[asyncio.Task[None]] = set()  # references keep the background writes alive


def cursor_key(prefix: str, tenant_id: UUID, query: tuple[Any, ...], offset: int) -> str:
    """The key of the hint for the page at `offset` of `query` (its SQL text and parameters)."""
    digest = hashlib.blake2b(repr(query).encode(), digest_size=16).hexdigest()
    return f"{prefix}:cursor:{tenant_id}:{digest}:{offset}"


async def find(redis: Redis | RedisCluster, key: str) -> Position | None:
    """The position the page at `key` starts after, or None (no hint, or Redis can't say quickly)."""
    try:
        async with asyncio.timeout(LOOKUP_SECONDS):
            raw = await redis.get(key)
    except Exception:  # noqa: BLE001 - a timeout or any Redis error means: read by OFFSET
        return None
    if not raw:
        return None
    try:
        created, row_id, total = (raw if isinstance(raw, str) else raw.decode()).split(" ")
        return datetime.fromisoformat(created), UUID(row_id), int(total)
    except ValueError:  # not a hint this version wrote: read by OFFSET
        return None


def remember(redis: Redis | RedisCluster, key: str, position: Position) -> None:
    """Store the hint in the background: the response does not wait for Redis."""
    created_at, row_id, total = position
    value = f"{created_at.isoformat()} {row_id} {total}"
    task = asyncio.get_running_loop().create_task(_store(redis, key, value))
    _writes.add(task)
    task.add_done_callback(_writes.discard)


async def _store(redis: Redis | RedisCluster, key: str, value: str) -> None:
    try:
        await redis.set(key, value, ex=TTL_SECONDS)
    except Exception:  # noqa: BLE001,S110 - a lost hint only means the next page is read by OFFSET
        pass
