"""The asyncpg pool: JSON codecs and connection set-up."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

# Errors that mean PostgreSQL cannot be reached or is restarting, not that the statement was wrong: the
# connection broke or was refused, the server is starting or shutting down, or it has no slot left.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # connection lost, refused by the server, outcome of a commit unknown
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    OSError,  # connect: refused, reset, unreachable
    TimeoutError,  # connect or pool acquire that did not finish in time
)


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


async def create_pool(database_url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool whose connections encode and decode JSON with orjson."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_release,
        command_timeout=60,
    )
    assert pool is not None
    return pool


async def connect(database_url: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool's (CLI and migrations)."""
    conn = await asyncpg.connect(database_url)
    await _init_connection(conn)
    return conn
