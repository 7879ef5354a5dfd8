"""Limits on the shape of a SCIM request body, checked once, right after it is parsed; pure.

* Nesting: the JSON parser accepts 1,024 levels, but the code that walks a body (PATCH's copies,
  bulkId resolution, the JSON encoder of the database driver) is recursive. No SCIM body needs more
  than about ten levels (a Bulk operation's PATCH of an extension's complex attribute), so a body
  nested deeper than `MAX_DEPTH` is refused before any of that code sees it.
* Names given twice: SCIM attribute names are case-insensitive (RFC 7643 §2.1), so an object that
  names one member twice in different case (`"path"` and `"Path"`) is ambiguous and is refused, rather
  than one reader taking the first spelling and another the last.
* A resource's `schemas` (POST and PUT of a User or Group), when the body gives them, must list the
  resource's core schema (RFC 7643 §3): a User body that says it is a Group is refused, not stored as a
  User. A body without `schemas` is taken, as IdPs that leave them out expect.

The walk is iterative: it must not itself hit the recursion limit it guards.
"""

from __future__ import annotations

from typing import Any

from scimsvc.scim.attribute_names import find_member
from scimsvc.scim.errors import ScimError, invalid_syntax, invalid_value, shown

MAX_DEPTH = 32  # levels of objects and arrays; a scalar is level 0, `{"a": 1}` is 1
_CONTAINERS = (dict, list)  # a tuple: `dict | list` in isinstance builds a union on every call


# Where an item sits, as a linked list (parent, key or index): built for every container, rendered
# only for the one refused, so a 50,000-member push is checked in a few tens of milliseconds.
_Where = tuple["_Where", str | int] | None


def _rendered(where: _Where) -> str:
    parts: list[str] = []
    while where is not None:
        where, step = where
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(reversed(parts)).lstrip(".")


def shape_error(
    value: Any, *, where: str = "the request body", max_depth: int = MAX_DEPTH, names: bool = True
) -> ScimError | None:
    """A 400 invalidSyntax if `value` nests deeper than `max_depth` or (with `names`) names a member
    twice in different case; None if its shape is fine."""
    if not isinstance(value, _CONTAINERS):
        return None
    stack: list[tuple[Any, int, _Where]] = [(value, 0, None)]
    while stack:
        item, depth, at = stack.pop()
        if depth >= max_depth:
            return invalid_syntax(
                f"{where} nests objects and arrays more than {max_depth} levels deep "
                f"(at {_rendered(at) or 'its top'}); "
                f"this server accepts at most {max_depth}, and no SCIM resource needs more"
            )
        if isinstance(item, list):
            for i, v in enumerate(item):
                if isinstance(v, dict) and depth + 1 < max_depth and _flat(v):
                    # The common case (a member of a 50,000-member push): checked here, nothing pushed.
                    if names and len(v) > 1 and _names_twice(v):
                        return names_error(v, where=where, path=_rendered((at, i)))
                elif isinstance(v, _CONTAINERS):
                    stack.append((v, depth + 1, (at, i)))
            continue
        if names and len(item) > 1 and _names_twice(item):
            return names_error(item, where=where, path=_rendered(at))
        for k, v in item.items():
            if isinstance(v, _CONTAINERS):
                stack.append((v, depth + 1, (at, k)))
    return None


def _names_twice(obj: dict[str, Any]) -> bool:
    """Whether two of the object's member names differ only in case."""
    if len(obj) == 2:  # {"value", "display"}: most objects of a large body
        first, second = obj
        return first.lower() == second.lower()
    return len({key.lower() for key in obj}) != len(obj)


def _flat(obj: dict[str, Any]) -> bool:
    """Whether none of the object's members is an object or an array."""
    for v in obj.values():
        if isinstance(v, _CONTAINERS):
            return False
    return True


def names_error(obj: dict[str, Any], *, where: str = "the request body", path: str = "") -> ScimError | None:
    """A 400 invalidSyntax if the object `obj` (not its members) names a member twice in different case."""
    if len(obj) < 2 or not _names_twice(obj):
        return None
    seen: dict[str, str] = {}
    for key in obj:
        lowered = key.lower()
        if lowered in seen:
            inside = f" in {path}" if path else ""
            return invalid_syntax(
                f'{where} names "{seen[lowered]}" and "{key}"{inside}: attribute names are '
                "case-insensitive (RFC 7643 §2.1), so this is the same member given twice; send it once"
            )
        seen[lowered] = key
    return None


def check_shape(value: Any, *, max_depth: int = MAX_DEPTH, names: bool = True) -> Any:
    """`value` itself, or raise `shape_error`'s 400."""
    if (error := shape_error(value, max_depth=max_depth, names=names)) is not None:
        raise error
    return value


def check_schemas(body: dict[str, Any], core: str, what: str) -> None:
    """400 invalidValue when the body's `schemas` are given and do not list `core` (compared without case,
    as URNs are); `what` names the resource in the detail."""
    present, schemas = find_member(body, "schemas")
    if not present:
        return
    if isinstance(schemas, list) and (
        core in schemas or any(isinstance(s, str) and s.lower() == core.lower() for s in schemas)
    ):
        return
    raise invalid_value(f'the "schemas" of a {what} must list "{core}", got {shown(schemas)}')
