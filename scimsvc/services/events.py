"""The events API's use case (README.md, What happened): read a page of events after a cursor, of one
tenant or all, of some types, in the order store/events.py pages them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.product.events import EVENT_TYPES, event_body
from scimsvc.scim.errors import invalid_value
from scimsvc.services.tenants import tenant_or_404
from scimsvc.store import events as store
from scimsvc.store.events import Cursor


@dataclass(frozen=True)
class EventPage:
    """Events in order, and the cursor to ask for the next ones with (the given one when none came)."""

    events: list[dict[str, Any]]
    next_cursor: Cursor


def events_cursor(raw: str | None) -> Cursor:
    """`after` of an events page: a cursor as `next_cursor` gave it; none, the start. A 400 otherwise."""
    if not raw:
        return Cursor()
    try:
        return Cursor.parse(raw)
    except ValueError:
        raise invalid_value(
            f"after must be a cursor as next_cursor gave it (two whole numbers joined by '-', e.g. '0-0'), "
            f"got {raw[:40]!r}"
        ) from None


def event_types(raw: Iterable[str]) -> list[str]:
    """`type` of an events page, repeated or comma-separated (none: every type); a 400 naming an unknown
    one and the known ones."""
    types: list[str] = []
    for value in raw:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if name not in EVENT_TYPES:
                raise invalid_value(
                    f"unknown event type {name[:60]!r}: the types are {', '.join(EVENT_TYPES)}"
                )
            if name not in types:
                types.append(name)
    return types


def tenant_filter(raw: str | None) -> UUID | None:
    """`tenant` of the operator's events page: a tenant id, or none for every tenant; a 400 otherwise."""
    if not raw:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise invalid_value(f"tenant must be a tenant id (a UUID), got {raw[:60]!r}") from None


async def list_events(
    pool: asyncpg.Pool, *, tenant_id: UUID | None, types: list[str], after: Cursor, limit: int
) -> EventPage:
    """Up to `limit` events after `after`, of the tenant (a 404 if it does not exist) or of every tenant
    (`tenant_id` None). A cursor never skips an event: one a transaction still running could yet commit
    before is held back until it does (store/events.py)."""
    if tenant_id is not None:
        await tenant_or_404(pool, tenant_id)
    rows = await store.events_page(pool, tenant_id=tenant_id, types=types, after=after, limit=limit)
    bodies = [event_body(**store.body_of(r)) for r in rows]
    return EventPage(bodies, store.cursor_of(rows[-1]) if rows else after)
