"""SCIM PATCH (RFC 7644 §3.5.2): parsing a PatchOp body and applying it to a stored resource (no I/O).

The stored resource has canonical attribute names and extension attributes nested under their schema
URN. `apply_patch` returns a new dict; the caller re-validates the whole result (which also turns the
`"True"`/`"False"` strings some IdPs send into booleans), so values are not type-checked here.

IdP quirks handled on purpose:
- Entra: `op` in any case (`Replace`, `Add`), booleans as strings, `Add emails[type eq "work"].value`
  for an email that does not exist yet (the element is created from the filter's `eq` comparisons),
  the manager as a bare id string, `Remove members` with a value list (remove those members only).
- Okta: `replace` with no path and a value object (`{"active": false}`).
- Both: readOnly attributes echoed back in a no-path value object are ignored, not refused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from schemas.catalog import Attr, ResourceTypeDef, SchemaDef
from scimsvc.scim.attribute_names import find_member, key_named, keys_named, member
from scimsvc.scim.errors import ScimError, invalid_path, invalid_syntax, mutability, no_target, shown
from scimsvc.scim.filters.match import matches_element
from scimsvc.scim.filters.parse import parse_filter
from scimsvc.scim.filters.tree import And, Compare, Node
from scimsvc.scim.users import PASSWORD_REFUSED

PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PATCH_OPS = ("add", "remove", "replace")
MAX_OPERATIONS = 10_000

_EXAMPLE = (
    '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], '
    '"Operations": [{"op": "replace", "path": "displayName", "value": "Jo"}]}'
)


class PatchOperation(NamedTuple):
    """One PATCH operation; `op` is lower-case, `path` None when the request gave none. A named tuple: made
    for every operation of every PATCH, at a quarter of a frozen dataclass's cost."""

    op: str  # "add" | "remove" | "replace"
    path: str | None
    value: Any


def patched_active(operations: list[PatchOperation]) -> bool | None:
    """The value of `active` a PATCH sets when setting it is all the PATCH does (Okta's deactivation:
    `{"op": "replace", "value": {"active": false}}`, or with the path `active`), else None."""
    active = None
    for operation in operations:
        if operation.op not in ("replace", "add"):
            return None
        value = operation.value
        if operation.path is None:
            if not isinstance(value, dict) or len(value) != 1:
                return None
            ((key, value),) = value.items()
            if not isinstance(key, str) or key.lower() != "active":
                return None
        elif operation.path.lower() != "active":
            return None
        if not isinstance(value, bool):
            return None
        active = value
    return active


def patched_texts(
    operations: Sequence[PatchOperation], rtype: ResourceTypeDef, *, kept: frozenset[str]
) -> dict[str, Any] | None:
    """What a PATCH sets when all it does is give single text attributes a text (Entra's `Replace` of
    displayName, name.givenName, title, the enterprise department...), nested as the stored resource holds
    them (`{"name": {"givenName": ...}}`, an extension's under its URN), the last value of each; else None.
    Attributes named in `kept` (and their sub-attributes) never qualify.

    Applying such operations is setting each of these values in the stored resource: `apply_patch` does
    nothing else with them."""
    texts: dict[str, Any] = {}
    for operation in operations:
        if operation.op == "remove" or not operation.path or not isinstance(operation.value, str):
            return None
        try:
            target = _parse_target(operation.path, rtype)
        except ScimError:
            return None
        named = [a for a in (target.attr, target.sub) if a is not None]
        if (
            target.filter is not None
            or not named
            or named[-1].type != "string"
            or any(a.name in kept or a.mutability != "readWrite" or a.multi_valued for a in named)
        ):
            return None
        container = texts if target.schema is rtype.core else texts.setdefault(target.schema.id, {})
        if target.sub is None:
            container[named[0].name] = operation.value
        else:
            container.setdefault(named[0].name, {})[target.sub.name] = operation.value
    return texts or None


# --------------------------------------------------------------------------------------------- parsing


def _too_many(count: int) -> ScimError:
    return ScimError(
        413,
        f"a PATCH request may carry at most {MAX_OPERATIONS} operations, this one has {count}; "
        "split it into several requests",
    )


def parse_patch_request(body: Any) -> list[PatchOperation]:
    """The operations of an RFC 7644 §3.5.2 PatchOp body, or a 400 saying what is wrong with it."""
    if not isinstance(body, Mapping):
        raise invalid_syntax(f"the PATCH body must be a JSON object, e.g. {_EXAMPLE}")
    present, schemas = find_member(body, "schemas")
    if present and schemas is not None:
        listed = [schemas] if isinstance(schemas, str) else schemas
        if not isinstance(listed, list) or not any(
            isinstance(s, str) and s.lower() == PATCH_OP_SCHEMA.lower() for s in listed
        ):
            raise invalid_syntax(
                f'"schemas" of a PATCH body must be ["{PATCH_OP_SCHEMA}"], got {shown(schemas)}'
            )
    present, operations = find_member(body, "Operations")
    if not present:
        raise invalid_syntax(f'the PATCH body has no "Operations" list, e.g. {_EXAMPLE}')
    if not isinstance(operations, list):
        raise invalid_syntax(f'"Operations" must be a list of operations, got {type(operations).__name__}')
    if len(operations) > MAX_OPERATIONS:
        raise _too_many(len(operations))
    return [_parse_operation(index, raw) for index, raw in enumerate(operations)]


def _parse_operation(index: int, raw: Any) -> PatchOperation:
    where = f"Operations[{index}]"
    if not isinstance(raw, dict) and not isinstance(raw, Mapping):  # JSON's objects are dicts: no ABC check
        raise invalid_syntax(f'{where} must be an object with "op", "path" and "value", got {shown(raw)}')
    _, op = find_member(raw, "op")
    if not isinstance(op, str) or op.strip().lower() not in PATCH_OPS:
        raise invalid_syntax(f'{where} has op {shown(op)}; op must be "add", "remove" or "replace"')
    op = op.strip().lower()
    _, path = find_member(raw, "path")
    if path is not None and not isinstance(path, str):
        raise invalid_syntax(f'{where}: path must be a string such as "name.givenName", got {shown(path)}')
    path = path.strip() if path else None
    path = path or None
    has_value, value = find_member(raw, "value")
    if op == "remove" and path is None:
        raise no_target(f'{where}: a "remove" operation needs a "path" naming what to remove')
    if op in ("add", "replace") and not has_value:
        raise invalid_syntax(f'{where}: an "{op}" operation needs a "value"')
    return PatchOperation(op=op, path=path, value=value)


# ----------------------------------------------------------------------------------------------- paths


@dataclass(frozen=True)
class _Target:
    """A parsed PATCH path: a whole extension (`attr` None), or `attr`, `attr.sub`, `attr[filter][.sub]`."""

    text: str
    schema: SchemaDef
    attr: Attr | None
    filter: Node | None = None
    sub: Attr | None = None

    def label(self) -> str:
        if self.attr is None:
            return self.schema.id
        return self.attr.name if self.sub is None else f"{self.attr.name}.{self.sub.name}"


def _closing_bracket(text: str, start: int) -> int:
    """The index of the `]` closing the filter that starts at `start`, skipping quoted strings; -1 if none."""
    in_string = False
    i = start
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "]":
            return i
        i += 1
    return -1


# Parsed paths by (resource type, path): IdPs send the same few paths in every PATCH. Targets are frozen, so
# one is shared by every request. Each entry holds its resource type, so that type's id stays its own
# while the entry lives (keyed by id: hashing a frozen type would walk all its attributes). Paths come from
# clients, so the cache is emptied when it holds _MAX_TARGETS.
_TARGETS: dict[tuple[int, str], tuple[ResourceTypeDef, _Target]] = {}
_MAX_TARGETS = 1024


def _parse_target(path: str, rtype: ResourceTypeDef) -> _Target:
    """Resolve a PATCH path against `rtype`; invalid_path for an unknown attribute or a malformed path."""
    key = (id(rtype), path)
    entry = _TARGETS.get(key)
    if entry is None:
        entry = (rtype, _resolve_target(path, rtype))  # an invalid path raises: never cached
        if len(_TARGETS) >= _MAX_TARGETS:
            _TARGETS.clear()
        _TARGETS[key] = entry
    return entry[1]


def _resolve_target(path: str, rtype: ResourceTypeDef) -> _Target:
    text = path.strip()
    ext = rtype.extension(text)
    if ext is not None:
        return _Target(text, ext, None)
    schema, rest = rtype.split_urn(text)
    cut = min((i for i in (rest.find("["), rest.find(".")) if i >= 0), default=len(rest))
    name, tail = rest[:cut].strip(), rest[cut:]
    if not name:
        raise invalid_path(f"path {text!r} does not name an attribute")
    if name.lower() == "password":
        raise mutability(PASSWORD_REFUSED)
    if ":" in name:
        raise invalid_path(
            f"path {text!r} names an unknown schema; known: {', '.join(s.id for s in rtype.schemas)}"
        )
    attr = schema.attr(name)
    if attr is None:
        raise invalid_path(f"unknown attribute {name!r} in path {text!r}")
    node: Node | None = None
    if tail.startswith("["):
        close = _closing_bracket(tail, 1)
        if close < 0:
            raise invalid_path(f"path {text!r} has a '[' without its closing ']'")
        if not attr.multi_valued:
            raise invalid_path(f"path {text!r} filters {attr.name}, which is not multi-valued")
        filter_text = tail[1:close].strip()
        if not filter_text:
            raise invalid_path(f"path {text!r} has an empty filter in [...]")
        node = parse_filter(filter_text)
        tail = tail[close + 1 :]
    sub: Attr | None = None
    if tail:
        sub_name = tail[1:].strip() if tail.startswith(".") else ""
        if not sub_name or "." in sub_name or "[" in sub_name or "]" in sub_name:
            raise invalid_path(f"path {text!r} is not of the form attr, attr.sub or attr[filter].sub")
        sub = attr.sub(sub_name)
        if sub is None:
            raise invalid_path(f"unknown sub-attribute {sub_name!r} of {attr.name!r} in path {text!r}")
    return _Target(text, schema, attr, node, sub)


def _read_only(target: _Target) -> str | None:
    """The name of the readOnly attribute (or extension) `target` writes, if it is one."""
    if target.attr is None:
        attrs = target.schema.attributes
        return target.schema.id if attrs and all(a.mutability == "readOnly" for a in attrs) else None
    if target.attr.mutability == "readOnly":
        return target.attr.name
    if target.sub is not None and target.sub.mutability == "readOnly":
        return target.label()
    return None


# ---------------------------------------------------------------------------------------------- values


def _unset(value: Any) -> bool:
    """RFC 7643 §2.5: null and an empty list mean "unassigned"."""
    return value is None or (isinstance(value, list) and not value)


def _delete(obj: dict[str, Any], name: str) -> None:
    for key in keys_named(obj, name):
        del obj[key]


def _put(obj: dict[str, Any], name: str, value: Any) -> None:
    """Set `name` (canonical) to `value`, dropping other spellings; unset, {} and [] delete it."""
    _delete(obj, name)
    if isinstance(value, list):
        value = [v for v in value if v != {}]
    if not _unset(value) and value != {}:
        obj[name] = value


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _element(attr: Attr, value: Any) -> Any:
    """One element of a multi-valued attribute: canonical sub-attribute names; unknown, readOnly and
    unset sub-attributes dropped."""
    if not isinstance(value, Mapping) or not attr.sub_attributes:
        return copy.deepcopy(value)
    result: dict[str, Any] = {}
    for key, sub_value in value.items():
        sub = attr.sub(key) if isinstance(key, str) else None
        if sub is None or sub.mutability == "readOnly" or _unset(sub_value):
            continue
        result[sub.name] = copy.deepcopy(sub_value)
    return result


def _merge(attr: Attr, target: dict[str, Any], value: Mapping[str, Any]) -> None:
    """Merge the sub-attributes in `value` into `target`; null or [] unassigns one."""
    for key, sub_value in value.items():
        sub = attr.sub(key) if isinstance(key, str) else None
        if sub is None or sub.mutability == "readOnly":
            continue
        _put(target, sub.name, copy.deepcopy(sub_value))


def _complex_from_scalar(attr: Attr, value: Any) -> Any:
    """Entra sets the manager with a bare id: a scalar for a complex attribute is its `value`."""
    value_sub = attr.sub("value")
    return {value_sub.name: copy.deepcopy(value)} if value_sub is not None else copy.deepcopy(value)


def _eq_element(node: Node, attr: Attr) -> dict[str, Any] | None:
    """The element a filter made only of `eq` comparisons joined by `and` describes; None otherwise."""
    if isinstance(node, Compare):
        if node.op != "eq" or node.value is None:
            return None
        name = node.attr
        if name.lower().startswith(attr.name.lower() + "."):
            name = name[len(attr.name) + 1 :]
        sub = attr.sub(name)
        return None if sub is None else {sub.name: node.value}
    if isinstance(node, And):
        left, right = _eq_element(node.left, attr), _eq_element(node.right, attr)
        if left is None or right is None or any(k in left and left[k] != v for k, v in right.items()):
            return None
        return {**left, **right}
    return None


def _demote_primary(attr: Attr, elements: list[Any], touched: list[Any]) -> None:
    """RFC 7644 §3.5.2: setting one value's primary to true sets it to false on the others."""
    primary = attr.sub("primary")
    if primary is None or not any(isinstance(e, dict) and _truthy(member(e, primary.name)) for e in touched):
        return
    touched_ids = {id(e) for e in touched}
    for element in elements:
        if (
            isinstance(element, dict)
            and id(element) not in touched_ids
            and _truthy(member(element, primary.name))
        ):
            _put(element, primary.name, False)


# ------------------------------------------------------------------------------------------- applying


class _Patcher:
    def __init__(self, resource: dict[str, Any], rtype: ResourceTypeDef) -> None:
        self.resource = resource
        self.rtype = rtype

    # containers

    def container(self, schema: SchemaDef, *, create: bool) -> dict[str, Any] | None:
        """The dict holding `schema`'s attributes: the resource itself, or its extension object."""
        if schema is self.rtype.core:
            return self.resource
        key = key_named(self.resource, schema.id)
        if key is not None and key != schema.id:
            self.resource[schema.id] = self.resource.pop(key)
        current = self.resource.get(schema.id)
        if isinstance(current, dict):
            return current
        if not create:
            return None
        self.resource[schema.id] = {}
        return self.resource[schema.id]

    def prune(self, schema: SchemaDef) -> None:
        if schema is not self.rtype.core and self.resource.get(schema.id) in ({}, None, []):
            self.resource.pop(schema.id, None)

    # entry points

    def apply(self, operation: PatchOperation) -> None:
        op = operation.op.lower()
        if op not in PATCH_OPS:
            raise invalid_syntax(f'op {operation.op!r} is not "add", "remove" or "replace"')
        if not operation.path:
            if op == "remove":
                raise no_target('a "remove" operation needs a "path" naming what to remove')
            self.apply_object(op, operation.value)
            return
        self.apply_target(op, _parse_target(operation.path, self.rtype), operation.value, lenient=False)

    def apply_object(self, op: str, value: Any) -> None:
        """add/replace with no path: each key of the value object is an attribute path."""
        if not isinstance(value, Mapping):
            raise invalid_syntax(
                f'an "{op}" operation without a "path" needs an object value such as {{"active": false}}, '
                f"got {shown(value)}"
            )
        for key, item in value.items():
            if not isinstance(key, str) or key.strip().lower() == "schemas":
                continue
            if key.strip().lower() == self.rtype.core.id.lower():
                if isinstance(item, Mapping):
                    self.apply_object(op, item)
                continue
            try:
                target = _parse_target(key, self.rtype)
            except ScimError as exc:
                if exc.scim_type in ("invalidPath", "invalidFilter"):
                    continue  # RFC 7644 §3.3: unknown attributes are ignored
                raise
            self.apply_target(op, target, item, lenient=True)

    def apply_target(self, op: str, target: _Target, value: Any, *, lenient: bool) -> None:
        read_only = _read_only(target)
        if read_only is not None:
            if lenient:
                return  # IdPs echo readOnly attributes back; RFC 7643 §7 says ignore them
            raise mutability(
                f"{read_only} is readOnly: the service provider sets it; leave it out of the PATCH"
            )
        if target.attr is None:
            self.apply_extension(op, target.schema, value)
            return
        container = self.container(target.schema, create=op != "remove")
        if container is not None:
            self.apply_attr(container, op, target, value)
        self.prune(target.schema)

    def apply_extension(self, op: str, schema: SchemaDef, value: Any) -> None:
        """A bare extension URN as the path (or key): remove it, or merge an object into it."""
        if op == "remove" or _unset(value):
            _delete(self.resource, schema.id)
            return
        if not isinstance(value, Mapping):
            raise invalid_syntax(f"{schema.id} must be given an object of its attributes, got {shown(value)}")
        for key, item in value.items():
            if not isinstance(key, str) or key.strip().lower() == "schemas":
                continue
            try:
                target = _parse_target(f"{schema.id}:{key}", self.rtype)
            except ScimError as exc:
                if exc.scim_type in ("invalidPath", "invalidFilter"):
                    continue
                raise
            self.apply_target(op, target, item, lenient=True)

    def apply_attr(self, container: dict[str, Any], op: str, target: _Target, value: Any) -> None:
        attr = target.attr
        assert attr is not None
        current = member(container, attr.name)
        if target.filter is not None:
            self.apply_filtered(container, op, target, value, current if isinstance(current, list) else [])
        elif target.sub is not None:
            self.apply_sub(container, op, attr, target.sub, value, current)
        elif op == "remove":
            self.remove_whole(container, attr, value, current)
        else:
            self.set_whole(container, op, attr, value, current)

    def remove_whole(self, container: dict[str, Any], attr: Attr, value: Any, current: Any) -> None:
        if value is None or not attr.multi_valued or not isinstance(current, list):
            _delete(container, attr.name)
            return
        # Entra: {"op": "Remove", "path": "members", "value": [{"value": "id1"}]} removes those members only.
        given = value if isinstance(value, list) else [value]
        value_attr = attr.sub("value")
        value_name = value_attr.name if value_attr is not None else "value"
        ids: set[str] = set()
        whole: list[Any] = []
        for item in given:
            if isinstance(item, Mapping):
                if key_named(item, value_name) is not None:
                    ids.add(str(member(item, value_name)))
                else:
                    whole.append(_element(attr, item))
            elif item is not None:
                ids.add(str(item))

        def doomed(element: Any) -> bool:
            if isinstance(element, Mapping):
                if key_named(element, value_name) is not None and str(member(element, value_name)) in ids:
                    return True
                return _element(attr, element) in whole
            return str(element) in ids

        _put(container, attr.name, [e for e in current if not doomed(e)])

    def set_whole(self, container: dict[str, Any], op: str, attr: Attr, value: Any, current: Any) -> None:
        if _unset(value):
            _delete(container, attr.name)
        elif attr.multi_valued:
            items = [_element(attr, v) for v in (value if isinstance(value, list) else [value])]
            items = [v for v in items if not _unset(v) and v != {}]
            elements: list[Any] = [] if op == "replace" or not isinstance(current, list) else current
            touched: list[Any] = []
            for item in items:
                if item not in elements:
                    elements.append(item)
                    touched.append(item)
            _demote_primary(attr, elements, touched)
            _put(container, attr.name, elements)
        elif attr.type == "complex":
            if isinstance(value, Mapping):
                obj = current if isinstance(current, dict) else {}
                _merge(attr, obj, value)
                _put(container, attr.name, obj)
            else:
                _put(container, attr.name, _complex_from_scalar(attr, value))
        else:
            _put(container, attr.name, copy.deepcopy(value))

    def apply_sub(
        self, container: dict[str, Any], op: str, attr: Attr, sub: Attr, value: Any, current: Any
    ) -> None:
        """`attr.sub` without a filter: on a multi-valued attribute it means every element."""
        if not attr.multi_valued:
            obj = current if isinstance(current, dict) else {}
            _put(obj, sub.name, None if op == "remove" else copy.deepcopy(value))
            _put(container, attr.name, obj)
            return
        elements = current if isinstance(current, list) else []
        dicts = [e for e in elements if isinstance(e, dict)]
        if op == "remove" or _unset(value):
            for element in dicts:
                _delete(element, sub.name)
        elif dicts:
            for element in dicts:
                _put(element, sub.name, copy.deepcopy(value))
            _demote_primary(attr, elements, dicts)
        else:
            elements = [*elements, {sub.name: copy.deepcopy(value)}]
        _put(container, attr.name, elements)

    def apply_filtered(
        self, container: dict[str, Any], op: str, target: _Target, value: Any, elements: list[Any]
    ) -> None:
        attr, sub, node = target.attr, target.sub, target.filter
        assert attr is not None and node is not None
        matched = [e for e in elements if isinstance(e, dict) and matches_element(node, e, attr)]
        touched: list[Any] = []
        if sub is not None:
            if op == "remove" or _unset(value):
                for element in matched:
                    _delete(element, sub.name)
            elif matched:
                for element in matched:
                    _put(element, sub.name, copy.deepcopy(value))
                touched = matched
            else:
                # Entra adds a new work email as `emails[type eq "work"].value`: create the element.
                base = _eq_element(node, attr)
                if base is None:
                    raise no_target(
                        f"no element of {attr.name} matches {target.text!r}, and the filter does not "
                        "describe one to create (only eq comparisons joined by and do)"
                    )
                created = {**base, sub.name: copy.deepcopy(value)}
                elements = [*elements, created]
                touched = [created]
        elif op == "remove" or _unset(value):
            elements = [e for e in elements if not any(e is m for m in matched)]
        elif matched:
            replaced: list[Any] = []
            for element in matched:
                if isinstance(value, Mapping):
                    _merge(attr, element, value)
                    replaced.append(element)
                else:
                    replaced.append(_element(attr, value))
            swap = {id(old): new for old, new in zip(matched, replaced, strict=True)}
            elements = [swap.get(id(e), e) for e in elements]
            touched = replaced
        else:
            base = _eq_element(node, attr) if op == "add" and isinstance(value, Mapping) else None
            if base is None:
                raise no_target(f"no element of {attr.name} matches {target.text!r}")
            created = {**base}
            _merge(attr, created, value)
            elements = [*elements, created]
            touched = [created]
        _demote_primary(attr, elements, touched)
        _put(container, attr.name, elements)


# ---------------------------------------------------------------------------------------- immutability


# By resource type, as _TARGETS (few types: never emptied).
_IMMUTABLES: dict[int, tuple[ResourceTypeDef, list[tuple[SchemaDef, Attr, Attr | None]]]] = {}


def _immutables(rtype: ResourceTypeDef) -> list[tuple[SchemaDef, Attr, Attr | None]]:
    entry = _IMMUTABLES.get(id(rtype))
    if entry is None:
        entry = _IMMUTABLES[id(rtype)] = (rtype, _find_immutables(rtype))
    return entry[1]


def _find_immutables(rtype: ResourceTypeDef) -> list[tuple[SchemaDef, Attr, Attr | None]]:
    found: list[tuple[SchemaDef, Attr, Attr | None]] = []
    for schema in rtype.schemas:
        for attr in schema.attributes:
            if attr.mutability == "immutable":
                found.append((schema, attr, None))
            elif not attr.multi_valued:
                found.extend(
                    (schema, attr, sub) for sub in attr.sub_attributes if sub.mutability == "immutable"
                )
    return found


def _immutable_values(
    resource: Mapping[str, Any], rtype: ResourceTypeDef, attrs: list[tuple[SchemaDef, Attr, Attr | None]]
) -> list[Any]:
    values = []
    for schema, attr, sub in attrs:
        container = resource if schema is rtype.core else member(resource, schema.id)
        value = member(container, attr.name) if isinstance(container, Mapping) else None
        if sub is not None:
            value = member(value, sub.name) if isinstance(value, Mapping) else None
        values.append(copy.deepcopy(value))
    return values


def _check_immutable(
    before: list[Any], after: list[Any], attrs: list[tuple[SchemaDef, Attr, Attr | None]]
) -> None:
    for old, new, (_, attr, sub) in zip(before, after, attrs, strict=True):
        if old is None or old == new:
            continue
        if sub is None and attr.multi_valued and isinstance(old, list) and isinstance(new, list):
            if all(element in new for element in old):
                continue  # adding values to an immutable multi-valued attribute is allowed
        name = attr.name if sub is None else f"{attr.name}.{sub.name}"
        raise mutability(f"{name} is immutable: it cannot be changed once set (it is {old!r})")


# --------------------------------------------------------------------------------------------- public


def apply_patch(
    resource: Mapping[str, Any], operations: Sequence[PatchOperation], rtype: ResourceTypeDef
) -> dict[str, Any]:
    """`resource` with `operations` applied in order (RFC 7644 §3.5.2), as a new dict; the input is untouched.

    Raises ScimError: invalidPath, invalidFilter, noTarget, mutability, invalidSyntax (400), or 413 for
    more than MAX_OPERATIONS operations. The detail names the failing operation's index.
    """
    if len(operations) > MAX_OPERATIONS:
        raise _too_many(len(operations))
    patcher = _Patcher(copy.deepcopy(dict(resource)), rtype)
    immutables = _immutables(rtype)
    for index, operation in enumerate(operations):
        before = _immutable_values(patcher.resource, rtype, immutables) if immutables else []
        try:
            patcher.apply(operation)
            if immutables:
                _check_immutable(before, _immutable_values(patcher.resource, rtype, immutables), immutables)
        except ScimError as exc:
            where = f"Operations[{index}] ({operation.op}{' ' + operation.path if operation.path else ''})"
            raise ScimError(exc.status, f"{where}: {exc.detail}", exc.scim_type) from None
    return patcher.resource


@dataclass(frozen=True)
class PatchPath:
    """A PATCH path resolved against a resource type: `attr` (None for a bare extension URN),
    the `filter` of `attr[filter]` and the sub-attribute of `attr.sub` / `attr[filter].sub`."""

    schema: SchemaDef
    attr: Attr | None
    filter: Node | None
    sub: Attr | None


def resolve_path(path: str, rtype: ResourceTypeDef) -> PatchPath:
    """Parse and resolve a PATCH path as apply_patch does; raises invalidPath / invalidFilter (400)."""
    target = _parse_target(path, rtype)
    return PatchPath(target.schema, target.attr, target.filter, target.sub)
