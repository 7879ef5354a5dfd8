"""Console sessions kept on the server (the operator's and organization admins' portal sessions): the
cookie stays a signed one (`web/console/session.py`), and its id must also name a live row here, so
signing out, or the operator ending an organization's portal sessions, ends it everywhere at once."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from scimsvc.product.portal import session_id_hash
from scimsvc.store import console_sessions as store

SESSIONS_SHOWN = 200


@dataclass(frozen=True)
class LiveSession:
    """What the server knows of a live session: its organization (None: the operator's) and admin address."""

    tenant_id: UUID | None
    email: str | None


async def start(
    conn: asyncpg.Connection | asyncpg.Pool,
    sid: str,
    *,
    expires: int,
    tenant_id: UUID | None = None,
    email: str | None = None,
) -> None:
    """Record a session that was just signed in (its id is kept only as a hash)."""
    await store.start_session(conn, session_id_hash(sid), tenant_id=tenant_id, email=email, expires=expires)


async def live(pool: asyncpg.Pool, sid: str) -> LiveSession | None:
    """The session if it is live (not ended, not expired), else None. One lookup by primary key."""
    row = await store.live_session(pool, session_id_hash(sid))
    return None if row is None else LiveSession(row["tenant_id"], row["email"])


async def end(pool: asyncpg.Pool, sid: str) -> bool:
    """End a session (signing out): a copy of its cookie is refused from now on."""
    return await store.end_session(pool, session_id_hash(sid))


async def live_portal_sessions(pool: asyncpg.Pool, tenant_id: UUID) -> list[asyncpg.Record]:
    """An organization's live portal sessions, newest first."""
    return await store.live_tenant_sessions(pool, tenant_id, limit=SESSIONS_SHOWN)
