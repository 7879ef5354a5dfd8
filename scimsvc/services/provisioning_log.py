"""The provisioning log (README.md, What happened): writing the front end's batches, reading a page of a
tenant's entries with the filters operators give, and each entry's outcome once the worker applied it.

The outcome is read, never written by the worker: for a page, one query for the outbox rows the entries
wrote (applied, pending or failed), one for the events and one for the audit rows carrying their request
ids (and naming the entry's user, for a user's entry), at most `MAX_OUTCOME_ROWS` of each per entry. The
audit rows hold the license decided (allocation, waiting, promotion) even when events are off; the events
name the teams a change reached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.contract import AuditAction
from scimsvc.product.events import event_id
from scimsvc.scim.errors import invalid_value
from scimsvc.scim.resources import scim_datetime
from scimsvc.services.admin_users import storable_text
from scimsvc.store import provisioning_log as store
from scimsvc.store.provisioning_log import LogEntry

__all__ = ["LogEntry", "LogFilters", "log_filters", "log_page", "record_entries"]

BIGINT_MAX = 2**63 - 1
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")
# Audit actions of the worker that decide a license (product/seats.py:seat_action, and the waiting list).
LICENSE_ACTIONS = (
    AuditAction.ALLOCATION,
    AuditAction.RELEASE,
    AuditAction.LICENSE_CHANGE,
    AuditAction.PROMOTION,
)
# Audit rows and events shown per entry at most: a client that reuses one X-Request-Id for every request
# would otherwise load them all on each page view.
MAX_OUTCOME_ROWS = 50
# Rows a page filtered by status alone looks through at most (README.md, What happened).
STATUS_SCAN_ROWS = 10_000


async def record_entries(pool: asyncpg.Pool, entries: list[LogEntry]) -> int:
    """Write a batch of log rows in one statement; returns how many were written."""
    return await store.insert_entries(pool, entries)


@dataclass(frozen=True)
class LogFilters:
    """What a page of the log is narrowed to (every field optional)."""

    status_class: int | None = None
    resource: tuple[str, UUID] | None = None  # ("user" | "group", id)
    user_name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: int | None = None  # entries older than this id


def log_filters(query: Mapping[str, str]) -> LogFilters:
    """The filters of a log query (`status`, `user`, `group`, `since`, `until`, `cursor`); a 400 naming a
    bad value."""
    status = (query.get("status") or "").strip().lower() or None
    if status is not None and status not in STATUS_CLASSES:
        raise invalid_value(f"status must be one of {', '.join(STATUS_CLASSES)}, got {status[:20]!r}")
    user = (query.get("user") or "").strip() or None
    group = (query.get("group") or "").strip() or None
    if user and group:
        raise invalid_value("give user or group, not both")
    resource: tuple[str, UUID] | None = None
    user_name: str | None = None
    if group is not None:
        resource = ("group", _uuid(group, "group must be a group id (a UUID)"))
    elif user is not None:
        try:
            resource = ("user", UUID(user))
        except ValueError:
            user_name = storable_text("user", user)
            if len(user_name) > 256:
                raise invalid_value(
                    "user must be a user id or a userName of at most 256 characters"
                ) from None
    since, until = _time(query, "since"), _time(query, "until")
    if since is not None and until is not None and until <= since:
        raise invalid_value("until must be later than since")
    return LogFilters(
        status_class=int(status[0]) if status else None,
        resource=resource,
        user_name=user_name,
        since=since,
        until=until,
        cursor=_cursor(query),
    )


def _uuid(raw: str, error: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise invalid_value(error) from None


def _time(query: Mapping[str, str], name: str) -> datetime | None:
    raw = (query.get(name) or "").strip()
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid_value(f"{name} must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    if at.tzinfo is None:  # a time without offset is UTC
        return at.replace(tzinfo=UTC)
    try:  # in UTC, as PostgreSQL compares it; an offset can push it past year 1 or 9999
        return at.astimezone(UTC)
    except OverflowError:
        raise invalid_value(f"{name} must be a time between the years 1 and 9999 in UTC") from None


def _cursor(query: Mapping[str, str]) -> int | None:
    raw = (query.get("cursor") or "").strip()
    if not raw:
        return None
    if not _WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= BIGINT_MAX:
        raise invalid_value(
            f"cursor must be a next_cursor of this log: a whole number from 1 to {BIGINT_MAX}"
        )
    return int(raw)


@dataclass(frozen=True)
class LogPage:
    """Entries newest first, with their outcomes; `next_cursor` continues with older ones (None: no more)."""

    entries: list[dict[str, Any]]
    next_cursor: int | None


async def log_page(pool: asyncpg.Pool, tenant_id: UUID, filters: LogFilters, *, limit: int) -> LogPage:
    """A page of the tenant's log, newest first, each entry with its outcome."""
    before = filters.cursor or BIGINT_MAX
    after = 0
    if filters.since is not None or filters.until is not None:
        bounds = await store.id_bounds(pool, tenant_id, filters.since, filters.until)
        if bounds is None:
            return LogPage([], None)
        after = max(after, bounds[0] or 0)
        before = min(before, bounds[1] or BIGINT_MAX)
    user: tuple[UUID | None, str | None] | None = None
    if filters.resource is not None and filters.resource[0] == "user":
        user = await store.user_identity(pool, tenant_id, user_id=filters.resource[1], user_name=None)
    elif filters.user_name is not None:
        user = await store.user_identity(pool, tenant_id, user_id=None, user_name=filters.user_name)
    group_id = (
        filters.resource[1] if filters.resource is not None and filters.resource[0] == "group" else None
    )
    # A status filter over the whole log would scan every row when few match: it looks at most
    # STATUS_SCAN_ROWS rows per page, and a page short of matches still has a cursor to look further.
    floor = None
    if filters.status_class is not None and user is None and group_id is None:
        floor = await store.scan_floor(pool, tenant_id, before, STATUS_SCAN_ROWS)
        if floor is not None and floor >= after:
            after = floor
        else:
            floor = None
    rows = await store.log_page(
        pool,
        tenant_id,
        status_class=filters.status_class,
        group_id=group_id,
        user=user,
        since=filters.since,
        until=filters.until,
        before_id=before,
        after_id=after,
        limit=limit,
    )
    outbox_ids = sorted({i for r in rows for i in r["outbox_ids"]})
    keys = sorted({_outcome_key(r) for r in rows if r["outbox_ids"]}, key=str)  # only writes have one
    outbox = {r["id"]: r for r in await store.outbox_rows(pool, tenant_id, outbox_ids)}
    audits = await store.audit_of_entries(pool, tenant_id, keys, limit=MAX_OUTCOME_ROWS)
    applied_by: dict[store.OutcomeKey, set[str]] = {k: set() for k in keys}
    for r in rows:
        for i in r["outbox_ids"]:
            if i in outbox and outbox[i]["applied_tx"] is not None:
                applied_by[_outcome_key(r)].add(outbox[i]["applied_tx"])
    events = await store.events_of_entries(pool, tenant_id, applied_by, limit=MAX_OUTCOME_ROWS)
    entries = []
    for r in rows:
        key = _outcome_key(r)
        told = events.get(key, []) if _events_known(r, outbox) else None
        entries.append({**render_entry(r), "outcome": outcome(r, outbox, audits.get(key, []), told)})
    if len(rows) == limit:
        return LogPage(entries, rows[-1]["id"])
    return LogPage(entries, floor + 1 if floor is not None else None)


async def last_request(pool: asyncpg.Pool, tenant_id: UUID) -> dict[str, Any] | None:
    """The newest request of the tenant's identity provider in the log (`render_entry`), None when none
    was logged (yet, or since retention deleted the older ones)."""
    row = await store.newest_entry(pool, tenant_id)
    return render_entry(row) if row is not None else None


def _outcome_key(row: Mapping[str, Any]) -> store.OutcomeKey:
    """A user's entry (for a POST, the created user's) is matched on its user as well as its request id:
    a promotion carries the request id of the release that freed its seat, and clients choose request ids."""
    user_id = row["resource_id"] if row["resource_type"] == "user" else None
    return store.OutcomeKey(row["request_id"], user_id)


def _events_known(row: Mapping[str, Any], outbox: Mapping[int, Mapping[str, Any]]) -> bool:
    """Whether the entry's events can be found: each of its outbox rows is still kept (retention deletes
    applied rows before the log's) and, once applied, says which transaction applied it."""
    return all(
        i in outbox and (outbox[i]["applied_at"] is None or outbox[i]["applied_tx"] is not None)
        for i in row["outbox_ids"]
    )


def render_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """A log row as the admin API and the console show it."""
    return {
        "id": row["id"],
        "at": scim_datetime(row["at"]),
        "request_id": row["request_id"],
        "idp": row["idp"],
        "method": row["method"],
        "endpoint": row["endpoint"],
        "resource_type": row["resource_type"],
        "resource_id": str(row["resource_id"]) if row["resource_id"] else None,
        "user_name": row["user_name"],
        "summary": row["summary"],
        "status": row["status"],
        "scim_type": row["scim_type"],
        "detail": row["detail"],
        "reason": row["reason"],
        "duration_ms": round(row["duration_ms"], 2),
    }


def outcome(
    row: Mapping[str, Any],
    outbox: Mapping[int, Mapping[str, Any]],
    audits: list[asyncpg.Record],
    events: list[asyncpg.Record] | None,
) -> dict[str, Any] | None:
    """What became of an accepted write: `applied`, `pending` or `failed` (its outbox rows), the license
    decided (its audit rows) and the teams reached (its events); None when it wrote nothing. `events`
    None: they are no longer known (its outbox rows are gone), so `events` and `teams` are None too."""
    ids = list(row["outbox_ids"])
    if not ids:
        return None
    # An outbox row gone was applied: retention deletes only applied rows.
    found = [outbox[i] for i in ids if i in outbox]
    unapplied = [o for o in found if o["applied_at"] is None]
    failed = [o for o in unapplied if o["last_error"]]
    state = "failed" if failed else "pending" if unapplied else "applied"
    license_rows = [a for a in audits if a["action"] in LICENSE_ACTIONS and a["detail"]]
    teams = [
        e["data"]["team"].get("name")
        for e in events or []
        if e["type"] in ("team.member_added", "group.linked") and isinstance(e["data"].get("team"), dict)
    ]
    applied_at = [o["applied_at"] for o in found if o["applied_at"] is not None]
    return {
        "state": state,
        "applied_at": scim_datetime(max(applied_at)) if applied_at and state == "applied" else None,
        "error": failed[-1]["last_error"][:500] if failed else None,
        "attempts": max((o["attempts"] for o in found), default=0),
        "license": license_rows[-1]["detail"].get("to") if license_rows else None,
        "waiting": any(a["action"] == AuditAction.WAITING for a in audits),
        "teams": sorted({t for t in teams if t}) if events is not None else None,
        "audit": [
            {"id": a["id"], "action": a["action"], "user_id": str(a["user_id"]) if a["user_id"] else None}
            for a in audits
        ],
        "events": [{"id": event_id(e["id"]), "type": e["type"]} for e in events]
        if events is not None
        else None,
    }
