"""Admin and settings actions (README.md, What happened): who does them, and what each leaves behind.

Every action (a token issued or revoked, SCIM turned on or off, a setting changed, a team or a hand-made
membership changed, a hard delete) commits with its audit row and its events in one transaction, so
"who turned SCIM off?" always has an answer and an event exists only if its change happened. After the
commit, a webhook delivery the events queued wakes the deliverer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis

from scimsvc.contract import AuditAction
from scimsvc.enqueue import enqueue_deliver_webhooks
from scimsvc.product.events import NewEvent
from scimsvc.services.changes import Scope
from scimsvc.settings import Settings
from scimsvc.store import audit, events

# `audit_log.actor` of an action: the operator (admin API, console, CLI) or an organization's admin.
ActorKind = Literal["admin", "org_admin"]


@dataclass(frozen=True)
class Actor:
    """Who does an action: the audit row's actor, and the request it came in (None: the CLI has none)."""

    kind: ActorKind = "admin"
    request_id: str | None = None
    email: str | None = None  # an organization admin's address, when known: the audit detail's `by`


@dataclass(frozen=True)
class ActionScope:
    """What an action needs: the app's pool, the queue's Redis (wakes the deliverer), settings, the actor."""

    pool: asyncpg.Pool
    redis: ArqRedis
    settings: Settings
    actor: Actor

    def for_tenant(self, tenant_id: UUID) -> Scope:
        """The scope of `services/changes.py:write` for an action that also records outbox rows.

        The queue's Redis stands in for the limiter's: a write never reads page cursors.
        """
        return Scope(
            pool=self.pool,
            redis=self.redis,
            limiter_redis=self.redis,
            settings=self.settings,
            tenant_id=tenant_id,
            request_id=self.actor.request_id,
        )


async def record_action(
    conn: asyncpg.Connection,
    scope: ActionScope,
    tenant_id: UUID,
    action: AuditAction,
    detail: dict[str, Any],
    *,
    user_id: UUID | None = None,
    happened: Sequence[NewEvent] = (),
) -> int:
    """The action's audit row and its events, in the caller's transaction; returns the webhook deliveries
    queued (`wake_deliverer` after the commit). With SCIMSVC_EVENTS off, the audit row only."""
    actor = scope.actor
    if actor.email:
        detail = {**detail, "by": actor.email}
    await audit.audit_action(
        conn, tenant_id, action, actor=actor.kind, detail=detail, request_id=actor.request_id, user_id=user_id
    )
    if not scope.settings.events or not happened:
        return 0
    stamped = [NewEvent(e.type, e.data, e.user_id, actor.request_id) for e in happened]
    return await events.record_events(conn, tenant_id, stamped)


async def wake_deliverer(scope: ActionScope, deliveries: int) -> None:
    """After the commit: ask a worker to send the deliveries just queued (never raises; the worker's cron
    job sends them anyway if Redis is down)."""
    if deliveries > 0:
        await enqueue_deliver_webhooks(
            scope.redis, queue_name=scope.settings.queue_name, wait=scope.settings.enqueue_timeout_seconds
        )
