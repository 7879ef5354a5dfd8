"""Cron job: delete finished rows past their retention age, in bounded batches, and count them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from scimsvc.product.portal import FINISHED_ACCESS_DAYS
from scimsvc.settings import Settings
from scimsvc.store import retention
from worker.telemetry import RETENTION_ROWS_DELETED

log = logging.getLogger(__name__)

# Batches per table per run: with the default batch size a run deletes up to 500,000 rows of a table in
# short statements, then leaves the rest to the next run, so it ends well before the arq job timeout.
MAX_BATCHES = 500
# Days the per-minute request counts are kept (store/tenant_stats.py reads the last hour of them).
REQUEST_MINUTES_DAYS = 1

Purge = Callable[..., Awaitable[dict[str, int]]]


# Tables whose batches look at their oldest rows in the order written (no age index): a young row among
# them makes a batch short, so their run stops only at a batch that deletes nothing.
WINDOWED = frozenset({"provisioning_log", "events"})


def _purges(settings: Settings) -> list[tuple[str, Purge, int]]:
    """Each table family's batch delete, the table whose batch size bounds it, and its age in days."""
    return [
        ("outbox", retention.delete_applied_outbox, settings.retention_outbox_days),
        ("notices", retention.delete_finished_notices, settings.retention_notices_days),
        ("audit_log", retention.delete_old_audit, settings.retention_audit_days),
        ("provisioning_log", retention.delete_old_provisioning_log, settings.retention_provisioning_log_days),
        ("events", retention.delete_old_events, settings.retention_events_days),
        # Console sessions and portal links: a fixed short window after they expired (whatever the other
        # windows, 0 included: past expiry they open nothing; the audit log keeps what happened).
        ("console_sessions", retention.delete_finished_console_sessions, FINISHED_ACCESS_DAYS),
        ("portal_links", retention.delete_finished_portal_links, FINISHED_ACCESS_DAYS),
        # Request counts per tenant and minute: only the last hour is read (a day whatever the windows).
        ("tenant_request_minutes", retention.delete_old_request_minutes, REQUEST_MINUTES_DAYS),
    ]


async def purge_expired(ctx: dict[str, Any]) -> dict[str, int]:
    """Delete what is past its retention age (0 days keeps a table's rows); returns rows deleted by table.

    Each batch is one statement that commits on its own; a table stops at its first short batch (a
    `WINDOWED` one at its first empty batch) or after `MAX_BATCHES`.
    """
    settings: Settings = ctx["settings"]
    pool: asyncpg.Pool = ctx["pool"]
    batch = max(1, settings.retention_batch_size)
    removed: dict[str, int] = {}
    for table, purge, days in _purges(settings):
        if days <= 0:
            continue
        for _ in range(MAX_BATCHES):
            counts = await purge(pool, older_than_days=days, limit=batch)
            for name, count in counts.items():
                removed[name] = removed.get(name, 0) + count
                RETENTION_ROWS_DELETED.labels(name).inc(count)
            if counts[table] == 0 or (counts[table] < batch and table not in WINDOWED):
                break
        else:
            log.warning(
                "retention stopped after %d batches of %d %s rows; the next run deletes the rest",
                MAX_BATCHES,
                batch,
                table,
            )
    if any(removed.values()):
        deleted = {name: count for name, count in removed.items() if count}
        log.info(
            "retention deleted %s",
            ", ".join(f"{count} {name}" for name, count in deleted.items()),
            extra={"deleted": deleted},
        )
    return removed
