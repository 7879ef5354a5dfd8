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


def words(raw: str) -> list[str]:
    """A list typed as words separated by commas, spaces or new lines."""
    return [w for w in _SEPARATORS.split(raw) if w]


def licensing_payload(form: Mapping[str, Any]) -> dict[str, Any]:
    """Seats and license rules from the seats form or the new-tenant form; empty fields are left out."""
    payload: dict[str, Any] = {"flexible_licenses": form.get("flexible_licenses") == "on"}
    if seats := text(form, "seats"):
        payload["seats"] = number(seats)
    for name in ("default_license", "fallback_license"):
        if value := text(form, name):
            payload[name] = value
    return payload


def tenant_create_payload(form: Mapping[str, Any]) -> dict[str, Any]:
    """The new-tenant form as a `TenantCreateSchema` payload."""
    payload = {
        "name": text(form, "name"),
        "scim_enabled": form.get("scim_enabled") == "on",
        **licensing_payload(form),
    }
    if domains := words(text(form, "allowed_domains")):
        payload["allowed_domains"] = domains
    return payload


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
