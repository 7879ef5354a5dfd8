"""The access log: one line per request on the `scimsvc.access` logger, written off the event loop.

Operators match an IdP's provisioning log against it: request id, tenant, method, route template,
status, duration, bytes sent, client address and the IdP family read from the User-Agent. It never
holds a credential, a query string (filters carry emails) or a raw path (an unmatched path can carry
anything): the route is the template the request matched, or `unmatched`.

aiohttp calls `AccessLog.log` once per request after the answer is written, so the status and bytes are
those sent (headers included), error bodies and 404s too; the duration runs from
`web/request_frame.py:request_middleware`, the outermost middleware, until then (uvloop's own clock
counts whole milliseconds). `log` only gathers the fields and queues them (bounded); a thread writes the
lines, so a slow stderr (a full pipe, a slow terminal) delays the log lines, never the event loop. Where
the lines go to the JSON handler of `scimsvc.ops.logs.configure`, the thread writes that handler's JSON
itself, a batch at a time; anywhere else
(text format, handlers of one's own) it hands `logging` a record per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import traceback
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from scimsvc.ops.logs import JsonFormatter, json_line
from scimsvc.web.keys import REQUEST_ID, SETTINGS, TENANT_ID
from scimsvc.web.middlewares import client_of
from scimsvc.web.route_template import UNMATCHED, route_template

log = logging.getLogger(__name__)
ACCESS = logging.getLogger("scimsvc.access")
STARTED = web.RequestKey("access_started", float)  # time.perf_counter() as the middlewares began
QUEUE_LINES = 10_000  # lines waiting for the writer; past that, lines are dropped and counted
WRITE_EVERY = 0.05  # seconds between the writer's rounds: lines reach the log at most this late
CLOSE_SECONDS = 5.0  # at exit, how long the queued lines may take to go out
# User-Agent prefixes (lower case). Okta documents `Okta SCIM Client 1.0.0`; Entra ID sends
# `Microsoft Azure AD SCIM provisioning` (README.md, Operating it).
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


class AccessLog(AbstractAccessLogger):
    """aiohttp's access logger: the fields of one `scimsvc.access` line per request, for the writer."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time_taken: float) -> None:
        tenant_id = request.get(TENANT_ID)
        # Not started: aiohttp refused the request before routing it (a malformed request), so it has no
        # app, nor settings naming trusted proxies.
        started = request.get(STARTED)
        seconds = time.perf_counter() - started if started is not None else time_taken
        fields = {
            "request_id": request.get(REQUEST_ID),
            "tenant_id": str(tenant_id) if tenant_id is not None else None,
            "method": request.method,
            "route": route_template(request) or UNMATCHED,
            "status": response.status,
            "duration_ms": round(seconds * 1000, 2),
            "bytes": response.body_length,
            "client": client_of(request) if started is not None else request.remote,  # type: ignore[arg-type]
            "idp": idp_family(request.headers.get("User-Agent")),
        }
        _WRITER.put((time.time(), fields))


def handler_args(enabled: bool) -> Mapping[str, Any]:
    """The `web.Application(handler_args=...)` that turns the access log on or off for every runner."""
    if enabled:
        return {"access_log_class": AccessLog, "access_log": ACCESS}
    return {"access_log": None}


Line = tuple[float, dict[str, Any]]  # when the answer went out (time.time()), and the fields


# Named fields (`%(route)s`): the text format then does not repeat them after the message.
MESSAGE = "%(method)s %(route)s %(status)s %(duration_ms).1f ms"


def _json_line(created: float, fields: dict[str, Any]) -> str:
    """The line `JsonFormatter` writes for the record `_record` makes of these fields, without the record."""
    return json_line(created, "info", ACCESS.name, MESSAGE % fields, fields) + "\n"


def _record(created: float, fields: dict[str, Any]) -> logging.LogRecord:
    record = ACCESS.makeRecord(ACCESS.name, logging.INFO, __file__, 0, MESSAGE, (fields,), None, extra=fields)
    record.created, record.msecs = created, int(created % 1 * 1000)
    return record


def _direct_handler() -> logging.StreamHandler[Any] | None:
    """The JSON handler `scimsvc.ops.logs.configure` puts on the root, when it is the one place access lines
    go: the writer then writes their JSON itself, a batch at a time, without a LogRecord each (a quarter
    of the cost). Any other set-up (text format, handlers of one's own, tests) gets records."""
    root = logging.getLogger()
    logger: logging.Logger | None = ACCESS
    while logger is not None and logger is not root:
        if logger.handlers or not logger.propagate:
            return None
        logger = logger.parent
    if ACCESS.filters or root.filters or len(root.handlers) != 1:
        return None
    handler = root.handlers[0]
    if type(handler) is not logging.StreamHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler if isinstance(handler.formatter, JsonFormatter) else None


class _Writer:
    """The thread that writes access lines; shared by the apps of a process (tests run several)."""

    def __init__(self) -> None:
        self.users = 0
        self.lines: queue.SimpleQueue[Line] | None = None
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.dropped = 0  # only the event loop adds to it
        self.reported = 0  # only the writer thread changes it

    def put(self, line: Line) -> None:
        lines = self.lines
        if lines is None:  # no writer running: an app without its cleanup context, or stopping
            ACCESS.handle(_record(*line))
        elif lines.qsize() < QUEUE_LINES:
            lines.put_nowait(line)  # nobody waits on the queue: no thread to wake, no lock to take
        else:
            self.dropped += 1  # the output is stuck: memory stays bounded, the loss is reported

    def _write(self, lines: queue.SimpleQueue[Line], stopping: threading.Event) -> None:
        # Woken every WRITE_EVERY seconds rather than by each line: one wake-up writes many lines.
        while True:
            stopped = stopping.wait(WRITE_EVERY)
            batch = []
            while not lines.empty():
                batch.append(lines.get_nowait())
            if batch:
                self._report_drops()
                try:
                    _emit(batch)
                except Exception:  # a broken handler must not end the writer, and the access log with it
                    traceback.print_exc()
            if stopped:
                return

    def _report_drops(self) -> None:
        dropped = self.dropped
        if dropped != self.reported:
            log.warning("access log: %d lines dropped, the log output was too slow", dropped - self.reported)
            self.reported = dropped

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
        self.lines = self.thread = None  # from now on a line is handled at once
        return closing


def _emit(batch: list[Line]) -> None:
    handler = _direct_handler()
    if handler is None:
        for line in batch:
            ACCESS.handle(_record(*line))
        return
    text = "".join([_json_line(*line) for line in batch])
    with handler.lock or contextlib.nullcontext():  # not amid another thread's line
        handler.stream.write(text)
        handler.flush()


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
