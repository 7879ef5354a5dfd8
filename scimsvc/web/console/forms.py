"""HTML form fields → the JSON-shaped payloads the admin schemas validate (the schemas decide, not this)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError

from scimsvc.scim.errors import invalid_value

_INTEGER = re.compile(r"[+-]?\d{1,15}")
_SEPARATORS = re.compile(r"[\s,;]+")


def text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def number(raw: str) -> int | str:
    """A whole number as an int; anything else as typed, for the schema to refuse with its message."""
    return int(raw) if _INTEGER.fullmatch(raw) else raw


def flag(raw: str) -> bool | str:
    """A form's "true" or "false" as the JSON boolean the admin API's schemas take; anything else as typed,
    for the schema to refuse with its message."""
    return {"true": True, "false": False}.get(raw, raw)


def words(raw: str) -> list[str]:
    """A list typed as words separated by commas, spaces or new lines."""
    return [w for w in _SEPARATORS.split(raw) if w]


def load_form(schema: Schema, payload: Mapping[str, Any], plain: Mapping[str, str]) -> dict[str, Any]:
    """Validate a console form's payload with an admin schema; a wrong field is told in the page's words
    (`plain`: field name -> its translated text, e.g. "A label is at most 100 characters."), never in the
    schema's ("label: Longer than maximum length 100."). A 400, nothing changed."""
    try:
        return dict(schema.load(dict(payload)))
    except ValidationError as exc:
        wrong = exc.messages if isinstance(exc.messages, dict) else {}
        told = [text for field, text in plain.items() if field in wrong]
        raise invalid_value(" ".join(told) or next(iter(plain.values()), "")) from None
