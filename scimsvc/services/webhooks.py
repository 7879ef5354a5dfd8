"""Webhook endpoints as operators manage them (admin API and console): register with the URL checked and
its host resolved, change, rotate the secret, delete, read deliveries, replay events; every change audited
in its own transaction (README.md, What happened, Webhooks).

No secret is stored: an endpoint's `whsec_` secret is derived from SCIMSVC_WEBHOOK_SIGNING_KEY, its id and
its generation (`product/webhooks.py:endpoint_secret`), and is handed out only in the answer to a create or
a rotation.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from scimsvc.contract import AuditAction
from scimsvc.product.events import EVENT_TYPES, event_id
from scimsvc.product.webhooks import address_problem, endpoint_secret, url_problem
from scimsvc.scim.errors import ScimError, invalid_value, not_found
from scimsvc.services.actions import ActionScope, wake_deliverer
from scimsvc.settings import Settings, parse_networks
from scimsvc.store import webhook_endpoints as store
from scimsvc.store.audit import audit_action
from scimsvc.store.db import transaction
from scimsvc.store.tenants import get_tenant

REPLAY_LIMIT = 10_000  # events one replay may queue; a longer range is refused, to be replayed in parts
ATTEMPTS_SHOWN = 20  # the latest attempts listed under each delivery
DISABLED_BY_HAND = "disabled by an operator"
NO_SIGNING_KEY = (
    "webhooks cannot be signed: set SCIMSVC_WEBHOOK_SIGNING_KEY on the server (a random secret of 32 "
    "characters or more), then try again"
)
_EVENT_ID = re.compile(r"evt_([1-9][0-9]{0,17})")


@dataclass(frozen=True)
class Delivery:
    """A delivery of an endpoint with its latest attempts (newest first)."""

    row: asyncpg.Record
    attempts: list[asyncpg.Record]


def _owner(owner: UUID | None) -> str:
    return f"the endpoints of tenant {owner}" if owner else "the operator's endpoints"


def _missing(owner: UUID | None, endpoint_id: UUID) -> ScimError:
    return not_found(f"webhook endpoint {endpoint_id} not found among {_owner(owner)}")


def event_types_of(raw: list[str]) -> list[str]:
    """The endpoint's event types, sorted and without repeats; a 400 naming any unknown one."""
    unknown = sorted({t for t in raw if t not in EVENT_TYPES})
    if unknown:
        raise invalid_value(
            f"event_types: unknown event type(s) {', '.join(unknown)}; "
            f"the types are {', '.join(EVENT_TYPES)} (an empty list means every type)"
        )
    return sorted(set(raw))


class UrlRefused(ScimError):
    """400: an endpoint's URL cannot be used, and which way (`kind`): its form ("form"), its host not found
    ("not_found") or not resolved in time ("timeout"), or an address of a network events are not sent to
    ("private"). The detail names it for the admin API; the console words it by `kind`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(400, detail, "invalidValue")
        self.kind = kind


async def check_url(settings: Settings, url: str) -> None:
    """A 400 with the reason when `url` cannot be a webhook endpoint: its form (https only, ...) or an
    address its host resolves to (private, loopback or link-local unless allowed). The worker checks the
    addresses again before every attempt: a name may later resolve elsewhere."""
    problem = url_problem(url, allow_http=settings.webhook_allow_http)
    if problem:
        raise UrlRefused("form", f"url: {problem}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
            settings.webhook_timeout_seconds,
        )
    except TimeoutError:
        raise UrlRefused(
            "timeout", f"url: the host {host!r} did not resolve within {settings.webhook_timeout_seconds} s"
        ) from None
    except (OSError, UnicodeError, ValueError):
        raise UrlRefused("not_found", f"url: the host {host!r} does not resolve to any address") from None
    allowed = parse_networks(settings.webhook_allowed_networks)
    for address in sorted({str(info[4][0]) for info in infos}):
        if problem := address_problem(address, allowed=allowed):
            raise UrlRefused("private", f"url: the host {host!r} resolves to {problem}")


def _signing_key(settings: Settings) -> str:
    if not settings.webhook_signing_key:
        raise ScimError(409, NO_SIGNING_KEY)
    return settings.webhook_signing_key


async def _check_tenant(conn: asyncpg.Connection | asyncpg.Pool, owner: UUID | None) -> None:
    if owner is not None and await get_tenant(conn, owner) is None:
        raise not_found(f"tenant {owner} not found")


async def _audit(
    conn: asyncpg.Connection,
    scope: ActionScope,
    owner: UUID | None,
    action: AuditAction,
    detail: dict[str, Any],
) -> None:
    # An operator endpoint's change is audited with no tenant (`GET /admin/v1/audit` lists those).
    actor = scope.actor
    await audit_action(conn, owner, action, actor=actor.kind, detail=detail, request_id=actor.request_id)


async def create_endpoint(
    scope: ActionScope, owner: UUID | None, data: Mapping[str, Any]
) -> tuple[asyncpg.Record, str]:
    """Register an endpoint of the tenant `owner` (None: the operator's, for every tenant) from validated
    `WebhookCreateSchema` data: the row and its secret (shown once).

    409 without a signing key; 400 for a URL that may not be reached or an unknown event type.
    """
    signing_key = _signing_key(scope.settings)
    event_types = event_types_of(data.get("event_types", []))
    await check_url(scope.settings, data["url"])
    async with transaction(scope.pool) as conn:
        await _check_tenant(conn, owner)
        row = await store.create_endpoint(
            conn,
            tenant_id=owner,
            url=data["url"],
            description=data.get("description", ""),
            event_types=event_types,
            enabled=data.get("enabled", True),
        )
        shown = ("url", "description", "event_types", "enabled")
        detail = {"endpoint_id": str(row["id"]), **{k: row[k] for k in shown}}
        await _audit(conn, scope, owner, AuditAction.WEBHOOK_CREATED, detail)
    return row, endpoint_secret(signing_key, row["id"], row["secret_generation"])


async def list_endpoints(pool: asyncpg.Pool, owner: UUID | None) -> list[asyncpg.Record]:
    """The endpoints of the tenant `owner` (None: the operator's), oldest first; 404 for no such tenant."""
    await _check_tenant(pool, owner)
    return await store.list_endpoints(pool, owner)


async def endpoint_or_404(pool: asyncpg.Pool, owner: UUID | None, endpoint_id: UUID) -> asyncpg.Record:
    """One endpoint of `owner`; a 404 for any other (another tenant's, or the operator's via a tenant)."""
    row = await store.get_endpoint(pool, owner, endpoint_id)
    if row is None:
        raise _missing(owner, endpoint_id)
    return row


async def update_endpoint(
    scope: ActionScope, owner: UUID | None, endpoint_id: UUID, data: Mapping[str, Any]
) -> asyncpg.Record:
    """Change an endpoint from validated `WebhookUpdateSchema` data; audited with each field's from → to.

    Turning it on clears why it was off and its failure clock; turning it off says an operator did.
    """
    changes = dict(data)
    if "event_types" in changes:
        changes["event_types"] = event_types_of(changes["event_types"])
    if "url" in changes:
        await check_url(scope.settings, changes["url"])
    async with transaction(scope.pool) as conn:
        old = await store.get_endpoint(conn, owner, endpoint_id, for_update=True)
        if old is None:
            raise _missing(owner, endpoint_id)
        changed = {k: {"from": old[k], "to": v} for k, v in changes.items() if old[k] != v}
        if not changed:
            return old
        row = await store.update_endpoint(conn, owner, endpoint_id, changes, disabled_reason=DISABLED_BY_HAND)
        assert row is not None  # locked above
        edited = {k: v for k, v in changed.items() if k != "enabled"}
        if edited:
            detail = {"endpoint_id": str(endpoint_id), "changes": edited}
            await _audit(conn, scope, owner, AuditAction.WEBHOOK_UPDATED, detail)
        if "enabled" in changed:
            action = AuditAction.WEBHOOK_ENABLED if row["enabled"] else AuditAction.WEBHOOK_DISABLED
            toggled = {"endpoint_id": str(endpoint_id)}
            if not row["enabled"]:
                toggled["reason"] = DISABLED_BY_HAND
            elif old["disabled_reason"]:
                toggled["was_disabled_because"] = old["disabled_reason"]
            await _audit(conn, scope, owner, action, toggled)
    return row


async def delete_endpoint(scope: ActionScope, owner: UUID | None, endpoint_id: UUID) -> None:
    """Delete an endpoint with its deliveries and their attempts (audited); 404 when not `owner`'s.

    First disabled, in a transaction of its own, so that events written meanwhile queue nothing for it and
    the delete, however many deliveries it removes, holds up no event writer (a failed delete leaves it
    disabled, "being deleted": delete again)."""
    if not await store.stop_endpoint(scope.pool, owner, endpoint_id):
        raise _missing(owner, endpoint_id)
    async with transaction(scope.pool) as conn:
        row = await store.delete_endpoint(conn, owner, endpoint_id)
        if row is None:
            raise _missing(owner, endpoint_id)
        detail = {"endpoint_id": str(endpoint_id), "url": row["url"]}
        await _audit(conn, scope, owner, AuditAction.WEBHOOK_DELETED, detail)


async def rotate_secret(
    scope: ActionScope, owner: UUID | None, endpoint_id: UUID, *, force: bool = False
) -> tuple[asyncpg.Record, str]:
    """The next secret generation: the row and the new secret (shown once). Deliveries carry both
    signatures until `previous_until` (SCIMSVC_WEBHOOK_SECRET_OVERLAP_HOURS). While a previous secret still
    signs, another rotation would stop the one receivers may hold at once: a 409 unless `force`."""
    signing_key = _signing_key(scope.settings)
    async with transaction(scope.pool) as conn:
        row = await store.rotate_secret(
            conn, owner, endpoint_id, overlap_hours=scope.settings.webhook_secret_overlap_hours, force=force
        )
        if row is None:
            current = await store.get_endpoint(conn, owner, endpoint_id)
            if current is None:
                raise _missing(owner, endpoint_id)
            until = f"{current['previous_until']:%Y-%m-%d %H:%M} UTC"
            raise ScimError(
                409,
                f"the secret was rotated already and the previous one signs until {until}; rotating again "
                "now would stop it at once: wait until then, or rotate with force",
            )
        detail = {
            "endpoint_id": str(endpoint_id),
            "generation": row["secret_generation"],
            "previous_until": row["previous_until"],
        }
        await _audit(conn, scope, owner, AuditAction.WEBHOOK_SECRET_ROTATED, detail)
    return row, endpoint_secret(signing_key, row["id"], row["secret_generation"])


async def deliveries(
    pool: asyncpg.Pool, owner: UUID | None, endpoint_id: UUID, *, before: int | None, limit: int
) -> list[Delivery]:
    """The endpoint's deliveries, newest first, each with its latest attempts; 404 when not `owner`'s."""
    await endpoint_or_404(pool, owner, endpoint_id)
    rows = await store.deliveries_page(pool, endpoint_id, before_id=before, limit=limit)
    attempts = await store.attempts_of(pool, [r["id"] for r in rows], per_delivery=ATTEMPTS_SHOWN)
    return [Delivery(r, attempts[r["id"]]) for r in rows]


def parse_event_id(raw: str) -> int:
    """The row id in a public event id (`evt_12`); a 400 for anything else."""
    found = _EVENT_ID.fullmatch(raw)
    if not found:
        raise invalid_value(f"event_id must be an event id such as evt_12, got {raw[:40]!r}")
    return int(found.group(1))


async def replay(
    scope: ActionScope,
    owner: UUID | None,
    endpoint_id: UUID,
    *,
    event: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Queue new deliveries to the endpoint: of one event (`evt_<n>`), or of every event it wants that
    occurred in [since, until) (at most REPLAY_LIMIT); how many were queued. The deliverer is woken.

    Only the endpoint's tenant's events (every tenant's for an operator endpoint): another tenant's event
    is a 404. A disabled endpoint is a 409 (its deliveries would not be sent).
    """
    try:
        return await _replay(scope, owner, endpoint_id, event=event, since=since, until=until)
    except asyncpg.ForeignKeyViolationError:  # retention deleted an event between picking and queuing it
        raise ScimError(409, "an event expired while it was being replayed: replay again") from None


async def _replay(
    scope: ActionScope,
    owner: UUID | None,
    endpoint_id: UUID,
    *,
    event: str | None,
    since: datetime | None,
    until: datetime | None,
) -> int:
    async with transaction(scope.pool) as conn:
        endpoint = await store.get_endpoint(conn, owner, endpoint_id, for_update=True)
        if endpoint is None:
            raise _missing(owner, endpoint_id)
        if not endpoint["enabled"]:
            raise ScimError(409, f"webhook endpoint {endpoint_id} is disabled: enable it, then replay")
        detail: dict[str, Any] = {"endpoint_id": str(endpoint_id)}
        if event is not None:
            queued = await _replay_event(conn, owner, endpoint, parse_event_id(event))
            detail["event_id"] = event
        else:
            assert since is not None and until is not None  # the replay schema requires both
            counted = await store.replay_range(conn, endpoint, since=since, until=until, limit=REPLAY_LIMIT)
            if counted is None:
                raise invalid_value(
                    f"more than {REPLAY_LIMIT} events occurred in that range: replay a shorter range"
                )
            queued = counted
            detail.update(since=since, until=until)
        detail["queued"] = queued
        await _audit(conn, scope, owner, AuditAction.WEBHOOK_REPLAYED, detail)
    await wake_deliverer(scope, queued)
    return queued


async def _replay_event(
    conn: asyncpg.Connection, owner: UUID | None, endpoint: asyncpg.Record, row_id: int
) -> int:
    found = await store.event_of(conn, row_id, owner)
    if found is None:
        where = f"tenant {owner}'s events" if owner else "any tenant's events"
        raise not_found(f"event {event_id(row_id)} not found among {where}")
    wanted = endpoint["event_types"]
    if wanted and found["type"] not in wanted:
        raise invalid_value(
            f"event {event_id(row_id)} is a {found['type']} event; "
            f"this endpoint wants only {', '.join(wanted)}"
        )
    return await store.replay_event(conn, endpoint["id"], row_id)
