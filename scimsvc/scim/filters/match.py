"""Filters evaluated in memory: whether a rendered resource, or one element of `attr[...]`, matches.

`matches` and `matches_element` build a predicate from a `tree` (names resolved through `names`, values
typed by `rules` once, while building) and run it on plain mappings, selecting exactly what `sql` selects
in the database and raising the same invalid_filter errors whatever the data. PATCH paths
(`emails[type eq "work"]`) use it. It never builds SQL or does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.catalog import Attr, AttrPath, ResourceTypeDef
from scimsvc.scim.errors import invalid_filter
from scimsvc.scim.filters.names import element_leaf, needs_sub, resolve, resolve_sub, value_path
from scimsvc.scim.filters.parse import quote
from scimsvc.scim.filters.rules import (
    OPS,
    Check,
    Leaf,
    as_bool,
    as_datetime,
    as_number,
    as_text,
    as_uuid,
    leaf_of,
    make_check,
    node_parts,
    normalize,
)
from scimsvc.scim.filters.tree import And, Node, Not, Or, Value, ValuePath

_Pred = Callable[[Any], bool]


def matches(node: Node, resource: Mapping[str, Any], rtype: ResourceTypeDef) -> bool:
    """Whether a rendered resource (canonical keys, `id`, `meta`, extensions under their URN) matches
    `node`, by the same rules as `sql.compile_filter`; raises the same invalid_filter errors, whatever
    the data."""
    return _Matcher(rtype).node(node, None)(resource)


def matches_element(node: Node, element: Mapping[str, Any], attr: Attr) -> bool:
    """Whether one element of the multi-valued complex `attr` matches the filter inside `attr[...]`."""
    return _Matcher(None).node(node, _PyScope(attr, attr.name))(element)


@dataclass(frozen=True)
class _PyScope:
    attr: Attr  # the attribute of `attr[...]`; the predicate gets one element (or the object)
    label: str  # its name in messages


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class _Matcher:
    """Builds a predicate; names are resolved and values checked while building, not per resource."""

    def __init__(self, rtype: ResourceTypeDef | None) -> None:
        self.rtype = rtype

    def node(self, node: Node, scope: _PyScope | None) -> _Pred:
        if isinstance(node, And):
            left, right = self.node(node.left, scope), self.node(node.right, scope)
            return lambda x: left(x) and right(x)
        if isinstance(node, Or):
            left, right = self.node(node.left, scope), self.node(node.right, scope)
            return lambda x: left(x) or right(x)
        if isinstance(node, Not):
            inner = self.node(node.expr, scope)
            return lambda x: not inner(x)
        if isinstance(node, ValuePath):
            if scope is not None or self.rtype is None:
                raise invalid_filter(f"value filters cannot be nested: {quote(node.attr)}[...]")
            path = value_path(self.rtype, node, False)
            element = self.node(node.filter, _PyScope(path.attr, str(path)))
            get = _getter(path)
            if path.attr.multi_valued:
                return lambda r: any(element(item) for item in _items(get(r)))
            return lambda r: element(get(r))
        op, value = node_parts(node)
        return self.term(node.attr, normalize(op, value), value, scope)

    def term(self, name: str, op: str, value: Value, scope: _PyScope | None) -> _Pred:
        if scope is not None:
            sub = resolve_sub(scope.attr, name)
            check = make_check(leaf_of(f"{scope.label}.{sub.name}", sub), op, value)
            return lambda element: _evaluate(check, _get(element, sub.name))
        assert self.rtype is not None
        path = resolve(self.rtype, name)
        attr, get = path.attr, _getter(path)
        if attr.multi_valued:
            if path.sub is None and op in ("pr", "absent"):
                return lambda r: bool(_items(get(r))) == (op == "pr")
            element, leaf = element_leaf(path)
            check = make_check(leaf, "pr" if op == "absent" else op, value)
            key = element.name if element else None

            def found(r: Any) -> bool:
                return any(_evaluate(check, _get(item, key) if key else item) for item in _items(get(r)))

            return (lambda r: not found(r)) if op == "absent" else found
        if attr.type == "complex" and path.sub is None:
            if op not in ("pr", "absent"):
                raise needs_sub(path)
            checks = [
                (s.name, make_check(leaf_of(f"{path}.{s.name}", s), "pr", None)) for s in attr.sub_attributes
            ]
            return lambda r: any(_evaluate(c, _get(get(r), key)) for key, c in checks) == (op == "pr")
        # `id` compares as a UUID, as it does against the store's uuid column (an invalid one equals nothing).
        is_id = attr.common and attr.name == "id" and path.sub is None
        check = make_check(leaf_of(str(path), path.target, type_name="uuid" if is_id else None), op, value)
        if path.sub is not None:
            key = path.sub.name
            return lambda r: _evaluate(check, _get(get(r), key))
        return lambda r: _evaluate(check, get(r))


def _getter(path: AttrPath) -> Callable[[Any], Any]:
    """Reads `path.attr` (not the sub-attribute) from a rendered resource."""
    name, urn = path.attr.name, path.schema.id
    if path.is_extension:
        return lambda r: _get(_get(r, urn), name)
    return lambda r: _get(r, name)


def _present(leaf: Leaf, raw: Any) -> bool:
    """Whether a value is there: not None, and for strings not empty."""
    return raw is not None and not (leaf.kind == "string" and raw == "")


def _evaluate(check: Check, raw: Any) -> bool:
    """`check` on a value from a resource (None when absent): the Python twin of `sql._SqlCompiler.check`."""
    leaf, op = check.leaf, check.op
    if op in ("pr", "absent"):
        return _present(leaf, raw) == (op == "pr")
    stored = _stored(leaf, raw)
    if leaf.kind == "uuid" and op in ("eq", "ne"):
        text, parsed = check.operand
        mine = as_uuid(stored) if stored is not None else None
        same = stored is not None and (
            mine == parsed if mine is not None and parsed is not None else stored == text
        )
        return same == (op == "eq")
    if stored is None:
        return op == "ne"
    left, right = stored, check.operand
    if leaf.kind == "string" and not leaf.case_exact:
        left, right = left.lower(), right.lower()
    return bool(OPS[op].test(left, right))


def _stored(leaf: Leaf, raw: Any) -> Any:
    """A resource's value as the type of `leaf` (None when absent or not of that type)."""
    if raw is None:
        return None
    if leaf.kind == "boolean":
        return as_bool(raw)
    if leaf.kind == "dateTime":
        return as_datetime(raw)
    if leaf.kind == "number":
        return as_number(raw)
    text = as_text(raw)
    parsed = as_uuid(text) if leaf.kind == "uuid" else None
    return str(parsed) if parsed else text
