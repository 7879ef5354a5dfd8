"""The provisioning log's writer (README.md, What happened): one row per SCIM request of a tenant.

`provisioning_log_middleware` sits between the request id and the error renderer, so it sees the status
of every answer, rendered errors and 429s included, and the refusal's scimType and detail
(`web/middlewares.py:error_middleware` puts them on the request). It only gathers fields and appends a row
to the app's `LogBuffer`: the request never waits for the log. `provisioning_log_writer` (a cleanup
context) writes the buffer every `FLUSH_SECONDS`, or as soon as `FLUSH_ROWS` wait, in one statement
(`store/provisioning_log.py:INSERT_ENTRIES`, which adds the batch's requests per tenant and minute to the
counts the per-organization stats read), and once more at shutdown.

What a crash can lose: the rows still in the buffer, normally the last `FLUSH_SECONDS` of requests, up to
`MAX_ROWS` when PostgreSQL is slow. Never a change: the outbox row committed with it is the record. Past
`MAX_ROWS` waiting (PostgreSQL slow or down), new rows are dropped and counted
(`scimsvc_provisioning_log_dropped_rows`), as is a batch whose write failed: memory stays bounded and
requests are never slowed by their log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from uuid import UUID

from aiohttp import web
from aiohttp.typedefs import Handler

from scimsvc.ops.metrics import CLIENT_CLOSED_REQUEST, WebMetrics
from scimsvc.scim.summary import describe, hid_a_secret, readable, without_quoted_values
from scimsvc.services.provisioning_log import LogEntry, record_entries
from scimsvc.web.access_log import idp_family
from scimsvc.web.keys import (
    LOG_TENANT_ID,
    METRICS,
    POOL,
    PROVISIONING_LOG,
    REFUSAL,
    REQUEST_ID,
    SCIM_BODY,
    SETTINGS,
    TENANT_ID,
    WRITTEN,
)
from scimsvc.web.middlewares import SCIM_PREFIX
from scimsvc.web.route_template import UNMATCHED, route_template

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2  # rows reach the table this late when PostgreSQL keeps up (what a crash loses then)
FLUSH_ROWS = 500  # a batch this large is written at once
MAX_ROWS = 50_000  # rows waiting at most; past that new rows are dropped and counted
MAX_DETAIL = 1000  # characters of a refusal's detail kept


class LogBuffer:
    """The rows waiting for the writer: appended by requests, taken a batch at a time."""

    def __init__(self, metrics: WebMetrics) -> None:
        self.rows: list[LogEntry] = []
        self.metrics = metrics
        self.full = asyncio.Event()  # FLUSH_ROWS are waiting (or the app is stopping): write now
        self.closing = False

    def add(self, entry: LogEntry) -> None:
        """Queue one row, or drop and count it when `MAX_ROWS` already wait."""
        if len(self.rows) >= MAX_ROWS:
            self.metrics.provisioning_log_dropped.labels("buffer_full").inc()
            return
        self.rows.append(entry)
        if len(self.rows) >= FLUSH_ROWS:
            self.full.set()

    def take(self) -> list[LogEntry]:
        """Every waiting row, in arrival order; the buffer starts empty again."""
        rows, self.rows = self.rows, []
        self.full.clear()
        return rows


@web.middleware
async def provisioning_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log a SCIM request of a valid token's tenant once it is answered (or given up), a 403 for SCIM
    disabled included."""
    if not request.path.startswith(SCIM_PREFIX):
        return await handler(request)
    started = time.perf_counter()
    request[WRITTEN] = []
    status = 500
    location = None
    try:
        response = await handler(request)
        status = response.status
        location = response.headers.get("Location")
        return response
    except web.HTTPException as exc:  # a redirect: the error middleware rendered every error
        status = exc.status
        raise
    except asyncio.CancelledError:  # the client left before its answer
        status = CLIENT_CLOSED_REQUEST
        raise
    finally:
        tenant_id = request.get(TENANT_ID) or request.get(LOG_TENANT_ID)
        if tenant_id is not None:
            try:
                request.app[PROVISIONING_LOG].add(_entry(request, tenant_id, status, location, started))
            except Exception:  # a row that cannot be made must never cost the request its answer
                log.exception("provisioning log: no row for %s %s", request.method, route_template(request))


def _entry(
    request: web.Request, tenant_id: UUID, status: int, location: str | None, started: float
) -> LogEntry:
    endpoint = route_template(request) or UNMATCHED
    method = request.method
    body = request.get(SCIM_BODY)
    kind, summary, user_name = describe(method, endpoint, body, request.query)
    refusal = request.get(REFUSAL) if status >= 400 else None
    if refusal is None:
        scim_type = detail = reason = None
    else:
        scim_type, reason = refusal.scim_type, refusal.reason
        detail = readable(refusal.detail, MAX_DETAIL)
        if hid_a_secret(summary):  # the refusal may quote the secret the summary hid
            detail = without_quoted_values(detail)
    written = request.get(WRITTEN)
    return LogEntry(  # by position, as the fields are declared: made on every SCIM request
        tenant_id,
        time.time(),
        request.get(REQUEST_ID) or "",
        idp_family(request.headers.get("User-Agent")),
        readable(method, 20),  # any token is a method to aiohttp
        endpoint,
        kind,
        _resource_id(request, location) if kind else None,
        user_name,
        summary,
        status,
        scim_type,
        detail,
        (time.perf_counter() - started) * 1000,
        tuple(written) if written else (),
        reason,
    )


def _resource_id(request: web.Request, location: str | None) -> UUID | None:
    """The id in the path, else the created resource's (the last segment of its Location)."""
    raw = request.match_info.get("id") or (location.rsplit("/", 1)[-1] if location else None)
    if not raw:
        return None
    try:
        return UUID(raw)
    except ValueError:  # an id that names nothing (its request got 404)
        return None


async def _write(app: web.Application, rows: list[LogEntry]) -> None:
    try:
        await record_entries(app[POOL], rows)
    except Exception as exc:  # the log must not stop: this batch is lost, counted and reported
        app[METRICS].provisioning_log_dropped.labels("write_failed").inc(len(rows))
        log.warning("provisioning log: %d rows not written: %s", len(rows), type(exc).__name__)


async def _flush_forever(app: web.Application, buffer: LogBuffer) -> None:
    while not buffer.closing:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(buffer.full.wait(), FLUSH_SECONDS)
        rows = buffer.take()
        if rows:
            await _write(app, rows)


async def provisioning_log_writer(app: web.Application) -> AsyncIterator[None]:
    """The buffer and its writer live as long as the app (when the provisioning log is on)."""
    if not app[SETTINGS].provisioning_log:
        yield
        return
    buffer = app[PROVISIONING_LOG] = LogBuffer(app[METRICS])
    writer = asyncio.create_task(_flush_forever(app, buffer))
    try:
        yield
    finally:
        buffer.closing = True  # not cancelled: a batch being written is written
        buffer.full.set()
        await writer
        await _write(app, buffer.take())  # the last requests' rows
