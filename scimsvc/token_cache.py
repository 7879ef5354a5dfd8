"""SCIM bearer token → tenant lookups, cached in the process while PostgreSQL can tell it of every change.

Every SCIM request authenticates by its token; uncached, that is one PostgreSQL round trip per request.
Migration 0010 makes any change to `scim_tokens` or `tenants` (a revocation, SCIM turned off, new
allowed domains or rate limit, by the admin API, the console, the CLI or plain SQL) send a notification
on commit. Each web process listens on a connection of its own and empties its cache when one arrives,
so a revoked token is refused as soon as the notification lands (milliseconds). The cache is only used
while that connection is listening: when it drops, the cache is emptied and every request goes to the
database until the listener is back. Entries also expire after `ttl` seconds, which bounds how long a
revoked token can still pass if notifications are held up without the connection failing. Unknown or
revoked tokens are never cached (they go to the database and the failed-authentication limiter every time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import asyncpg

from scimsvc.store.tenants import AUTH_CHANNEL, hash_token, tenant_for_token_hash

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000  # past this the cache starts over (one entry per live token)
REFUSED_SECONDS = 20.0  # a refused token is looked up again at most this often (3 times a minute)
RECONNECT_SECONDS = 1.0
LISTENER_NAME = "scimsvc-token-cache"  # application_name of the listening connection


class TokenCheck(NamedTuple):
    """What a bearer token is worth: its tenant, or None; and whether that None is a remembered refusal."""

    tenant: asyncpg.Record | None
    digest: bytes  # sha256 of the token, the only form it is kept in
    remembered: bool = False  # refused without asking PostgreSQL: it refused this token moments ago


def _no_lookups(found: bool) -> None:
    pass


class TokenCache:
    """Valid tokens' tenants for `ttl` seconds, emptied on every change notification; refusals for
    `REFUSED_SECONDS`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        database_url: str,
        *,
        ttl: float,
        counted: Callable[[bool], None] = _no_lookups,
    ) -> None:
        self.pool = pool
        self.database_url = database_url
        self.ttl = ttl
        self._counted = counted  # told of each PostgreSQL lookup: found or not (a metric)
        self._entries: dict[bytes, tuple[float, asyncpg.Record]] = {}
        self._refused: dict[bytes, float] = {}  # token hash -> monotonic time the refusal is forgotten
        self._generation = 0  # bumped on every change: a lookup that straddles one is not kept
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Whether lookups are served from memory (the listener is connected and caching is on)."""
        return self._listening and self.ttl > 0

    async def check(self, token: str) -> TokenCheck:
        """The tenant (id, scim_enabled, allowed_domains, rate_limit) of a valid token, or None."""
        digest = hash_token(token)
        now = time.monotonic()
        refused_until = self._refused.get(digest)
        if refused_until is not None:
            if refused_until > now:
                return TokenCheck(None, digest, remembered=True)
            del self._refused[digest]
        active = self.active
        if active:
            hit = self._entries.get(digest)
            if hit is not None and hit[0] > now:
                return TokenCheck(hit[1], digest)
        generation = self._generation
        row = await self._look_up(digest)
        if row is None:
            if len(self._refused) >= MAX_ENTRIES:
                self._refused.clear()
            self._refused[digest] = now + REFUSED_SECONDS
        elif active and generation == self._generation and self.active:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = (now + self.ttl, row)
        return TokenCheck(row, digest)

    async def _look_up(self, digest: bytes) -> asyncpg.Record | None:
        row = await tenant_for_token_hash(self.pool, digest)
        self._counted(row is not None)
        return row

    def holds(self, token: str) -> bool:
        """Whether the token's tenant is in the cache now."""
        return hash_token(token) in self._entries

    def forget(self, *_: Any) -> None:
        """Empty the cache (a token or tenant changed somewhere)."""
        self._generation += 1
        self._entries.clear()

    def start(self) -> None:
        """Listen for changes in the background (no-op when caching is off)."""
        if self.ttl > 0 and self._task is None:
            self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        logged = False
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.database_url, timeout=5, server_settings={"application_name": LISTENER_NAME}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())  # type: ignore[misc]
                await conn.add_listener(AUTH_CHANNEL, self.forget)
                self.forget()  # changes made while nobody listened
                self._listening, logged = True, False
                while not lost.is_set():
                    # A connection stalled without closing would hold notifications back: ping it.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=max(self.ttl, 1.0))
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=2)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if not logged:
                    log.warning("token cache off: cannot listen for token changes (%r); retrying", exc)
                    logged = True
            finally:
                self._listening = False
                self.forget()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(RECONNECT_SECONDS)
