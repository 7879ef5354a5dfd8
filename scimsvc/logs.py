"""Structured JSON logs that carry the request id, from the IdP's call into the jobs it caused.

The request id lives in a context variable: the web middleware sets it per request, the worker per
job (from the outbox rows it applies), and every log line picks it up. Emails and tokens are masked
with `mask_email` / `mask_secret` before they reach a log call.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# LogRecord attributes that are not extra fields given by the caller.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key != "request_id":
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class RequestIdFilter(logging.Filter):
    """For the plain-text format: `%(request_id)s` is the current request id, or '-'."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get() or "-"
        return True


def configure(*, level: str = "INFO", fmt: str = "json") -> None:
    """Log to stderr as JSON lines (`fmt="json"`) or as readable text (`fmt="text"`)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "text":
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def mask_email(address: str | None) -> str:
    """`ada.lovelace@example.com` → `a***@example.com`: enough to tell people apart, not to write to them."""
    if not address:
        return ""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else f"{address[:1]}***"


def mask_secret(secret: str | None) -> str:
    """Only a token's first characters (its prefix) are ever shown."""
    return f"{secret[:6]}…" if secret else ""
