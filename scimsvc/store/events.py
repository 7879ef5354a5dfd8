"""SQL for events: write them with their per-tenant sequence numbers and webhook deliveries, page them.

`record_events` is the one way to write events: one statement takes the tenant's next sequence numbers
(its counter row stays locked until the transaction commits, so a tenant's events commit in `seq` order),
writes the events, with the user as it now is where one is named, and queues a delivery for every enabled
webhook endpoint of the tenant, or of every tenant, that wants the type.

Paging: an event id is taken when the event is written, not when it commits, so "after the last id seen"
could skip an event that commits late. Pages go in (writing transaction, id) order instead and hold back
what any transaction still running could yet commit (`pg_snapshot_xmin`): an event is listed only once
every event that sorts before it is visible, so a cursor never skips one. A long transaction delays the
list (never loses from it) until it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from scimsvc.product.events import NewEvent
from scimsvc.store.by_key import of_tenant

# The user as an event shows it: who they are, their state and license (never a credential).
USER_SNAPSHOT = """jsonb_build_object(
    'id', u.id, 'userName', u.user_name, 'externalId', u.external_id, 'displayName', u.display_name,
    'name', u.resource -> 'name', 'emails', u.resource -> 'emails', 'active', u.active,
    'scimLinked', u.scim_linked, 'license', u.license, 'waitingSince', u.waiting_since,
    'provisioningState', u.provisioning_state)"""
# The snapshot is stored once per user and statement (0028): the user's first event of the batch reads the
# user (a subquery by primary key) and holds `{"user": snapshot}`; the user's later events store
# {"user": {"id"}} and point at it with `snapshot_id`, and readers compose the two (`told_data`). Which
# event is a user's first, and which event a later one points at (`snapshot`, its place in the batch), is
# decided by `record_events`; the ids are taken beforehand (`nextval`, in the batch's order, as the column
# default would), so the pointer is the `snapshot`-th id, no join and no sort. A user gone since
# (hard-deleted) keeps what `data` says, else is {"id"} alone. An event with nothing else to say is
# {"user": snapshot} itself (a user change's event), another is its data || that (one copy). The user is
# found by its primary key (store/by_key.py): with `u.tenant_id = $1` among the conditions, a new tenant's
# import scanned the tenant's users for every event (a batch grew from 30 to 150 ms within its first 4,000
# users). A later
# event's {"user": {"id"}} comes in its data, written by `record_events` (no jsonb copy here).
# The events come as one JSON array of objects, not arrays: asyncpg encodes a text array element by
# element (about 0.65 µs each, 2.6 µs an event), orjson the whole batch in 0.3 µs an event. One statement
# writes the events of several tenants (a drain of many, worker/user_drain.py): $1 are the tenants, $2 how
# many events each has in the batch; an event names its tenant by its place `t` in $1 and its place among
# that tenant's events `k`, so its sequence number is the tenant's last before the batch plus `k`. The
# counters are taken in tenant order.
RECORD_EVENTS = f"""
WITH v AS (
    SELECT v.*, nextval('events_id_seq') AS id FROM ROWS FROM (
        jsonb_to_recordset($3::text::jsonb)
            AS (t integer, k integer, type text, user_id uuid, request_id text, data jsonb, first boolean,
                snapshot integer)
    ) WITH ORDINALITY AS v(t, k, type, user_id, request_id, data, first, snapshot, n)
), ids AS MATERIALIZED (
    SELECT array_agg(id ORDER BY n) AS ids FROM v
), c AS (
    INSERT INTO event_counters AS c (tenant_id, last_seq)
    SELECT tenant_id, count FROM unnest($1::uuid[], $2::integer[]) AS b(tenant_id, count) ORDER BY tenant_id
    ON CONFLICT (tenant_id) DO UPDATE SET last_seq = c.last_seq + excluded.last_seq
    RETURNING tenant_id, last_seq
), e AS (
    INSERT INTO events (id, tenant_id, seq, type, request_id, data, snapshot_id)
    SELECT v.id, c.tenant_id, c.last_seq - ($2::integer[])[v.t] + v.k, v.type, v.request_id,
           CASE WHEN v.first THEN coalesce(
                    (SELECT CASE WHEN NOT {of_tenant("u", "c.tenant_id")} THEN NULL
                                 WHEN v.data = '{{}}' THEN jsonb_build_object('user', {USER_SNAPSHOT})
                                 ELSE v.data || jsonb_build_object('user', {USER_SNAPSHOT}) END
                     FROM users u WHERE u.id = v.user_id),
                    v.data || jsonb_build_object('user', coalesce(
                        v.data -> 'user', jsonb_build_object('id', v.user_id))))
                ELSE v.data END,
           (SELECT ids.ids FROM ids)[v.snapshot]
    FROM v JOIN c ON c.tenant_id = ($1::uuid[])[v.t]
    RETURNING id, tenant_id, type
), w AS MATERIALIZED (
    SELECT id, tenant_id, event_types FROM webhook_endpoints
    WHERE (tenant_id = ANY($1::uuid[]) OR tenant_id IS NULL) AND enabled
), d AS (
    INSERT INTO webhook_deliveries (endpoint_id, event_id, tenant_id)
    SELECT w.id, e.id, e.tenant_id
    FROM e JOIN w
        ON (w.tenant_id = e.tenant_id OR w.tenant_id IS NULL)
        AND (cardinality(w.event_types) = 0 OR e.type = ANY (w.event_types))
    RETURNING 1
)
SELECT count(*) AS deliveries FROM d
"""


def told_data(alias: str) -> str:
    """SQL for the `data` of the event row `alias` as every reader shows it: what it stores, with the user
    snapshot of the event it points at (`snapshot_id`) when it has one. Retention deletes that event only
    with the events pointing at it (store/retention.py:DELETE_OLD_EVENTS); were it gone, the
    {"user": {"id"}} the event stores would show."""
    return (
        f"CASE WHEN {alias}.snapshot_id IS NULL THEN {alias}.data ELSE {alias}.data || coalesce("
        "(SELECT jsonb_build_object('user', t.data -> 'user') FROM events t "
        f"WHERE t.id = {alias}.snapshot_id), '{{}}') END"
    )


# Every column is qualified: the output column `tx` is the transaction id as text, and an unqualified
# `ORDER BY tx` would sort by it (text order: a longer id before a shorter one) rather than by `e.tx`.
_SELECT_EVENTS = """
SELECT e.id, e.tx::text AS tx, e.tenant_id, e.seq, e.type, e.request_id, e.occurred_at, {data} AS data
FROM events e
WHERE {tenant}
  AND (cardinality($2::text[]) = 0 OR e.type = ANY ($2))
  AND (e.tx, e.id) > ($3::text::xid8, $4::bigint)
  AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY {order}
LIMIT $5
"""
# Two statements, not `($1 IS NULL OR tenant_id = $1)`, whose generic plan could not use the tenant's index
# (tenant_id, tx, id): a tenant's page reads that index, every tenant's reads (tx, id).
SELECT_TENANT_EVENTS = _SELECT_EVENTS.format(
    tenant="e.tenant_id = $1", data=told_data("e"), order="e.tenant_id, e.tx, e.id"
)
SELECT_EVENTS = _SELECT_EVENTS.format(tenant="$1::uuid IS NULL", data=told_data("e"), order="e.tx, e.id")


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a page of events ends: the writing transaction and the id of its last event."""

    tx: int = 0
    id: int = 0

    def __str__(self) -> str:
        return f"{self.tx}-{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """A cursor as `str` wrote it; raises ValueError for anything else."""
        tx, sep, row_id = text.partition("-")
        if not sep or not tx.isdigit() or not row_id.isdigit() or len(tx) > 20 or len(row_id) > 19:
            raise ValueError(f"not an events cursor: {text[:40]!r}")
        parsed = cls(int(tx), int(row_id))
        if parsed.tx >= 2**64 or parsed.id >= 2**63:
            raise ValueError(f"not an events cursor: {text[:40]!r}")
        return parsed


async def record_events(conn: asyncpg.Connection, tenant_id: UUID, events: list[NewEvent]) -> int:
    """Write the tenant's events in this order, with their sequence numbers and webhook deliveries, in one
    statement of the caller's transaction; returns the number of deliveries queued (0: no job to wake)."""
    return await record_tenants_events(conn, [(tenant_id, e) for e in events])


async def record_tenants_events(conn: asyncpg.Connection, events: list[tuple[UUID, NewEvent]]) -> int:
    """`record_events` for the events of several tenants, each with its tenant: each tenant's events are
    numbered in the order given."""
    if not events:
        return 0
    counts: dict[UUID, int] = {}
    # `str` writes the ids asyncpg reads (its own UUID type, which orjson does not know).
    batch = orjson.dumps(_batch_rows(events, counts), default=str).decode()
    return int(await conn.fetchval(RECORD_EVENTS, list(counts), list(counts.values()), batch))


def _batch_rows(events: list[tuple[UUID, NewEvent]], counts: dict[UUID, int]) -> list[dict[str, Any]]:
    """The batch as RECORD_EVENTS reads it, counting each tenant's events into `counts` (in the order the
    tenants first appear): a user's first event (and any that names its own `user`) is `first`, to hold the
    user's snapshot; its later ones point at that one (`snapshot`, 1-based) and carry the user's id alone
    (`data.user`)."""
    places: dict[UUID, int] = {}
    firsts: dict[UUID, int] = {}
    rows: list[dict[str, Any]] = []
    for n, (tenant_id, event) in enumerate(events, 1):
        counts[tenant_id] = counts.get(tenant_id, 0) + 1
        row: dict[str, Any] = {
            "t": places.setdefault(tenant_id, len(places) + 1),
            "k": counts[tenant_id],
            "type": event.type,
            "data": event.data,
            "user_id": event.user_id,
            "request_id": event.request_id,
        }
        if event.user_id is not None:
            first = firsts.setdefault(event.user_id, n)
            if first == n or "user" in event.data:
                row["first"] = True
            else:
                row["snapshot"] = first
                row["data"] = {**event.data, "user": {"id": event.user_id}}
        rows.append(row)
    return rows


async def events_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    tenant_id: UUID | None,
    types: list[str],
    after: Cursor,
    limit: int,
) -> list[asyncpg.Record]:
    """Events after `after`, in order, of one tenant or all (`tenant_id` None), of these types (none: all)."""
    sql = SELECT_EVENTS if tenant_id is None else SELECT_TENANT_EVENTS
    return await conn.fetch(sql, tenant_id, types, str(after.tx), after.id, limit)


def cursor_of(row: asyncpg.Record) -> Cursor:
    """The cursor just after this event (rows of `events_page` carry `tx` as text)."""
    return Cursor(int(row["tx"]), row["id"])


def body_of(row: asyncpg.Record) -> dict[str, Any]:
    """The fields of `scimsvc.product.events.event_body` from an event row."""
    return {k: row[k] for k in ("id", "type", "tenant_id", "seq", "occurred_at", "request_id", "data")}
