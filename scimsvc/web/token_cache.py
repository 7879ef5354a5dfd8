"""SCIM bearer token → tenant lookups, cached in the process while PostgreSQL can tell it of every change.

Every SCIM request authenticates by its token; uncached, that is one PostgreSQL lookup per request, and
lookups that arrive together (many organizations' requests at once) go as one statement
(`store/tenants.py:token_lookups`).
Migration 0010 makes any change to `scim_tokens` or `tenants` (a revocation, SCIM turned off, new
allowed domains or rate limit, by the admin API, the console, the CLI or plain SQL) send a notification
on commit. Each web process listens on a connection of its own and empties its cache when one arrives,
so a revoked token is refused as soon as the notification lands (milliseconds). The cache is only used
while that connection is listening: when it drops, the cache is emptied and every request goes to the
database until the listener is back. Entries also expire after `ttl` seconds, which bounds how long a
revoked token can still pass if notifications are held up without the connection failing.

Refusals are remembered too, for `REFUSED_SECONDS`, by the token's hash, whether or not the listener is
up: an IdP that still holds a revoked token retries it forever (Okta and Entra call from egress addresses
shared by all their customers), and each retry would otherwise cost a PostgreSQL lookup. A refused token
never becomes valid (revocation is one-way; new tokens are random), so a remembered refusal is never
wrong; it is forgotten after that time only to bound memory, and the token is looked up at most once per
`REFUSED_SECONDS` per process (concurrent requests with one token share one lookup). A token not shaped
like the ones scimsvc issues is refused without a lookup. Revoked tokens are told apart from guesses
(tokens never issued): only guesses count toward the failed-authentication limit.

An expired token (`expires_at` passed) is refused exactly like a revoked one. Expiry needs no notification:
a cached entry is only served while its token's `expires_at` is still ahead (one clock read on a hit of a
token that has an expiry), so the first request after that moment is refused.

Last used: a valid check notes the token's id and the time in a dict, nothing more (no I/O on the
request's path). `web/app.py:token_use_writer`, a task of the app, writes what was noted every
`SCIMSVC_TOKEN_LAST_USED_SECONDS` (60) in one batched UPDATE (`store/tenants.py:RECORD_TOKEN_USES`), so
each token is written at most once per interval per process, whatever the request rate. That column is
left out of the change notification (migration 0022), so the writes never empty a cache. A write that
fails or is cancelled puts its uses back for the next one; at shutdown the app writes what is left. What a
crash loses: the uses noted since the last write, which the IdP's next request notes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from scimsvc.ratelimit.expiring_set import ExpiringSet
from scimsvc.store.tenants import AUTH_CHANNEL, could_be_token, hash_token, record_token_uses, token_lookups

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000  # past this the expired entries go, and the oldest of the others (`_make_room`)
REFUSED_SECONDS = 20.0  # a refused token is looked up again at most this often (3 times a minute)
RECONNECT_SECONDS = 1.0
LISTENER_NAME = "scimsvc-token-cache"  # application_name of the listening connection


class TokenCheck(NamedTuple):
    """What a bearer token is worth: its tenant when valid, else None; and whether it was a guess."""

    tenant: asyncpg.Record | None
    digest: bytes  # sha256 of the token, the only form it is kept in
    # Refused, and neither a token we issued (revoked ones are) nor one refused moments ago: a new guess.
    guess: bool = False


def _no_lookups(found: bool) -> None:
    pass


def _valid(row: asyncpg.Record | None) -> bool:
    """A token we issued, neither revoked nor expired (PostgreSQL's clock, at lookup time)."""
    return row is not None and not row["revoked"] and not row["expired"]


def _expiry(row: asyncpg.Record) -> float | None:
    """The token's expiry in seconds since the epoch, None if it has none."""
    expires_at = row["expires_at"]
    return expires_at.timestamp() if expires_at is not None else None


_LOOKUP_CANCELLED = object()  # what a shared lookup gives when its request was cancelled: look up again


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
        self._lookup = token_lookups(pool)  # concurrent lookups of different tokens: one statement
        self.database_url = database_url
        self.ttl = ttl
        self._counted = counted  # told of each PostgreSQL lookup: found valid or not (a metric)
        # token hash -> (monotonic deadline, tenant row, expiry in epoch seconds or None)
        self._entries: dict[bytes, tuple[float, asyncpg.Record, float | None]] = {}
        self._used: dict[UUID, float] = {}  # token id -> when last used (epoch seconds), not written yet
        self._refused = ExpiringSet(seconds=REFUSED_SECONDS, max_entries=MAX_ENTRIES)  # token hashes
        self._lookups: dict[bytes, asyncio.Future[Any]] = {}  # token hash -> its lookup under way
        self._generation = 0  # bumped on every change: a lookup that straddles one is not kept
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Whether lookups are served from memory (the listener is connected and caching is on)."""
        return self._listening and self.ttl > 0

    async def check(self, token: str) -> TokenCheck:
        """The tenant (tenant_id, scim_enabled, allowed_domains, rate_limit) of a valid token, or None."""
        digest = hash_token(token)
        now = time.monotonic()
        active = self.active
        # A cached token first (almost every request): it was valid when cached, so it is neither refused
        # (a refusal is never cached: a change empties the cache) nor shaped wrong.
        if active:
            hit = self._entries.get(digest)
            if hit is not None and hit[0] > now:
                if hit[2] is None or time.time() < hit[2]:
                    return self._used_now(hit[1], digest)
                del self._entries[digest]  # expired since it was cached: refused from now on
                self._refused.add(digest)
                return TokenCheck(None, digest)
        if digest in self._refused:
            return TokenCheck(None, digest)
        if not could_be_token(token):  # no lookup can find it
            self._refused.add(digest)
            return TokenCheck(None, digest, guess=True)
        while (under_way := self._lookups.get(digest)) is not None:
            # Concurrent requests with one token share its lookup, and its failure (an outage: 503).
            row = await asyncio.shield(under_way)
            if row is not _LOOKUP_CANCELLED:
                return self._used_now(row, digest) if _valid(row) else TokenCheck(None, digest)
        generation = self._generation
        lookup = self._lookups[digest] = asyncio.get_running_loop().create_future()
        try:
            row = await self._lookup.submit(digest)
        except Exception as exc:
            lookup.set_exception(exc)
            lookup.exception()  # retrieved: a failed lookup nobody shared is not reported as unhandled
            raise
        except BaseException:
            lookup.set_result(_LOOKUP_CANCELLED)
            raise
        else:
            lookup.set_result(row)
        finally:
            if self._lookups.get(digest) is lookup:
                del self._lookups[digest]
        valid = _valid(row)
        self._counted(valid)
        if not valid:
            self._refused.add(digest)
            return TokenCheck(None, digest, guess=row is None)
        if active and generation == self._generation and self.active:
            if len(self._entries) >= MAX_ENTRIES:
                self._make_room(now)
            self._entries[digest] = (now + self.ttl, row, _expiry(row))
        return self._used_now(row, digest)

    def _make_room(self, now: float) -> None:
        """Drop the expired entries and keep at most the newest half of the others: the tokens in use now
        stay cached when many organizations take turns (an O(n) pass once per MAX_ENTRIES / 2 entries)."""
        live = [(digest, entry) for digest, entry in self._entries.items() if entry[0] > now]
        self._entries = dict(live[-(MAX_ENTRIES // 2) :])

    def _used_now(self, row: asyncpg.Record, digest: bytes) -> TokenCheck:
        """A valid token's check, its use noted for `token_use_writer` (a dict write, no I/O)."""
        self._used[row["token_id"]] = time.time()
        return TokenCheck(row, digest)

    def take_uses(self) -> dict[UUID, float]:
        """The uses noted since the last call: token id -> when last used (epoch seconds)."""
        used, self._used = self._used, {}
        return used

    def _put_back(self, used: dict[UUID, float]) -> None:
        """Uses a write did not get through go back to the next write (a later use noted meanwhile wins)."""
        for token_id, at in used.items():
            if self._used.get(token_id, 0.0) < at:
                self._used[token_id] = at

    async def write_uses(self) -> None:
        """Write the uses noted so far in one statement. When it fails (logged) or is cancelled (the app
        stopping mid-write) those uses are put back, so the next write (or the last one at shutdown) has
        them; writing one again is harmless (a time is never moved back)."""
        used = self.take_uses()
        if not used:
            return
        try:
            await record_token_uses(self.pool, used)
        except Exception as exc:
            self._put_back(used)
            log.warning("token last-used times not written for %d tokens: %s", len(used), type(exc).__name__)
        except BaseException:
            self._put_back(used)
            raise

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
