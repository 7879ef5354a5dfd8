"""Users as operators see them (admin API and console): filtered pages with teams, one user, the CSV
export, and finding a user by what an operator typed."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.product.users import EXPORT_HEADER, export_row
from scimsvc.scim.errors import invalid_value, not_found
from scimsvc.store import teams, user_admin, users
from scimsvc.store.db import transaction

USER_STATES = ("active", "inactive", "unlinked")
LICENSE_FILTERS = ("full", "free", "free_restricted", "none")
NAME_MATCHES = 1000  # users whose userName contains what was typed, searched for the exact one


def storable_text(name: str, value: str) -> str:
    """`value` if PostgreSQL text can hold it; a 400 naming `name` for a NUL or a lone surrogate."""
    if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
        raise invalid_value(f"{name} must not contain the NUL character (\\u0000) or an unpaired surrogate")
    return value


@dataclass(frozen=True)
class UserPage:
    """A page of users (oldest first) and each one's teams ({id, name}), by user id."""

    rows: list[asyncpg.Record]
    teams: dict[UUID, list[dict[str, Any]]]


async def user_page(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    state: str | None,
    license: str | None,
    q: str | None,
    after: UUID | None,
    limit: int,
) -> UserPage:
    """The tenant's users (linked or not) matching the filters, after the user `after`, and their teams."""
    rows = await user_admin.admin_page(
        pool, tenant_id, state=state, license=license, q=q, after=after, limit=limit
    )
    return UserPage(rows, await teams.teams_of(pool, [r["id"] for r in rows]))


async def admin_user(pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID) -> asyncpg.Record | None:
    """One user of the tenant as the user list shows it, or None."""
    rows = await user_admin.admin_page(
        pool, tenant_id, state=None, license=None, q=None, after=None, limit=1, only=user_id
    )
    return rows[0] if rows else None


async def get_user(pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID) -> UserPage:
    """One user of the tenant and its teams, as a page of one; a 404 if the tenant has no such user."""
    row = await admin_user(pool, tenant_id, user_id)
    if row is None:
        raise not_found(f"user {user_id} not found in tenant {tenant_id}")
    return UserPage([row], await teams.teams_of(pool, [user_id]))


async def find_user(pool: asyncpg.Pool, tenant_id: UUID, typed: str) -> UUID:
    """A user of the tenant by id or by exact userName (case-insensitive); 400 naming what was typed."""
    if not typed:
        raise invalid_value("user: enter a user's id or userName")
    storable_text("user", typed)
    try:
        wanted = UUID(typed)
    except ValueError:
        # userName contains what was typed; the exact one (case-insensitive) is among the first matches.
        rows = await user_admin.admin_page(
            pool, tenant_id, state=None, license=None, q=typed, after=None, limit=NAME_MATCHES
        )
        match = [r["id"] for r in rows if r["user_name"].lower() == typed.lower()]
    else:
        row = await admin_user(pool, tenant_id, wanted)
        match = [row["id"]] if row is not None else []
    if not match:
        raise invalid_value(
            f"user: no user {typed!r} in this organization (give its id or its exact userName)"
        )
    return match[0]


async def display_names(pool: asyncpg.Pool, tenant_id: UUID, user_ids: list[UUID]) -> dict[UUID, str]:
    """displayName (else userName) of those of `user_ids` that are linked users of the tenant."""
    return await users.display_names(pool, tenant_id, user_ids)


@asynccontextmanager
async def exported_users(
    pool: asyncpg.Pool, tenant_id: UUID, *, state: str | None, license: str | None, q: str | None
) -> AsyncIterator[AsyncIterator[Sequence[Any]]]:
    """The CSV export's rows, header first, read from a server-side cursor in one read-only transaction
    (never all in memory); iterate them inside this context."""
    async with transaction(pool, readonly=True) as conn:
        cursor = user_admin.admin_export_cursor(conn, tenant_id, state=state, license=license, q=q)
        async with aclosing(_export_rows(cursor)) as rows:
            yield rows


async def _export_rows(cursor: Any) -> AsyncGenerator[Sequence[Any], None]:
    yield EXPORT_HEADER
    async for row in cursor:
        yield export_row(row)
