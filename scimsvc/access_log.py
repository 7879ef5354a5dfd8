"""The access log: one line per request on the `scimsvc.access` logger, written off the event loop.

Operators match an IdP's provisioning log against it: request id, tenant, method, route template,
status, duration, bytes sent, client address and the IdP family read from the User-Agent. It never
holds a credential, a query string (filters carry emails) or a raw path (an unmatched path can carry
anything): the route is the template the request matched, or `unmatched`.

aiohttp calls `AccessLog.log` once per request after the answer is written, so the status and bytes are
those sent (headers included), error bodies and 404s too; the duration runs from `access_clock`, the
outermost middleware, until then (uvloop's own clock counts whole milliseconds). The record goes on a
bounded queue, and a thread hands it to the logger (so to the handlers `scimsvc.logs.configure` put on
the root): a slow stderr (a full pipe, a slow terminal) delays the log lines, never the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import traceback
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from aiohttp.web_urldispatcher import UrlMappingMatchInfo

from scimsvc.keys import REQUEST_ID, SETTINGS, TENANT_ID
from scimsvc.middlewares import client_of

log = logging.getLogger(__name__)
ACCESS = logging.getLogger("scimsvc.access")
STARTED = web.RequestKey("access_started", float)  # time.perf_counter() as the middlewares began
UNMATCHED = "unmatched"  # the route of a path no route matched (also the metrics label)
QUEUE_LINES = 10_000  # lines waiting for the writer; past that, lines are dropped and counted
WRITE_EVERY = 0.05  # seconds between the writer's rounds: lines reach the log at most this late
CLOSE_SECONDS = 5.0  # at exit, how long the queued lines may take to go out
# User-Agent prefixes (lower case). Okta documents `Okta SCIM Client 1.0.0`; Entra ID sends
# `Microsoft Azure AD SCIM provisioning` (README.md, Access log).
OKTA_AGENTS = ("okta",)
ENTRA_AGENTS = ("microsoft azure ad", "microsoft entra", "microsoft.identity", "azure")


def idp_family(user_agent: str | None) -> str:
    """`okta`, `entra` or `other`: the IdP whose provisioning client sent this User-Agent."""
    agent = (user_agent or "").lstrip().lower()
    if agent.startswith(OKTA_AGENTS):
        return "okta"
    if agent.startswith(ENTRA_AGENTS):
        return "entra"
    return "other"


def _routed(request: BaseRequest) -> UrlMappingMatchInfo | None:
    """The request's routing, or None when aiohttp refused it before routing (a malformed request)."""
    try:
        return request.match_info  # type: ignore[attr-defined, no-any-return]
    except (AttributeError, AssertionError):
        return None


@web.middleware
async def access_clock(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Note when the request reached the middlewares, for the access log's duration."""
    request[STARTED] = time.perf_counter()
    return await handler(request)


class AccessLog(AbstractAccessLogger):
    """aiohttp's access logger: one `scimsvc.access` record per request, its fields as extras."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time_taken: float) -> None:
        tenant_id = request.get(TENANT_ID)
        routed = _routed(request)
        resource = routed.route.resource if routed is not None else None
        route = resource.canonical if resource is not None else UNMATCHED
        started = request.get(STARTED)
        seconds = time.perf_counter() - started if started is not None else time_taken
        duration_ms = round(seconds * 1000, 2)
        fields = {
            "request_id": request.get(REQUEST_ID),
            "tenant_id": str(tenant_id) if tenant_id is not None else None,
            "method": request.method,
            "route": route,
            "status": response.status,
            "duration_ms": duration_ms,
            "bytes": response.body_length,
            "client": client_of(request) if routed is not None else request.remote,  # type: ignore[arg-type]
            "idp": idp_family(request.headers.get("User-Agent")),
        }
        # The record is made here, without logging's search of the stack for its caller, and handled
        # (formatted, written) by the writer thread; the message is formatted there too.
        args = (request.method, route, response.status, duration_ms)
        record = self.logger.makeRecord(
            self.logger.name, logging.INFO, __file__, 0, "%s %s %s %.1f ms", args, None, extra=fields
        )
        _WRITER.put(record)


def handler_args(enabled: bool) -> Mapping[str, Any]:
    """The `web.Application(handler_args=...)` that turns the access log on or off for every runner."""
    if enabled:
        return {"access_log_class": AccessLog, "access_log": ACCESS}
    return {"access_log": None}


class _Writer:
    """The thread that hands access records to their logger's handlers; shared by the apps of a process
    (tests run several at once)."""

    def __init__(self) -> None:
        self.users = 0
        self.lines: queue.SimpleQueue[logging.LogRecord] | None = None
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.dropped = 0  # only the event loop adds to it
        self.reported = 0  # only the writer thread changes it

    def put(self, record: logging.LogRecord) -> None:
        lines = self.lines
        if lines is None:  # no writer running: an app without its cleanup context, or stopping
            logging.getLogger(record.name).handle(record)
        elif lines.qsize() < QUEUE_LINES:
            lines.put_nowait(record)  # nobody waits on the queue: no thread to wake, no lock to take
        else:
            self.dropped += 1  # the output is stuck: memory stays bounded, the loss is reported

    def _write(self, lines: queue.SimpleQueue[logging.LogRecord], stopping: threading.Event) -> None:
        # Woken every WRITE_EVERY seconds rather than by each line: one wake-up writes many lines.
        while True:
            stopped = stopping.wait(WRITE_EVERY)
            while not lines.empty():
                self._handle(lines.get_nowait())
            if stopped:
                return

    def _handle(self, record: logging.LogRecord) -> None:
        dropped = self.dropped
        if dropped != self.reported:
            log.warning("access log: %d lines dropped, the log output was too slow", dropped - self.reported)
            self.reported = dropped
        try:
            logging.getLogger(record.name).handle(record)
        except Exception:  # a broken handler must not end the writer, and the access log with it
            traceback.print_exc()

    def start(self) -> None:
        self.users += 1
        if self.users > 1:
            return
        if ACCESS.level == logging.NOTSET:
            ACCESS.setLevel(logging.INFO)  # on or off by SCIMSVC_ACCESS_LOG, whatever SCIMSVC_LOG_LEVEL says
        self.lines, self.stopping = queue.SimpleQueue(), threading.Event()
        self.thread = threading.Thread(
            target=self._write, args=(self.lines, self.stopping), name="access-log", daemon=True
        )
        self.thread.start()

    def stop(self) -> tuple[threading.Event, threading.Thread] | None:
        """The last app stopping: what `_close` needs to end the writer (off the event loop)."""
        self.users -= 1
        if self.users > 0 or self.thread is None:
            return None
        closing = (self.stopping, self.thread)
        self.lines = self.thread = None  # from now on a record is handled at once
        return closing


def _close(stopping: threading.Event, thread: threading.Thread) -> None:
    """The writer writes what is queued and ends, within a bound: a stuck output must not hold up an exit."""
    stopping.set()
    thread.join(CLOSE_SECONDS)


_WRITER = _Writer()


async def access_log_writer(app: web.Application) -> AsyncIterator[None]:
    """The writer thread lives as long as the app (when the access log is on)."""
    if not app[SETTINGS].access_log:
        yield
        return
    _WRITER.start()
    try:
        yield
    finally:
        closing = _WRITER.stop()
        if closing is not None:
            await asyncio.to_thread(_close, *closing)
