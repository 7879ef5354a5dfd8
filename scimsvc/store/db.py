"""The asyncpg pool: JSON codecs and connection set-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolAcquireContext

# Errors that mean PostgreSQL cannot be reached or is restarting, not that the statement was wrong: the
# connection broke or was refused, the server is starting or shutting down, or it has no slot left.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # connection lost, refused by the server, outcome of a commit unknown
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,  # cancelled by statement_timeout or `in_time`: it answered too late
    asyncpg.IdleInTransactionSessionTimeoutError,  # the server ended a transaction stuck that long
    OSError,  # connect: refused, reset, unreachable
    TimeoutError,  # a connect, pool acquire or statement that did not finish in time
)
# A wait for PostgreSQL that ran out, or a caller that stopped waiting: the connection's state is unknown.
STALLED = (TimeoutError, asyncio.CancelledError)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


async def _release(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool without a round trip.

    asyncpg's default reset sends a query on every release (unlock session advisory locks, close
    cursors, unlisten, reset settings). Pooled connections never hold such session state: advisory
    locks are transaction-scoped, cursors live in transactions, nothing listens or SETs. An open
    transaction is still rolled back by asyncpg before this runs.
    """


def unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database is unreachable for now (retry later), not that a query is wrong."""
    if isinstance(exc, asyncpg.InterfaceError):
        # A connection closed under a query ("connection is closed"), or a pool closing at shutdown.
        return "clos" in str(exc)
    return isinstance(exc, UNAVAILABLE)


class BoundedPool(asyncpg.Pool):
    """asyncpg's pool where a request never waits long for PostgreSQL, and a write it stopped waiting
    for never commits afterwards (README, "When PostgreSQL stalls").

    - Every wait is bounded by `wait_seconds`: for a pooled connection (`acquire`; taking one that is
      free at once is no wait), a new connection, and each statement (asyncpg's `command_timeout`). A
      connection whose wait ran out (or whose caller was cancelled) is dropped at once: asyncpg would
      otherwise send a cancel request and wait for its answer, and a ROLLBACK after it, over the very
      link that stopped answering.
    - PostgreSQL gives up before the request does, so it never applies what the request was told failed:
      a transaction idle longer than half the bound is ended by the server (a COMMIT stuck on the way
      arrives at a closed session), a statement longer than 0.8 of it is cancelled, and a single-statement
      write checks `write_by()` when it reaches PostgreSQL (`in_time`, migration 0013).
    """

    def __init__(self, *args: Any, wait_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wait_seconds = wait_seconds

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        if timeout is None and self.get_idle_size():
            return _DroppedWhenStalled(self, None)  # a connection is free now: taking it never waits
        return _DroppedWhenStalled(self, self.wait_seconds if timeout is None else timeout)

    def write_by(self) -> datetime:
        """The latest moment a single-statement write sent now may still be applied (`in_time`)."""
        return datetime.now(UTC) + timedelta(seconds=self.wait_seconds / 2)


async def fetch_in_time(db: asyncpg.Pool | asyncpg.Connection, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run a single-statement write whose last parameter is `in_time`'s: from a bounded pool, the moment
    after which PostgreSQL refuses it, taken once it has a connection (waiting for one is bounded on its
    own); from any other pool or a connection (whose transaction's COMMIT is bounded instead), None."""
    if not isinstance(db, BoundedPool):
        return await db.fetch(sql, *args, None)
    async with db.acquire() as conn:
        return await conn.fetch(sql, *args, db.write_by())


class _DroppedWhenStalled(PoolAcquireContext):
    """A pooled connection, waited for at most `bound` seconds (None: no bound, one is free at once).

    The bound is an `asyncio.timeout` around asyncpg's acquire, not asyncpg's own acquire timeout: that
    one runs the acquire in a task of its own with a timer, and bounds the release's reset by a second
    timer, on every statement. The release needs none: its reset sends nothing (`_release`), and the
    ROLLBACK of a transaction left open is a statement, bounded by `command_timeout`.
    """

    __slots__ = ("bound",)

    def __init__(self, pool: asyncpg.Pool, bound: float | None) -> None:
        super().__init__(pool, None)
        self.bound = bound

    async def __aenter__(self) -> Any:
        if self.bound is None:
            return await super().__aenter__()
        async with asyncio.timeout(self.bound):
            return await super().__aenter__()

    def __await__(self) -> Any:
        return self.__aenter__().__await__()

    async def __aexit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        if self.connection is not None and isinstance(exc, STALLED):
            self.connection.terminate()  # PostgreSQL rolls back whatever the connection left open
        await super().__aexit__(exc_type, exc, tb)


def through_pooler(pooler: str) -> dict[str, Any]:
    """Connection options for `pooler` (`Settings.database_pooler`).

    Behind a transaction pooler (PgBouncer `pool_mode = transaction`) each transaction, or statement
    outside one, may run on another server connection, shared with other clients: a named prepared
    statement (asyncpg's statement cache) would be missing there, and a session setting would reach
    other clients. asyncpg then prepares unnamed statements, described and bound in one exchange (it
    sends Flush, not Sync, in between), which the pooler keeps on one server connection.
    """
    return {"statement_cache_size": 0} if pooler == "transaction" else {}


async def create_pool(
    database_url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    wait_seconds: int | None = None,
    pooler: str = "none",
) -> asyncpg.Pool:
    """A connection pool whose connections encode and decode JSON with orjson.

    With `wait_seconds`, a `BoundedPool` (the web's); without, waits are bounded only by a 60 s statement
    timeout (the worker's and the CLI's: a job may wait for a connection and run long statements).
    Behind a transaction pooler, PostgreSQL's own bounds of the bounded pool (statement and idle in
    transaction timeouts) are the pooler's to set (README.md, "PgBouncer"): they are session settings.
    """
    if wait_seconds is None:
        pool = await asyncpg.create_pool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_release,
            command_timeout=60,
            **through_pooler(pooler),
        )
        assert pool is not None
        return pool
    server_bounds = {
        # PostgreSQL cancels a statement (at 0.8 of the bound) before the request stops waiting for it.
        "statement_timeout": f"{wait_seconds * 800}",
        "idle_in_transaction_session_timeout": f"{wait_seconds * 500}",
    }
    bounded = BoundedPool(
        database_url,
        wait_seconds=wait_seconds,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,  # asyncpg's defaults: Pool() has none of create_pool's
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_release,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        timeout=wait_seconds,  # connect
        command_timeout=wait_seconds,
        server_settings=None if pooler == "transaction" else server_bounds,
        **through_pooler(pooler),
    )
    await bounded
    return bounded


@asynccontextmanager
async def transaction(pool: asyncpg.Pool, *, readonly: bool = False) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection in a transaction: committed at the end, rolled back on an error, and dropped
    without a ROLLBACK when a wait for PostgreSQL ran out (the server rolls back a closed session).

    A read-only one commits nothing that could land late, so it may stay idle (a CSV export waiting for
    a slow client) past the bounded pool's idle limit.
    """
    async with pool.acquire() as conn:
        tx = conn.transaction(readonly=readonly)
        await tx.start()
        try:
            if readonly and isinstance(pool, BoundedPool):
                await conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            yield conn
        except STALLED:
            raise  # no ROLLBACK over a link that stopped answering: the pool drops the connection
        except BaseException:
            await tx.rollback()
            raise
        await tx.commit()


async def connect(database_url: str, *, pooler: str = "none") -> asyncpg.Connection:
    """One connection with the same codecs as the pool's (CLI and migrations)."""
    conn = await asyncpg.connect(database_url, **through_pooler(pooler))
    await _init_connection(conn)
    return conn
