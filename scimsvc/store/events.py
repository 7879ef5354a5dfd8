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

# The user as an event shows it: who they are, their state and license (never a credential). Stored as a row
# of these columns (`user_snapshot`, 0038), which costs what an event without a snapshot does; readers build
# the JSON (`told_data`).
SNAPSHOT_FIELDS = (
    ("id", "id", "u.id"),
    ("userName", "user_name", "u.user_name"),
    ("externalId", "external_id", "u.external_id"),
    ("displayName", "display_name", "u.display_name"),
    ("name", "name", "u.resource -> 'name'"),
    ("emails", "emails", "u.resource -> 'emails'"),
    ("active", "active", "u.active"),
    ("scimLinked", "scim_linked", "u.scim_linked"),
    ("license", "license", "u.license"),
    ("waitingSince", "waiting_since", "u.waiting_since"),
    ("provisioningState", "provisioning_state", "u.provisioning_state"),
)
USER_SNAPSHOT = f"ROW({', '.join(value for _, _, value in SNAPSHOT_FIELDS)})::user_snapshot"


def snapshot_json(row: str) -> str:
    """SQL: the JSON of the stored snapshot `row` (a `user_snapshot` value), NULL when there is none."""
    fields = ", ".join(f"'{key}', ({row}).{column}" for key, column, _ in SNAPSHOT_FIELDS)
    return f"CASE WHEN ({row}).id IS NULL THEN NULL ELSE jsonb_build_object({fields}) END"


# An event of a user names it in `user_id`, and `data` holds what else the event says (0038): the snapshot is
# stored once per user and statement (0028), in the user's first event of the batch, which reads the user (a
# lateral subquery by primary key); the user's later events point at it with `snapshot_id`, and readers
# compose them (`told_data`). Building the snapshot's JSON and adding {"user": ...} to each event's `data`
# here had been the largest part of a drain's statement (a deactivation wave's batch of 500 users: 12.4
# against 8.9 ms). Which event is a user's first, and which event a later one points at (`snapshot`, its
# place in the batch), is decided by `record_args`; the ids are taken beforehand (`nextval`, in the batch's
# order, as the column default would), so the pointer is the `snapshot`-th id, no join and no sort. A user
# gone since (hard-deleted) has no snapshot: readers show what `data` says of it, else {"id"} alone. The
# user is found by its primary key (store/by_key.py): with `u.tenant_id = $1` among the conditions, a new
# tenant's import scanned the tenant's users for every event (a batch grew from 30 to 150 ms within its
# first 4,000 users); OFFSET 0 keeps the lateral a lookup per event rather than a join the planner may hash.
# The batch comes as columns of numbers and ids ($3-$9, one element an event, each an array's text,
# `_array_text`) and what events repeat comes once: the types ($10), request ids ($11, a JSON array: `->>`
# reads the n-th in place, where a text array is walked from its start) and data ($12, a JSON array) the batch
# names, each event pointing at its own by place. A group push's 50,000 member events share one type, request
# id and data: sent as one JSON array of objects, their 8 MB were parsed when the custom plan folded the
# parameter's cast (0.19 s of planning) and written out again per event; as columns the statement takes 0.66 s
# instead of 0.92 (medians of 6 rolled-back runs); a drain's batches of 1,000 events 27-30 µs a user instead
# of 30-35. Each JSON array is parsed once a statement, never once an event: a custom plan folds its cast
# while planning, a generic plan evaluates it in `told`, and each event reads its element in `v` (a CTE read
# twice, so computed once). One statement writes the events of several tenants (a drain of many,
# worker/user_drain.py): $1 are the tenants, $2 how many events each has in the batch; an event names its
# tenant by its place `t` in $1 and its place among that tenant's events `k`, so its sequence number is the
# tenant's last before the batch plus `k`. The counters are taken in tenant order. A batch of one tenant
# leaves $3 and $4 NULL (unnest pads them with NULLs): `t` is 1 and `k` the event's place.
RECORD_EVENTS = f"""
WITH told AS MATERIALIZED (
    SELECT $11::text::jsonb AS requests, $12::text::jsonb AS data
), v AS (
    SELECT coalesce(v.t, 1) AS t, coalesce(v.k, v.n::integer) AS k, v.type, v.user_id, v.snapshot, v.n,
           nextval('events_id_seq') AS id,
           (SELECT told.requests FROM told) ->> v.request_place AS request_id,
           (SELECT told.data FROM told) -> v.data_place AS data
    FROM unnest($3::text::integer[], $4::text::integer[], $5::text::integer[], $6::text::uuid[],
                $7::text::integer[], $8::text::integer[], $9::text::integer[])
        WITH ORDINALITY AS v(t, k, type, user_id, request_place, data_place, snapshot, n)
), ids AS MATERIALIZED (
    SELECT array_agg(id ORDER BY n) AS ids FROM v
), c AS (
    INSERT INTO event_counters AS c (tenant_id, last_seq)
    SELECT tenant_id, count FROM unnest($1::uuid[], $2::integer[]) AS b(tenant_id, count) ORDER BY tenant_id
    ON CONFLICT (tenant_id) DO UPDATE SET last_seq = c.last_seq + excluded.last_seq
    RETURNING tenant_id, last_seq
), e AS (
    INSERT INTO events (id, tenant_id, seq, type, request_id, data, user_id, snapshot_id, user_snapshot)
    SELECT v.id, c.tenant_id, c.last_seq - ($2::integer[])[v.t] + v.k, ($10::text[])[v.type], v.request_id,
           v.data, v.user_id, (SELECT ids.ids FROM ids)[v.snapshot], s.snapshot
    FROM v JOIN c ON c.tenant_id = ($1::uuid[])[v.t]
    LEFT JOIN LATERAL (
        SELECT {USER_SNAPSHOT} AS snapshot FROM users u
        WHERE v.user_id IS NOT NULL AND v.snapshot IS NULL
          AND u.id = v.user_id AND {of_tenant("u", "c.tenant_id")}
        OFFSET 0
    ) s ON true
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
    """SQL for the `data` of the event row `alias` as every reader shows it: what it stores, with, for an
    event of a user, `user` the snapshot it holds (`user_snapshot`), else that of the event it points at
    (`snapshot_id`), else what `data` says of the user (one hard-deleted before the event was written),
    else {"id"} alone. Retention deletes the event a snapshot is in only with the events pointing at it
    (store/retention.py:DELETE_OLD_EVENTS). Events written before 0038 have no `user_id` and hold their
    snapshot, or {"user": {"id"}} and a pointer, in `data`."""
    return f"""CASE WHEN {alias}.user_id IS NULL AND {alias}.snapshot_id IS NULL THEN {alias}.data
    ELSE {alias}.data || jsonb_build_object('user', coalesce(
        {snapshot_json(f"{alias}.user_snapshot")},
        (SELECT coalesce({snapshot_json("t.user_snapshot")}, t.data -> 'user')
         FROM events t WHERE t.id = {alias}.snapshot_id),
        {alias}.data -> 'user',
        jsonb_build_object('id', {alias}.user_id))) END"""


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
    return await record_with_args(conn, record_args(events))


async def record_with_args(conn: asyncpg.Connection, args: tuple[Any, ...] | None) -> int:
    """`record_tenants_events` with its parameters built beforehand by `record_args` (a drain builds them
    while its previous statement runs)."""
    return 0 if args is None else int(await conn.fetchval(RECORD_EVENTS, *args))


def record_args(events: list[tuple[UUID, NewEvent]]) -> tuple[Any, ...] | None:
    """RECORD_EVENTS' parameters for these events, each with its tenant (None for none): every column in the
    events' order; a user's first event (and any that names its own `user`) holds the user's snapshot, its
    later ones point at that one (`snapshot`, 1-based). The events of one tenant send no tenant places (`t`)
    and no places among the tenant's events (`k`): they are 1 and the event's place (a column of 1,000 costs
    about 0.1 ms to build and send)."""
    if not events:
        return None
    several = len({tenant_id for tenant_id, _ in events}) > 1
    counts: dict[UUID, int] = {}
    places: dict[UUID, int] = {}
    firsts: dict[UUID, int] = {}
    types: dict[str, int] = {}
    requests: dict[str, int] = {}
    told: dict[bytes, int] = {}
    t: list[int] = []
    k: list[int] = []
    kind: list[int] = []
    users: list[UUID | None] = []
    request: list[int | None] = []
    data: list[int] = []
    snapshot: list[int | None] = []
    # A batch's events mostly repeat their neighbour's type, request and data (a push's 50,000 member
    # events share all three): each is looked up again only when it changes.
    last_type: object = None
    last_rid: object = None
    last_data: object = None
    type_place = rid_place = data_place = 0
    for n, (tenant_id, event) in enumerate(events, 1):
        event_type, event_data, user_id, rid = event
        if several:
            count = counts[tenant_id] = counts.get(tenant_id, 0) + 1
            t.append(places.setdefault(tenant_id, len(places) + 1))
            k.append(count)
        if event_type is not last_type:
            last_type = event_type
            type_place = types.setdefault(event_type, len(types) + 1)
        kind.append(type_place)
        users.append(user_id)
        if rid is None:
            request.append(None)
        else:
            if rid is not last_rid:
                last_rid = rid
                rid_place = requests.setdefault(rid, len(requests))  # `->>` counts from 0
            request.append(rid_place)
        if event_data is not last_data:
            last_data = event_data
            # `str` writes the ids asyncpg reads (its own UUID type, which orjson does not know).
            data_place = told.setdefault(orjson.dumps(event_data, default=str), len(told))  # `->` from 0
        data.append(data_place)
        first = n if user_id is None else firsts.setdefault(user_id, n)
        snapshot.append(None if first == n or "user" in event_data else first)
    if not several:
        counts[events[0][0]] = len(events)
    told_json = b"[" + b",".join(told) + b"]"
    columns = (
        _array_text(t) if several else None,
        _array_text(k) if several else None,
        *(_array_text(column) for column in (kind, users, request, data, snapshot)),
    )
    return (
        list(counts),
        list(counts.values()),
        *columns,
        list(types),
        orjson.dumps(list(requests)).decode(),
        told_json.decode(),
    )


def _array_text(values: list[Any]) -> str:
    """An array parameter in PostgreSQL's text form: built and sent at half the cost of asyncpg's binary
    encoding of a list, which checks each element's type (0.13 against 0.21 ms for 1,000 numbers)."""
    if None in values:
        return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"
    return "{" + ",".join(map(str, values)) + "}"


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
