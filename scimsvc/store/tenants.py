"""Tenants and their SCIM bearer tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.store.batches import Batcher, in_batch_order

TENANT_COLUMNS = (
    "id, name, scim_enabled, seats, flexible_licenses, default_license, fallback_license, "
    "allowed_domains, domain_teams, rate_limit, created_at, updated_at"
)
# Settings the admin API may change; the names double as column names.
TENANT_SETTINGS = (
    "name",
    "scim_enabled",
    "seats",
    "flexible_licenses",
    "default_license",
    "fallback_license",
    "allowed_domains",
    "domain_teams",
    "rate_limit",
)

INSERT_TENANT = f"""
INSERT INTO tenants (name, scim_enabled, seats, flexible_licenses, default_license, fallback_license,
                     allowed_domains, domain_teams, rate_limit)
VALUES ($1, coalesce($2, true), coalesce($3, 10), coalesce($4, false), coalesce($5, 'free'),
        coalesce($6, 'free_restricted'), coalesce($7, '{{}}'::text[]), coalesce($8, '{{}}'::jsonb),
        coalesce($9, '{{}}'::jsonb))
RETURNING {TENANT_COLUMNS}
"""
SELECT_TENANT = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
# An action reads the settings it changes under this lock, so its "from" is what it replaced.
SELECT_TENANT_FOR_UPDATE = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1 FOR NO KEY UPDATE"
SELECT_TENANT_BY_NAME = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE name = $1 ORDER BY created_at LIMIT 1"
TOKEN_COLUMNS = "id, label, created_by, created_at, last_used_at, expires_at, revoked_at"
INSERT_TOKEN = f"""
INSERT INTO scim_tokens (tenant_id, token_hash, label, created_by, expires_at) VALUES ($1, $2, $3, $4, $5)
RETURNING {TOKEN_COLUMNS}
"""
REVOKE_TOKEN = f"""
UPDATE scim_tokens SET revoked_at = now()
WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL
RETURNING {TOKEN_COLUMNS}
"""
# Revoked and expired tokens are found too: they are ones we issued, not guesses
# (scimsvc/web/middlewares.py). `expires_at` is kept so a cached entry ends with the token
# (scimsvc/web/token_cache.py); `expired` is PostgreSQL's word on it at lookup time.
_TOKEN_TENANT_COLUMNS = """k.token_hash, k.id AS token_id, k.revoked_at IS NOT NULL AS revoked, k.expires_at,
       coalesce(k.expires_at <= now(), false) AS expired, k.tenant_id, t.scim_enabled, t.allowed_domains,
       t.rate_limit"""
SELECT_TOKEN_TENANT = f"""
SELECT {_TOKEN_TENANT_COLUMNS}
FROM scim_tokens k JOIN tenants t ON t.id = k.tenant_id
WHERE k.token_hash = $1
"""
# SELECT_TOKEN_TENANT for the lookups that arrive together (store/batches.py): each found token with its
# place in the array (`batch_row`, 1-based).
SELECT_TOKENS_TENANTS = f"""
SELECT v.n AS batch_row, {_TOKEN_TENANT_COLUMNS}
FROM unnest($1::bytea[]) WITH ORDINALITY AS v(token_hash, n)
JOIN scim_tokens k ON k.token_hash = v.token_hash JOIN tenants t ON t.id = k.tenant_id
"""
# When IdPs last used tokens: one statement per flush, every token used since the last one. A process never
# moves a time back (another process may have written a later use); the change notification of
# 0010_auth_changes_notify.sql does not fire on this column (0022_token_use_and_expiry.sql). The rows are
# locked in id order first (`ORDER BY ... FOR UPDATE`), so two processes' batches of the same tokens
# queue behind each other and never deadlock.
RECORD_TOKEN_USES = """
WITH locked AS (
    SELECT k.id, v.at
    FROM scim_tokens k JOIN unnest($1::uuid[], $2::float8[]) AS v(id, at) ON k.id = v.id
    WHERE k.last_used_at IS NULL OR k.last_used_at < to_timestamp(v.at)
    ORDER BY k.id
    FOR UPDATE OF k
)
UPDATE scim_tokens k SET last_used_at = to_timestamp(l.at)
FROM locked l
WHERE k.id = l.id AND (k.last_used_at IS NULL OR k.last_used_at < to_timestamp(l.at))
"""
# The console's tenants list: each tenant with the seats its users hold.
LIST_TENANTS = """
SELECT t.id, t.name, t.scim_enabled, t.seats, t.created_at,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.license = 'full') AS used
FROM tenants t
ORDER BY lower(t.name), t.created_at, t.id
LIMIT $1
"""
LIST_TOKENS = f"""
SELECT {TOKEN_COLUMNS} FROM scim_tokens WHERE tenant_id = $1 ORDER BY created_at, id
"""
SELECT_TOKEN = f"SELECT {TOKEN_COLUMNS} FROM scim_tokens WHERE tenant_id = $1 AND id = $2"

TOKEN_PREFIX = "scim_"
# Migration 0010 notifies this channel on any change to scim_tokens or tenants (scimsvc/web/token_cache.py).
AUTH_CHANNEL = "scimsvc_auth_changed"


TOKEN_SHAPE = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{43}")  # what new_token makes


def new_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe, with a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def could_be_token(token: str) -> bool:
    """Whether `token` has the shape of one `new_token` makes (else no lookup can find it)."""
    return TOKEN_SHAPE.fullmatch(token) is not None


def hash_token(token: str) -> bytes:
    """The only form in which a token is stored."""
    return hashlib.sha256(token.encode()).digest()


async def create_tenant(conn: asyncpg.Connection, *, name: str, settings: dict[str, Any]) -> asyncpg.Record:
    """Insert a tenant; settings not given take the column defaults."""
    return await conn.fetchrow(
        INSERT_TENANT,
        name,
        settings.get("scim_enabled"),
        settings.get("seats"),
        settings.get("flexible_licenses"),
        settings.get("default_license"),
        settings.get("fallback_license"),
        settings.get("allowed_domains"),
        settings.get("domain_teams"),
        settings.get("rate_limit"),
    )


async def get_tenant(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_TENANT, tenant_id)


async def lock_tenant(conn: asyncpg.Connection, tenant_id: UUID) -> asyncpg.Record | None:
    """The tenant's row, locked until the transaction ends; None if there is no such tenant."""
    return await conn.fetchrow(SELECT_TENANT_FOR_UPDATE, tenant_id)


async def list_tenants(conn: asyncpg.Connection | asyncpg.Pool, *, limit: int) -> list[asyncpg.Record]:
    """Tenants by name, with their seats and seats used."""
    return await conn.fetch(LIST_TENANTS, limit)


async def find_tenant_by_name(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> asyncpg.Record | None:
    """The oldest tenant called `name` (names are labels, not keys)."""
    return await conn.fetchrow(SELECT_TENANT_BY_NAME, name)


async def update_tenant(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Apply `changes` (keys from TENANT_SETTINGS only) and return the tenant, or None if unknown."""
    unknown = set(changes) - set(TENANT_SETTINGS)
    if unknown:
        raise ValueError(f"not tenant settings: {sorted(unknown)}")
    if not changes:
        return await get_tenant(conn, tenant_id)
    names = list(changes)
    # Column names come from TENANT_SETTINGS (checked above), values are parameters.
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    sql = f"UPDATE tenants SET {assignments}, updated_at = now() WHERE id = $1 RETURNING {TENANT_COLUMNS}"
    return await conn.fetchrow(sql, tenant_id, *(changes[n] for n in names))


async def create_token(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    *,
    label: str = "",
    created_by: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[asyncpg.Record, str]:
    """Issue a new token for the tenant; returns its row (`TOKEN_COLUMNS`) and the token, which is never
    stored."""
    token = new_token()
    row = await conn.fetchrow(INSERT_TOKEN, tenant_id, hash_token(token), label, created_by, expires_at)
    return row, token


async def revoke_token(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, token_id: UUID
) -> asyncpg.Record | None:
    """Revoke one of the tenant's tokens: its row (id, label, created_at, revoked_at), or None if it does
    not exist or is already revoked."""
    return await conn.fetchrow(REVOKE_TOKEN, tenant_id, token_id)


async def list_tokens(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_TOKENS, tenant_id)


async def get_token(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, token_id: UUID
) -> asyncpg.Record | None:
    """One of the tenant's tokens (`TOKEN_COLUMNS`), revoked or not; None if the tenant has no such token."""
    return await conn.fetchrow(SELECT_TOKEN, tenant_id, token_id)


async def record_token_uses(pool: asyncpg.Pool, uses: dict[UUID, float]) -> None:
    """Set each token's `last_used_at` to its time (seconds since the epoch), in one statement."""
    if uses:
        ids = sorted(uses)  # the order the rows are locked in (RECORD_TOKEN_USES)
        await pool.execute(RECORD_TOKEN_USES, ids, [uses[token_id] for token_id in ids])


async def token_by_hash(conn: asyncpg.Connection | asyncpg.Pool, digest: bytes) -> asyncpg.Record | None:
    """The token (by its `hash_token`) with its id and tenant (token_id, revoked, expires_at, expired,
    tenant_id, scim_enabled, allowed_domains, rate_limit), revoked or not; None when no such token was ever
    issued."""
    return _issued(await conn.fetchrow(SELECT_TOKEN_TENANT, digest), digest)


async def tokens_by_hash(pool: asyncpg.Pool, digests: Sequence[bytes]) -> list[asyncpg.Record | None]:
    """`token_by_hash` of each digest, in one statement."""
    rows = in_batch_order(await pool.fetch(SELECT_TOKENS_TENANTS, list(digests)), len(digests))
    return [_issued(row, digest) for row, digest in zip(rows, digests, strict=True)]


def token_lookups(pool: asyncpg.Pool) -> Batcher[bytes, asyncpg.Record | None]:
    """The batcher of the token cache's lookups: many organizations' first requests at once are one
    statement, not one each."""
    return Batcher(pool, one=token_by_hash, many=tokens_by_hash, key=lambda digest: digest, in_flight=2)


def _issued(row: asyncpg.Record | None, digest: bytes) -> asyncpg.Record | None:
    # The lookup is by a hash the caller cannot steer; the constant-time compare guards the final check.
    if row is None or not secrets.compare_digest(row["token_hash"], digest):
        return None
    return row
