"""Structured JSON logs that carry the request id, from the IdP's call into the jobs it caused.

The request id lives in a context variable: the web middleware sets it per request, the worker per
job (from the outbox rows it applies), and every log line picks it up. Emails and tokens are masked
with `mask_email` / `mask_secret` before they reach a log call.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# LogRecord attributes that are not extra fields given by the caller.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def json_line(created: float, level: str, logger: str, message: str, fields: Mapping[str, Any]) -> str:
    """One JSON log line (no newline): time (`created`, a `time.time()`), level, logger, message, then
    the fields in their order; an empty `request_id` field is left out."""
    ts = f"{_second(int(created))}.{int(created % 1 * 1000):03d}Z"
    entry = {"ts": ts, "level": level, "logger": logger, "msg": message, **fields}
    if "request_id" in entry and not entry["request_id"]:
        del entry["request_id"]
    return orjson.dumps(entry, default=str).decode()


@lru_cache(maxsize=4)
def _second(second: int) -> str:
    """A log line's time to the second: the access log writes hundreds of lines a second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`json_line`): time, level, logger, message, request id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {"request_id": getattr(record, "request_id", None) or REQUEST_ID.get()}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key != "request_id":
                fields[key] = value
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json_line(record.created, record.levelname.lower(), record.name, record.getMessage(), fields)


class TextFormatter(logging.Formatter):
    """For people at a terminal: time, level, logger, message, then the request id and the extras as
    key=value, but for those the message already shows by name (`%(route)s` with a mapping of args)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        shown = _named(record.msg) if isinstance(record.args, Mapping) and isinstance(record.msg, str) else ()
        extras = [
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and k != "request_id" and k not in shown
        ]
        if request_id:
            extras.insert(0, f"request_id={request_id}")
        if extras:
            head, newline, rest = line.partition("\n")  # a traceback stays below the first line
            line = f"{head}  {' '.join(extras)}{newline}{rest}"
        return line


@lru_cache(maxsize=64)
def _named(template: str) -> frozenset[str]:
    """The keys a message template shows by name: `%(method)s %(route)s` → method, route."""
    return frozenset(re.findall(r"%\((\w+)\)", template))


# arq logs, at INFO, the start and the end of every job (cron jobs included: a few every 15 s while
# idle) and a health record every 10 s. Those of cron jobs and the health records are moved to DEBUG;
# job failures are logged at WARNING or above and are left alone.
_TICK_ARROWS = ("\u2192", "\u2190")  # arq's "→ cron:x()" (started) and "← cron:x ●" (finished)


class QuietTicks(logging.Filter):
    """On the `arq.worker` logger: cron job starts/finishes and health records become DEBUG lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and _is_tick(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            # The logger let the record through at INFO; shown only if DEBUG is on.
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _is_tick(record: logging.LogRecord) -> bool:
    msg = str(record.msg)
    if msg.startswith("recording health"):
        return True
    args = record.args if isinstance(record.args, tuple) else ()
    return (
        any(arrow in msg for arrow in _TICK_ARROWS)
        and len(args) > 1
        and isinstance(args[1], str)
        and args[1].startswith("cron:")
    )


class OneLineRetries(logging.Filter):
    """On the `asyncpg.pool` logger: a connection it failed to open again in the background (PostgreSQL
    down or stalled; it retries by itself) is one line naming the error, not a traceback at each retry."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg, record.args = f"{record.getMessage()}: {record.exc_info[1]!r}", None
            record.exc_info, record.exc_text = None, None
        return True


class OneLineBadRequests(logging.Filter):
    """On the `aiohttp.server` logger: a request aiohttp cannot parse (a NUL in a header, a broken request
    line) is answered 400 and logged by the access log; aiohttp's own record of it, a traceback at ERROR
    any client can cause, becomes one DEBUG line naming the error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        # Its first line only: the lines after it quote the raw header (an Authorization header's too).
        first = str(exc).split("\n", 1)[0][:200]
        record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__} {first!r}", None
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("json", "text")


def configure(*, level: str = "INFO", fmt: str = "json") -> None:
    """Log to stderr as JSON lines (`fmt="json"`) or as readable text (`fmt="text"`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    arq_worker = logging.getLogger("arq.worker")
    if not any(isinstance(f, QuietTicks) for f in arq_worker.filters):
        arq_worker.addFilter(QuietTicks())
    asyncpg_pool = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, OneLineRetries) for f in asyncpg_pool.filters):
        asyncpg_pool.addFilter(OneLineRetries())
    aiohttp_server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineBadRequests) for f in aiohttp_server.filters):
        aiohttp_server.addFilter(OneLineBadRequests())


def mask_email(address: str | None) -> str:
    """`ada.lovelace@example.com` → `a***@example.com`: enough to tell people apart, not to write to them."""
    if not address:
        return ""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else f"{address[:1]}***"


def mask_secret(secret: str | None) -> str:
    """Only a token's first characters (its prefix) are ever shown."""
    return f"{secret[:6]}…" if secret else ""
