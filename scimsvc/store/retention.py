"""Retention: delete finished rows past their age, one bounded batch per statement (its own transaction).

Each batch picks the oldest rows through an age index (migrations/0012_retention_indexes.sql), or, for
the provisioning log and events (which keep no age index), among the oldest rows in the order they were
written, and skips rows another transaction holds, so it never waits on a lock and two runs at once delete
different rows. What is old is decided here, against the database clock; what is finished, too: an outbox
row once applied, a notice once sent, not sent or given up (never one still pending a retry), with its
attempts. Provisioning log rows go by age alone, and their per-minute request counts a day old; events
too, with their webhook deliveries and attempts (a delivery still being retried included), and an event
holding a user's snapshot only with the events that point at it.
"""

from __future__ import annotations

import asyncpg

DELETE_APPLIED_OUTBOX = """
WITH doomed AS (
    SELECT id FROM outbox
    WHERE applied_at < now() - make_interval(days => $1)
    ORDER BY applied_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM outbox o USING doomed WHERE o.id = doomed.id RETURNING 1
)
SELECT count(*) AS outbox FROM gone
"""
# A notice's attempts go in the same statement (the foreign key would cascade them too), so they are counted.
DELETE_FINISHED_NOTICES = """
WITH doomed AS (
    SELECT id FROM notices
    WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1)
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), attempts AS (
    DELETE FROM notice_attempts a USING doomed WHERE a.notice_id = doomed.id RETURNING 1
), gone AS (
    DELETE FROM notices n USING doomed WHERE n.id = doomed.id RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS notices, (SELECT count(*) FROM attempts) AS notice_attempts
"""
DELETE_OLD_AUDIT = """
WITH doomed AS (
    SELECT id FROM audit_log
    WHERE created_at < now() - make_interval(days => $1)
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM audit_log a USING doomed WHERE a.id = doomed.id RETURNING 1
)
SELECT count(*) AS audit_log FROM gone
"""

# Log rows are read along the primary key, the order their batches were written in (`provisioning_log`
# keeps no index on `at`: every logged request would pay for it): a batch looks at the oldest `limit`
# rows and deletes those past the age. A young row among old ones (a web process's buffer held up by a slow
# PostgreSQL) stays, and makes the batch short: the run goes on while a batch deletes any
# (worker/retention.py), so the aged rows after it go too.
DELETE_OLD_PROVISIONING_LOG = """
WITH oldest AS (
    SELECT id FROM provisioning_log ORDER BY id LIMIT $2
), doomed AS (
    SELECT p.id FROM provisioning_log p JOIN oldest USING (id)
    WHERE p.at < now() - make_interval(days => $1)
    FOR UPDATE OF p SKIP LOCKED
), gone AS (
    DELETE FROM provisioning_log p USING doomed WHERE p.id = doomed.id RETURNING 1
)
SELECT count(*) AS provisioning_log FROM gone
"""
# An event's webhook deliveries and their attempts go in the same statement (the foreign keys would cascade
# them too), so they are counted.
# Events are read along (tx, id), the order they were written in (`events` keeps no index on
# occurred_at: each index is paid by every event written): a batch looks at the oldest `limit` events and
# deletes those past the age (the run goes on while a batch deletes any, as for the log). Retention wins
# over a delivery still being retried (only a replay of events near the age makes one): it goes with its
# event, and a worker sending it records nothing for it (store/webhook_deliveries.py:RECORD_ATTEMPTS).
# An event holding a user's snapshot goes only with every event pointing at it (`snapshot_id`, 0028), else
# those would show the user's id alone. They were written by the same statement (same `tx`, later ids), so
# one that is not deleted with it is either in the window and not `aged` (a row another transaction
# holds), or past the window's last row in that row's transaction (a batch that cuts a transaction):
# `blocked` reads those alone, and their snapshots wait for a later batch.
DELETE_OLD_EVENTS = """
WITH oldest AS (
    SELECT id, tx FROM events ORDER BY tx, id LIMIT $2
), aged AS (
    SELECT e.id FROM events e JOIN oldest USING (id)
    WHERE e.occurred_at < now() - make_interval(days => $1)
    FOR UPDATE OF e SKIP LOCKED
), tail AS (
    SELECT tx, id FROM oldest ORDER BY tx DESC, id DESC LIMIT 1
), blocked AS (
    SELECT e.snapshot_id FROM events e JOIN oldest USING (id)
    WHERE e.snapshot_id IS NOT NULL AND e.id NOT IN (SELECT id FROM aged)
    UNION ALL
    SELECT l.snapshot_id FROM tail JOIN events l ON l.tx = tail.tx AND l.id > tail.id
    WHERE l.snapshot_id IS NOT NULL
), doomed AS (
    SELECT id FROM aged WHERE id NOT IN (SELECT snapshot_id FROM blocked)
), deliveries AS (
    SELECT d.id FROM webhook_deliveries d JOIN doomed ON d.event_id = doomed.id
), attempts AS (
    DELETE FROM webhook_attempts a USING deliveries WHERE a.delivery_id = deliveries.id RETURNING 1
), gone_deliveries AS (
    DELETE FROM webhook_deliveries d USING deliveries WHERE d.id = deliveries.id RETURNING 1
), gone AS (
    DELETE FROM events e USING doomed WHERE e.id = doomed.id RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS events, (SELECT count(*) FROM gone_deliveries) AS webhook_deliveries,
       (SELECT count(*) FROM attempts) AS webhook_attempts
"""
# Console sessions and portal links by their expiry (an ended session or a used link expires within its
# lifetime anyway), through their age indexes (migrations/0020_portal_access.sql): past it they are of no
# use to anyone, and the audit log has its own rows about them.
DELETE_FINISHED_CONSOLE_SESSIONS = """
WITH doomed AS (
    SELECT id_hash FROM console_sessions
    WHERE expires_at < now() - make_interval(days => $1)
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM console_sessions s USING doomed WHERE s.id_hash = doomed.id_hash RETURNING 1
)
SELECT count(*) AS console_sessions FROM gone
"""
DELETE_FINISHED_PORTAL_LINKS = """
WITH doomed AS (
    SELECT id FROM portal_links
    WHERE expires_at < now() - make_interval(days => $1)
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM portal_links l USING doomed WHERE l.id = doomed.id RETURNING 1
)
SELECT count(*) AS portal_links FROM gone
"""

# Request counts per tenant and minute (store/tenant_stats.py reads the last hour's), through their age
# index.
DELETE_OLD_REQUEST_MINUTES = """
WITH doomed AS (
    SELECT tenant_id, minute FROM tenant_request_minutes
    WHERE minute < now() - make_interval(days => $1)
    ORDER BY minute
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM tenant_request_minutes m USING doomed
    WHERE m.tenant_id = doomed.tenant_id AND m.minute = doomed.minute
    RETURNING 1
)
SELECT count(*) AS tenant_request_minutes FROM gone
"""


async def _delete_batch(pool: asyncpg.Pool, sql: str, older_than_days: int, limit: int) -> dict[str, int]:
    row = await pool.fetchrow(sql, older_than_days, limit)
    return {table: int(count) for table, count in row.items()}


async def delete_applied_outbox(pool: asyncpg.Pool, *, older_than_days: int, limit: int) -> dict[str, int]:
    """Delete up to `limit` outbox rows applied more than `older_than_days` ago; rows deleted by table."""
    return await _delete_batch(pool, DELETE_APPLIED_OUTBOX, older_than_days, limit)


async def delete_finished_notices(pool: asyncpg.Pool, *, older_than_days: int, limit: int) -> dict[str, int]:
    """Delete up to `limit` finished notices created more than `older_than_days` ago, with their attempts."""
    return await _delete_batch(pool, DELETE_FINISHED_NOTICES, older_than_days, limit)


async def delete_old_audit(pool: asyncpg.Pool, *, older_than_days: int, limit: int) -> dict[str, int]:
    """Delete up to `limit` audit rows written more than `older_than_days` ago; rows deleted by table."""
    return await _delete_batch(pool, DELETE_OLD_AUDIT, older_than_days, limit)


async def delete_old_provisioning_log(
    pool: asyncpg.Pool, *, older_than_days: int, limit: int
) -> dict[str, int]:
    """Delete up to `limit` provisioning log rows of requests more than `older_than_days` ago."""
    return await _delete_batch(pool, DELETE_OLD_PROVISIONING_LOG, older_than_days, limit)


async def delete_old_events(pool: asyncpg.Pool, *, older_than_days: int, limit: int) -> dict[str, int]:
    """Delete up to `limit` events that occurred more than `older_than_days` ago, with their webhook
    deliveries and attempts."""
    return await _delete_batch(pool, DELETE_OLD_EVENTS, older_than_days, limit)


async def delete_finished_console_sessions(
    pool: asyncpg.Pool, *, older_than_days: int, limit: int
) -> dict[str, int]:
    """Delete up to `limit` console sessions that expired more than `older_than_days` ago."""
    return await _delete_batch(pool, DELETE_FINISHED_CONSOLE_SESSIONS, older_than_days, limit)


async def delete_finished_portal_links(
    pool: asyncpg.Pool, *, older_than_days: int, limit: int
) -> dict[str, int]:
    """Delete up to `limit` portal links that expired more than `older_than_days` ago."""
    return await _delete_batch(pool, DELETE_FINISHED_PORTAL_LINKS, older_than_days, limit)


async def delete_old_request_minutes(
    pool: asyncpg.Pool, *, older_than_days: int, limit: int
) -> dict[str, int]:
    """Delete up to `limit` per-minute request counts of minutes more than `older_than_days` ago."""
    return await _delete_batch(pool, DELETE_OLD_REQUEST_MINUTES, older_than_days, limit)
