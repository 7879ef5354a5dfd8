"""One line for an error that means PostgreSQL or Redis cannot be used: which one, where, and why.

The CLI prints it instead of a traceback. The address is the URL's host and port, never its password.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import parse_qs, urlsplit

import asyncpg
from redis import exceptions as redis_errors

from scimsvc.settings import Settings

# What PostgreSQL answers when a connection is refused or cannot be made, not when a statement fails.
POSTGRES_CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InvalidAuthorizationSpecificationError,  # wrong password, no such role, pg_hba.conf refusal
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.TooManyConnectionsError,
    OSError,  # refused, unreachable, unknown host
    TimeoutError,
)
REDIS_CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # AuthenticationError too
    redis_errors.TimeoutError,
)


def address(url: str, default_port: int) -> str:
    """`host:port` of a database or Redis URL, without user or password."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:  # postgresql:///db?host=/run/postgresql: a socket folder
        return parse_qs(parts.query).get("host", ["localhost"])[0]
    try:
        port = parts.port
    except ValueError:  # several hosts (h1:5432,h2:5432)
        return hosts
    return hosts if port is not None else f"{hosts}:{default_port}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, redis_errors.RedisError) and isinstance(exc.__cause__ or exc.__context__, OSError):
        return _reason(exc.__cause__ or exc.__context__)  # type: ignore[arg-type]
    return str(exc) or type(exc).__name__


def one_line(exc: BaseException, settings: Settings, *, direct: bool = False) -> str | None:
    """The line to print when `exc` says PostgreSQL or Redis cannot be used, else None (a bug: traceback).

    `direct`: PostgreSQL was reached by `Settings.direct_url` (migrate), named as such when it is set.
    """
    if isinstance(exc, REDIS_CONNECT_ERRORS):
        where = address(settings.redis_url, 6379)
        return f"cannot connect to Redis at {where} (SCIMSVC_REDIS_URL): {_reason(exc)}"
    url, name = settings.database_url, "SCIMSVC_DATABASE_URL"
    if direct and settings.database_direct_url:
        url, name = settings.database_direct_url, "SCIMSVC_DATABASE_DIRECT_URL"
    if isinstance(exc, POSTGRES_CONNECT_ERRORS):
        where = address(url, 5432)
        hint = " (`scimsvc migrate` creates it)" if isinstance(exc, asyncpg.InvalidCatalogNameError) else ""
        return f"cannot connect to PostgreSQL at {where} ({name}): {_reason(exc)}{hint}"
    if isinstance(exc, asyncpg.UndefinedTableError):
        return f"the database at {address(url, 5432)} ({name}) is not migrated ({exc}): run `scimsvc migrate`"
    return None
