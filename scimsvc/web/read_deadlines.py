"""Deadlines on reading a request: its head (request line and headers) and its body.

aiohttp bounds only the wait between requests (`keepalive_timeout`, SCIMSVC_KEEPALIVE_SECONDS: from a
connection's start or its last answer until a next request's head is complete). It puts no bound on how
long a head or a body may take, so a client sending a byte now and then holds its connection, buffers
and handler for as long as it likes (README.md, Configuration). `ReadDeadlines` adds the two bounds:

- head: from a connection's start, or from the first byte of a next request on a kept-alive connection,
  until the head is complete. Past it the connection is closed without an answer: there is no request
  to answer yet.
- body: from a complete head until the body's last byte. Past it, reading the body raises a 408 SCIM
  error (`error_middleware`, scimsvc/web/middlewares.py, renders it) and the connection is closed after that
  answer.

It also renders what aiohttp answers before any middleware runs, a request it cannot parse (a request line
or a header longer than 8190 bytes, a header given twice), as an RFC 7644 error like every other one:
aiohttp's own answer is plain text that quotes the request back.

One `loop.call_later` timer per connection at a time, cancelled when the head or body is complete. A
request whose head and body arrive in one read (nearly every request) starts no timer at all; a fresh
connection starts one, a body that spans reads another.

aiohttp chooses its protocol class itself and has no setting for it, so `install` makes it choose this
one in the `scimsvc serve` process; run_app, with its signal handling and graceful shutdown, is unchanged.
The subclass reads a few of aiohttp's own fields (`_request_count`, `_messages`, `_waiter`, as of aiohttp
3.14): tests/test_slow_connections.py fails if an upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

from aiohttp import web_server
from aiohttp.http_exceptions import LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from scimsvc.scim.errors import ScimError
from scimsvc.web.middlewares import error_response

log = logging.getLogger(__name__)

LOG_EVERY = 10.0  # seconds between log lines of one kind: a flood of slow clients is one line per interval


class BodyTooSlow(ScimError, TimeoutError):
    """408: the body did not arrive in time.

    A TimeoutError too: after the answer aiohttp reads on what is left of an unread body (up to 10 s) and
    ends that read quietly on a timeout, where any other error would be logged as unhandled.
    """


class ReadDeadlines(RequestHandler):
    """aiohttp's HTTP/1.1 protocol with a deadline on each request's head and body, and its own errors
    answered as SCIM errors."""

    __slots__ = ("_read_deadline",)

    head_seconds: ClassVar[float] = 10.0  # SCIMSVC_HEADER_READ_SECONDS
    body_seconds: ClassVar[float] = 30.0  # SCIMSVC_BODY_READ_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None  # of the head or body being read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._read_deadline = self._loop.call_later(self.head_seconds, self._head_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        reading = self._read_deadline  # None: these bytes begin a next request
        heads = self._request_count  # aiohttp counts each request whose head it has parsed
        super().data_received(data)
        if self._request_count != heads:
            self._stop_deadline()
            payload = self._messages[-1][1]  # the last head parsed from these bytes, with its body
            if not payload.is_eof():
                self._read_deadline = self._loop.call_later(self.body_seconds, self._body_late, payload)
                payload.on_eof(self._stop_deadline)
        elif reading is None and data and not (self._close or self._force_close or self._upgraded):
            self._read_deadline = self._loop.call_later(self.head_seconds, self._head_late)

    def _stop_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _head_late(self) -> None:
        self._read_deadline = None
        _closed(
            "head",
            "closed a connection from %s: no complete request line and headers within %g s "
            "(SCIMSVC_HEADER_READ_SECONDS)",
            _peer(self),
            self.head_seconds,
        )
        self._close_now_or_after_answer()

    def _body_late(self, payload: StreamReader) -> None:
        self._read_deadline = None
        _closed(
            "body",
            "closed a connection from %s: the request body was still incomplete %g s after its headers "
            "(SCIMSVC_BODY_READ_SECONDS)",
            _peer(self),
            self.body_seconds,
        )
        payload.set_exception(
            BodyTooSlow(
                408,
                f"the request body did not arrive within {self.body_seconds:g} s of its headers: "
                "send it faster, or split the change into smaller requests",
            )
        )
        self._close_now_or_after_answer()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        """aiohttp's answer to a request it could not parse (or to an error no middleware rendered), as an
        RFC 7644 error; the connection is closed after it, as aiohttp does."""
        super().handle_error(request, status, exc, message)  # logs it (ops/logs.py), or raises mid-answer
        response = error_response(request, ScimError(status, _unparsed(status, exc, message)))
        response.force_close()
        return response

    def _close_now_or_after_answer(self) -> None:
        # As aiohttp's own keep-alive timer does: an idle connection (waiting for a request) is closed at
        # once; one answering a request (a long export) is closed after that answer, without reading more.
        if self._waiter is not None and not self._waiter.done():
            self.force_close()
        else:
            self.close()


def _unparsed(status: int, exc: BaseException | None, message: str | None) -> str:
    """The detail of an error aiohttp found: never the request quoted back (aiohttp's message for a line too
    long quotes it)."""
    if status >= 500:
        return "internal error: the operator's log has it, under this request's time"
    if isinstance(exc, LineTooLong):
        return (
            f"the request line or a header is longer than {exc.args[1]} bytes: send a long filter in the "
            "body of POST /scim/v2/Users/.search instead of the URL, and keep each header shorter"
        )
    said = (message or str(exc or "")).split("\n", 1)[0][:200]
    return f"the request is not valid HTTP/1.1 ({said}): fix the request the client sends"


def _peer(handler: RequestHandler) -> str:
    peer = handler.peername
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


_last_line: dict[str, float] = {}
_not_logged: dict[str, int] = {}


def _closed(kind: str, message: str, *args: object) -> None:
    """Log one close of `kind` at info, or count it when a line of its kind went out less than
    LOG_EVERY seconds ago (the next line says how many)."""
    now = time.monotonic()
    if now - _last_line.get(kind, float("-inf")) < LOG_EVERY:
        _not_logged[kind] = _not_logged.get(kind, 0) + 1
        return
    missed = _not_logged.pop(kind, 0)
    if missed:
        log.info(message + " (and %d more alike since the last such line)", *args, missed)
    else:
        log.info(message, *args)
    _last_line[kind] = now


def install(*, head_seconds: float, body_seconds: float) -> None:
    """Make the aiohttp servers of this process read requests under these deadlines."""
    ReadDeadlines.head_seconds = head_seconds
    ReadDeadlines.body_seconds = body_seconds
    web_server.RequestHandler = ReadDeadlines  # type: ignore[misc]  # what web.Server() instantiates
