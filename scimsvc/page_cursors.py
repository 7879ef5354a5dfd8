"""Where the next page of a list starts, kept in Redis so an IdP's walk through startIndex reads by key.

An IdP imports users by asking for startIndex=1, 101, 201, … of the same query. OFFSET makes page n
step over n×100 index entries (~10 ms at 50,000). After serving a full page we remember, under the
query and the next page's offset, the sort key of its last row; the next request starts right after
it, whichever replica it reaches. A hint is only a shortcut: it holds no data, is scoped to the
tenant and the exact query, expires after `TTL_SECONDS`, and when it is missing or Redis is slow or
down the page is read by OFFSET as before. Between pages a walk by key neither skips nor repeats a
user when earlier users are deleted, where OFFSET would.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

TTL_SECONDS = 600  # an import pass that pauses longer than this reads its next page by OFFSET
LOOKUP_SECONDS = 0.05  # a slow Redis costs a page no more than this
Position = tuple[datetime, UUID]  # (created_at, id) of the row the next page follows

_writes: set[asyncio.Task[None]] = set()  # references keep the background writes alive


def cursor_key(prefix: str, tenant_id: UUID, query: tuple[Any, ...], offset: int) -> str:
    """The key of the hint for the page at `offset` of `query` (its SQL text and parameters)."""
    digest = hashlib.blake2b(repr(query).encode(), digest_size=16).hexdigest()
    return f"{prefix}:cursor:{tenant_id}:{digest}:{offset}"


async def find(redis: Redis, key: str) -> Position | None:
    """The position the page at `key` starts after, or None (no hint, or Redis can't say quickly)."""
    try:
        async with asyncio.timeout(LOOKUP_SECONDS):
            raw = await redis.get(key)
    except Exception:  # noqa: BLE001 - a timeout or any Redis error means: read by OFFSET
        return None
    if not raw:
        return None
    created, _, row_id = (raw if isinstance(raw, str) else raw.decode()).partition(" ")
    return datetime.fromisoformat(created), UUID(row_id)


def remember(redis: Redis, key: str, position: Position) -> None:
    """Store the hint in the background: the response does not wait for Redis."""
    value = f"{position[0].isoformat()} {position[1]}"
    task = asyncio.get_running_loop().create_task(_store(redis, key, value))
    _writes.add(task)
    task.add_done_callback(_writes.discard)


async def _store(redis: Redis, key: str, value: str) -> None:
    try:
        await redis.set(key, value, ex=TTL_SECONDS)
    except Exception:  # noqa: BLE001,S110 - a lost hint only means the next page is read by OFFSET
        pass
