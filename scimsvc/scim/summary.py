"""The provisioning log's short readable text of a SCIM request (README.md, What happened).

`summarize` turns a request's method, route template, parsed body and query into a line an operator
reads at a glance (`PATCH replace active=false`, `PUT group "Design" (1,204 members)`). It never raises,
whatever the body holds, never shows a password, token or secret, and is at most `MAX_SUMMARY` long:
the body itself is never stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAX_SUMMARY = 200
MAX_VALUE = 40  # characters of a shown value or filter
MAX_USER_NAME = 256
_NUMBERS = (int, float)
# An attribute whose name holds one of these is shown without its value, wherever it is.
SECRET_WORDS = ("password", "secret", "token", "credential")
HIDDEN = "(not shown)"
# The filter IdPs send before creating a user. Without a backslash, the plain pattern (no alternation:
# this runs on every GET) finds the name; with one, the escaped pattern does.
_USER_NAME_EQ = re.compile(r'\s*userName\s+eq\s+"([^"\\]*)"\s*$', re.IGNORECASE)
# A PATCH path that is only an attribute name (a URN, dots): shown even when it names a secret, since
# nothing in it is a value. A path with a filter (`emails[value eq "..."]`) may quote one: hidden whole.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9:._$-]+")
# A quoted value in a refusal's detail ('...' or "..."), dropped when the summary hid a secret.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_USER_NAME_EQ_ESCAPED = re.compile(r'\s*userName\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)


def summarize(
    method: str, endpoint: str | None, *, body: Any = None, query: Mapping[str, str] | None = None
) -> str:
    """The short text of one request: what it asked for, never a secret, at most `MAX_SUMMARY` long."""
    return describe(method, endpoint or "", body, query or {})[1]


def user_name_of(
    endpoint: str | None, *, body: Any = None, query: Mapping[str, str] | None = None
) -> str | None:
    """The userName a request is about: a User body's, or the value of a `userName eq` filter."""
    return describe("GET", endpoint or "", body, query or {})[2]


def describe(
    method: str, endpoint: str, body: Any, query: Mapping[str, str]
) -> tuple[str | None, str, str | None]:
    """The kind of resource a request's route is about (`user`, `group` or None), and `summarize` and
    `user_name_of` of the request, at once: the provisioning log's row of every SCIM request finds the
    route's kind and the filter once."""
    kind = _kind(endpoint)
    method = method.upper()
    query_filter = query.get("filter")
    try:
        text = _summary(method, endpoint, kind, body, query_filter)
    except Exception:  # a body of a shape no rule expects: the method and endpoint still say something
        text = f"{method} {_last_segment(endpoint)}"
    if kind != "user":
        return kind, readable(text, MAX_SUMMARY), None
    name = _get(body, "userName") if isinstance(body, dict) else None
    if not isinstance(name, str):
        filter_text = _get(body, "filter") if isinstance(body, dict) else query_filter
        name = _user_name_eq(filter_text) if isinstance(filter_text, str) else None
    return kind, readable(text, MAX_SUMMARY), readable(name, MAX_USER_NAME) if name else None


def hid_a_secret(summary: str) -> bool:
    """Whether `summary` left a secret value out (the request's refusal may quote it too)."""
    return HIDDEN in summary


def without_quoted_values(detail: str) -> str:
    """A refusal's detail with every quoted value replaced, for a request that carried a secret."""
    return _QUOTED.sub(HIDDEN, detail)


def _user_name_eq(filter_text: str) -> str | None:
    if "\\" not in filter_text:
        match = _USER_NAME_EQ.match(filter_text)
        return match.group(1) if match else None
    match = _USER_NAME_EQ_ESCAPED.match(filter_text)
    return match.group(1).replace('\\"', '"').replace("\\\\", "\\") if match else None


def _summary(method: str, endpoint: str, kind: str | None, body: Any, query_filter: str | None) -> str:
    with_id = endpoint.endswith("/{id}")
    if endpoint.endswith("/Bulk"):
        operations = _get(body, "Operations")
        one = isinstance(operations, list) and len(operations) == 1
        return f"POST /Bulk ({_count(operations)} operation{'' if one else 's'})"
    if endpoint.endswith("/.search"):
        return _search("SEARCH", _get(body, "filter") if isinstance(body, dict) else None)
    if method == "GET" and kind is not None and not with_id:
        return _search("GET", query_filter, what=f"{kind}s")
    if kind is None or method == "DELETE" or method == "GET":
        return f"{method} {kind or _last_segment(endpoint)}"
    if method == "PATCH":
        return "PATCH " + "; ".join(_operation(op) for op in _list(_get(body, "Operations")))
    if kind == "user":
        return f"{method} user {_quoted(_get(body, 'userName'))}"
    members = _get(body, "members")
    count = f" ({_count(members)} members)" if members is not None else ""
    return f"{method} group {_quoted(_get(body, 'displayName'))}{count}"


def _search(verb: str, filter_text: Any, *, what: str = "") -> str:
    if not isinstance(filter_text, str) or not filter_text.strip():
        return f"{verb} {what}".strip() if what else f"{verb} all"
    if _secret(filter_text):
        return f"{verb} filter {HIDDEN}"
    return f"{verb} filter {readable(' '.join(filter_text.split()), MAX_VALUE * 2)}"


def _operation(op: Any) -> str:
    if not isinstance(op, dict):
        return "?"
    name = str(_get(op, "op") or "?").lower()[:10]
    path = _get(op, "path")
    value = _get(op, "value")
    if isinstance(path, str) and path:
        if _secret(path):  # checked on the whole path: a URN's attribute name comes last
            shown = readable(path, MAX_VALUE) if _PLAIN_PATH.fullmatch(path) else HIDDEN
            return f"{name} {shown}" + (f"={HIDDEN}" if value is not None else "")
        path = readable(path, MAX_VALUE)
        if path.lower().startswith("members"):
            return f"{name} members ({_count(value) if value is not None else 'all'})"
        return f"{name} {path}" + (f"={_shown(value)}" if value is not None else "")
    if isinstance(value, dict):  # no path: the value's attributes are the targets
        parts = [
            f"members ({_count(v)})" if str(k).lower() == "members" else f"{k}={_value(str(k), v)}"
            for k, v in list(value.items())[:5]
        ]
        more = ", ..." if len(value) > 5 else ""
        return f"{name} " + ", ".join(parts) + more
    return name


def _value(path: str, value: Any) -> str:
    return HIDDEN if _secret(path) else _shown(value)


def _shown(value: Any) -> str:
    """A value of an attribute whose name is not a secret's."""
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _NUMBERS) or value is None:
        return str(value)[:MAX_VALUE]
    if isinstance(value, list):
        return f"[{len(value)}]"
    if isinstance(value, dict):
        inner = [k for k in value if not _secret(str(k))]
        return (
            "{"
            + ", ".join(readable(str(k), MAX_VALUE) for k in inner[:3])
            + (", ..." if len(inner) > 3 else "")
            + "}"
        )
    return "?"


def _secret(text: str) -> bool:
    lowered = text.lower()
    for word in SECRET_WORDS:  # a loop, not any() over a generator: half the time, on every path
        if word in lowered:
            return True
    return False


def _kind(endpoint: str) -> str | None:
    lowered = endpoint.lower()
    if "/users" in lowered:
        return "user"
    if "/groups" in lowered:
        return "group"
    return None


def _get(body: Any, name: str) -> Any:
    """A member of a JSON object by name, case-insensitively (SCIM names are)."""
    if not isinstance(body, dict):
        return None
    if name in body:
        return body[name]
    lowered = name.lower()
    for key, value in body.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _count(value: Any) -> str:
    return f"{len(value):,}" if isinstance(value, list) else "0"


def _quoted(value: Any) -> str:
    if not isinstance(value, str):
        return "(none)"
    return '"' + readable(value, MAX_VALUE) + '"'


def _last_segment(endpoint: str) -> str:
    return endpoint.rstrip("/").rsplit("/", 1)[-1] or "/"


def readable(text: str, limit: int) -> str:
    """`text` with each control character, NUL or lone surrogate as a space (PostgreSQL text cannot hold
    the last two: one such value would fail its whole batch), cut to `limit` characters."""
    if not text.isprintable():  # rare: a newline in a value, or a hostile body
        text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
