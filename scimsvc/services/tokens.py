"""SCIM tokens as operators manage them (admin API and console): create (shown once), list, revoke."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from scimsvc.store import tenants as store


async def list_tokens(pool: asyncpg.Pool, tenant_id: UUID) -> list[asyncpg.Record]:
    """The tenant's SCIM tokens: id, created_at, revoked_at (never a token's value: only its hash is kept)."""
    return await store.list_tokens(pool, tenant_id)


async def create_token(pool: asyncpg.Pool, tenant_id: UUID) -> tuple[UUID, str]:
    """A new token of the tenant: its id and its value, shown once by the caller (only its hash is kept)."""
    return await store.create_token(pool, tenant_id)


async def revoke_token(pool: asyncpg.Pool, tenant_id: UUID, token_id: UUID) -> bool:
    """Revoke a live token of the tenant; False when it is not one (unknown, another tenant's, or revoked)."""
    return await store.revoke_token(pool, tenant_id, token_id)
