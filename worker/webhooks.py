"""The `deliver_webhooks` job: send the due webhook deliveries, signed, at least once, with backoff.

Deliveries are queued with their events (`store/events.py:record_events`). Each lane of a job claims a
batch with a lease (`store/webhook_deliveries.py:claim_due`), sends it concurrently through the worker
process's one HTTP session (`worker/webhook_client.py`), and records every attempt and what it makes of
the delivery and its endpoint in one transaction (`record_attempts`). A worker killed mid-batch leaves its
deliveries due again when the lease ends, so a receiver may get an event twice: the `webhook-id` (the
event's id) lets it drop the duplicate, and `sequence` in the body lets it put a tenant's events in order.
Rules (signing, retries, leases, what may be reached) are `scimsvc/product/webhooks.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson

from scimsvc.enqueue import enqueue_deliver_webhooks
from scimsvc.product.events import event_body, event_id
from scimsvc.product.webhooks import lease_seconds, retry_delay, signature_header, signing_secrets
from scimsvc.settings import Settings, parse_networks
from scimsvc.store import webhook_deliveries as store
from worker.jobs import JOB_TIMEOUT_SECONDS
from worker.telemetry import webhook_attempted, webhook_endpoint_disabled
from worker.webhook_client import CheckedResolver, Sent, internal_error, new_session, post

log = logging.getLogger(__name__)

# Lanes each claim and send a batch at a time: a slow receiver holds up one lane's batch (at most twice
# the timeout), not every delivery. LANES x BATCH requests are out at most per worker process (one job
# sends at a time there), which the session's connection pool holds without waiting.
LANES = 4
BATCH = 25
# A job stops claiming after this long and queues its successor, so other jobs get their turn...
CLAIM_SECONDS = 60.0
# ...and the last batch it claims, which may take twice the timeout and a second (webhook_client.py:post)
# and then its recording, still ends this long before arq cancels the job (JOB_TIMEOUT_SECONDS).
RECORD_SECONDS = 10.0
JOB_TIMEOUT_MARGIN_SECONDS = 30.0
NO_KEY = "webhook deliveries wait: SCIMSVC_WEBHOOK_SIGNING_KEY is empty, so they cannot be signed"
NOT_SENT = "not sent: the endpoint is disabled"

_SENDER = "webhook_sender"


@dataclass
class Sender:
    """The worker process's webhook sending: its one HTTP session, and whether a job is sending now.

    Each job gets a copy of the worker's ctx, so this object, made at start-up, is what they share. A job
    that finds another sending does not start lanes of its own (that would multiply the requests out);
    it asks the running one to look for due deliveries once more before it ends (`again`), so a wake-up
    that arrives as the running job finishes is not left to the next cron tick.
    """

    session: aiohttp.ClientSession
    resolver: CheckedResolver
    running: bool = False
    again: bool = False
    no_key_logged: bool = False


def batch_seconds(timeout_seconds: int) -> float:
    """The longest a claimed batch may take: its slowest attempt (`post` bounds each by 2 x the timeout
    and a second), then recording it."""
    return 2.0 * timeout_seconds + 1.0 + RECORD_SECONDS


def claim_seconds(timeout_seconds: int) -> float:
    """How long a job claims batches: CLAIM_SECONDS, less with a long timeout so that a batch claimed at
    the last moment ends JOB_TIMEOUT_MARGIN_SECONDS before arq's job timeout (19 s at the 120 s maximum)."""
    room = JOB_TIMEOUT_SECONDS - JOB_TIMEOUT_MARGIN_SECONDS - batch_seconds(timeout_seconds)
    return max(0.0, min(CLAIM_SECONDS, room))


def disabled_reason(settings: Settings) -> str:
    """What an endpoint disabled by the worker says about why."""
    return f"every attempt failed for {settings.webhook_disable_after_hours} hours"


async def deliver_webhooks(ctx: dict[str, Any]) -> int:
    """Send every due delivery (until none is due or the job's budget is spent); returns how many were
    delivered."""
    settings: Settings = ctx["settings"]
    sender: Sender = ctx[_SENDER]
    if not settings.webhook_signing_key:
        # Once per process, and only when something waits: the cron would repeat it every few seconds.
        if not sender.no_key_logged and await store.any_pending(ctx["pool"]):
            log.warning(NO_KEY)
            sender.no_key_logged = True
        return 0
    if sender.running:
        sender.again = True
        return 0
    sender.running = True
    deadline = time.monotonic() + claim_seconds(settings.webhook_timeout_seconds)
    delivered = 0
    try:
        while True:
            sender.again = False
            # A lane that fails (PostgreSQL gone) stops the others: what they claimed comes due again
            # after its lease, and arq runs the job again.
            async with asyncio.TaskGroup() as lanes:
                running = [lanes.create_task(_lane(ctx, deadline)) for _ in range(LANES)]
            delivered += sum(lane.result() for lane in running)
            if not sender.again or time.monotonic() >= deadline:
                break
    finally:
        sender.running = False
    if time.monotonic() >= deadline:
        await enqueue_deliver_webhooks(ctx["redis"], queue_name=settings.queue_name)
    return delivered


async def _lane(ctx: dict[str, Any], deadline: float) -> int:
    settings: Settings = ctx["settings"]
    pool: asyncpg.Pool = ctx["pool"]
    session = ctx[_SENDER].session
    lease = lease_seconds(settings.webhook_timeout_seconds)
    delivered = 0
    while time.monotonic() < deadline:
        due = await store.claim_due(pool, limit=BATCH, lease_seconds=lease, not_sent=NOT_SENT)
        if not due:
            break
        # `_send` never raises; were it to, the error is that attempt's failure, not the whole lane's (a
        # lane that raised would cancel the others, and the same delivery would do it again every lease).
        results = await asyncio.gather(
            *(_send(session, settings, row) for row in due), return_exceptions=True
        )
        sent = [r if isinstance(r, Sent) else internal_error(r) for r in results]
        attempts = [
            store.Attempt(
                delivery_id=row["id"],
                claimed_attempts=row["attempts"],
                endpoint_id=row["endpoint_id"],
                status=s.status,
                latency_ms=s.latency_ms,
                excerpt=s.excerpt,
                delivered=s.delivered,
                retry_in_seconds=retry_delay(row["attempts"], jitter=random.uniform(-1.0, 1.0)),
            )
            for row, s in zip(due, sent, strict=True)
        ]
        disabled = await store.record_attempts(
            pool,
            attempts,
            retry_hours=settings.webhook_retry_hours,
            disable_after_hours=settings.webhook_disable_after_hours,
            disabled_reason=disabled_reason(settings),
            not_sent=NOT_SENT,
        )
        for s in sent:
            webhook_attempted(s.outcome, s.latency_ms / 1000)
        for endpoint in disabled:
            webhook_endpoint_disabled()
            log.warning(
                "webhook endpoint %s disabled: %s",
                endpoint.id,
                disabled_reason(settings),
                extra={"endpoint_id": str(endpoint.id), "tenant_id": str(endpoint.tenant_id or "")},
            )
        failed = [(row, s) for row, s in zip(due, sent, strict=True) if not s.delivered]
        if failed:
            log.info(
                "webhooks: %d of %d attempts failed; first: endpoint %s: %s",
                len(failed),
                len(sent),
                failed[0][0]["endpoint_id"],
                failed[0][1].excerpt,
            )
        delivered += len(sent) - len(failed)
    return delivered


async def _send(session: aiohttp.ClientSession, settings: Settings, row: asyncpg.Record) -> Sent:
    """One attempt of one claimed delivery: the event's JSON, signed with the endpoint's secret(s). Never
    raises: an error of ours is the attempt's failure (`internal_error`)."""
    try:
        return await _sign_and_post(session, settings, row)
    except Exception as exc:
        return internal_error(exc)


async def _sign_and_post(session: aiohttp.ClientSession, settings: Settings, row: asyncpg.Record) -> Sent:
    body = orjson.dumps(
        event_body(
            id=row["event_id"],
            type=row["type"],
            tenant_id=row["tenant_id"],
            seq=row["seq"],
            occurred_at=row["occurred_at"],
            request_id=row["request_id"],
            data=row["data"],
        )
    )
    message_id = event_id(row["event_id"])  # the same on every attempt and replay: receivers dedupe on it
    timestamp = int(time.time())
    secrets = signing_secrets(
        settings.webhook_signing_key,
        row["endpoint_id"],
        row["secret_generation"],
        previous_valid=row["previous_valid"],
    )
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, message_id=message_id, timestamp=timestamp, body=body),
        "Content-Type": "application/json",
    }
    return await post(
        session,
        row["url"],
        body=body,
        headers=headers,
        allowed=parse_networks(settings.webhook_allowed_networks),
        allow_http=settings.webhook_allow_http,
        timeout_seconds=settings.webhook_timeout_seconds,
    )


async def start_sending(ctx: dict[str, Any]) -> None:
    """on_startup part: the worker process's `Sender` with its HTTP session."""
    settings: Settings = ctx["settings"]
    timeout = settings.webhook_timeout_seconds
    resolver = CheckedResolver(parse_networks(settings.webhook_allowed_networks), timeout_seconds=timeout)
    ctx[_SENDER] = Sender(new_session(resolver=resolver, timeout_seconds=timeout), resolver)


async def stop_sending(ctx: dict[str, Any]) -> None:
    """on_shutdown part: close the webhook session and its resolver."""
    sender: Sender | None = ctx.pop(_SENDER, None)
    if sender is not None:
        await sender.session.close()
        await sender.resolver.close()
