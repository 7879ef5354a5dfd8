"""SCIM attribute names are case-insensitive (RFC 7643 §2.1): the members of a JSON object found by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def keys_named(obj: Mapping[str, Any], name: str) -> list[str]:
    """Every key of `obj` that spells `name`, in order (more than one only in a body refused as ambiguous)."""
    lowered = name.lower()
    return [key for key in obj if isinstance(key, str) and key.lower() == lowered]


def key_named(obj: Mapping[str, Any], name: str) -> str | None:
    """The first key of `obj` that spells `name`, or None."""
    if name in obj:
        return name
    lowered = name.lower()
    return next((key for key in obj if isinstance(key, str) and key.lower() == lowered), None)


def find_member(obj: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """(present, value) of the member `name`."""
    if name in obj:  # spelled as declared: most bodies
        return True, obj[name]
    key = key_named(obj, name)
    return (False, None) if key is None else (True, obj[key])


def member(obj: Mapping[str, Any], name: str) -> Any:
    """The value of the member `name`, or None when there is none."""
    key = key_named(obj, name)
    return None if key is None else obj[key]
