"""The audit log as operators read it (admin API and console): newest first, paged by the last id seen."""

from __future__ import annotations

import re
from collections.abc import Mapping
from uuid import UUID

import asyncpg

from scimsvc.scim.errors import invalid_value
from scimsvc.store import audit

BIGINT_MAX = 2**63 - 1  # audit ids are a bigint column: a larger number cannot even be sent to PostgreSQL
_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")
_ACTION_NAME = re.compile(r"[a-z][a-z_]{0,63}")  # every audit action is named so (README.md lists them)


def audit_before(query: Mapping[str, str]) -> int | None:
    """`before` of an audit page (the last audit id seen), 1..2^63-1; a 400 naming the range otherwise."""
    raw = query.get("before")
    if not raw:
        return None
    if not _WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= BIGINT_MAX:
        raise invalid_value(f"before must be an audit id: a whole number from 1 to {BIGINT_MAX}")
    return int(raw)


def audit_action_filter(query: Mapping[str, str]) -> str | None:
    """`action` of an audit page (surrounding spaces dropped), None when absent or empty; a 400 when it
    cannot be an action name."""
    raw = query.get("action", "").strip()
    if not raw:
        return None
    if not _ACTION_NAME.fullmatch(raw):
        raise invalid_value(
            "action must be an audit action name: lower-case letters and _ (e.g. scim_disabled, "
            "settings_changed; README.md lists them)"
        )
    return raw


async def audit_page(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    user_id: UUID | None,
    before: int | None,
    limit: int,
    action: str | None = None,
) -> list[asyncpg.Record]:
    """Up to `limit` audit rows of the tenant (of one user, of one action, if given), newest first, older
    than `before`."""
    return await audit.audit_page(
        pool, tenant_id, user_id=user_id, before_id=before, limit=limit, action=action
    )


async def operator_audit_page(pool: asyncpg.Pool, *, before: int | None, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` audit rows of no tenant (the operator's webhook endpoints), newest first."""
    return await audit.operator_audit_page(pool, before_id=before, limit=limit)
