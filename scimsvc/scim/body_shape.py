"""Limits on the shape of a SCIM request body, checked once, right after it is parsed; pure.

* Nesting: the JSON parser accepts 1,024 levels, but the code that walks a body (PATCH's copies,
  bulkId resolution, the JSON encoder of the database driver) is recursive. No SCIM body needs more
  than about ten levels (a Bulk operation's PATCH of an extension's complex attribute), so a body
  nested deeper than `MAX_DEPTH` is refused before any of that code sees it.
* Names given twice: SCIM attribute names are case-insensitive (RFC 7643 §2.1), so an object that
  names one member twice in different case (`"path"` and `"Path"`) is ambiguous and is refused, rather
  than one reader taking the first spelling and another the last.

The walk is iterative: it must not itself hit the recursion limit it guards.
"""

from __future__ import annotations

from typing import Any

from scimsvc.scim.errors import ScimError, invalid_syntax

MAX_DEPTH = 32  # levels of objects and arrays; a scalar is level 0, `{"a": 1}` is 1


def shape_error(
    value: Any, *, where: str = "the request body", max_depth: int = MAX_DEPTH, names: bool = True
) -> ScimError | None:
    """A 400 invalidSyntax if `value` nests deeper than `max_depth` or (with `names`) names a member
    twice in different case; None if its shape is fine."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth >= max_depth:
            return invalid_syntax(
                f"{where} nests objects and arrays more than {max_depth} levels deep "
                f"(at {path.lstrip('.') or 'its top'}); "
                f"this server accepts at most {max_depth}, and no SCIM resource needs more"
            )
        if isinstance(item, list):
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(item))
            continue
        if names and (error := names_error(item, where=where, path=path.lstrip("."))) is not None:
            return error
        stack.extend((v, depth + 1, f"{path}.{key}") for key, v in item.items())
    return None


def names_error(obj: dict[str, Any], *, where: str = "the request body", path: str = "") -> ScimError | None:
    """A 400 invalidSyntax if the object `obj` (not its members) names a member twice in different case."""
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
