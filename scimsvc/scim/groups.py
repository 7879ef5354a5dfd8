"""SCIM rules for Group writes that need no I/O: validation, member lists, PATCH as member-set changes.

A group's members are rows, not part of its stored resource, and a group may have 50,000 of them, so a
PATCH is never applied to a materialized member list. `plan_group_patch` splits the operations: those on
`members` become a `MemberChange` (a whole new list, or ids to add and ids to remove) that the store
applies set-based; the others (displayName, externalId) go through `apply_patch` on the resource.

IdP shapes handled on purpose:
- Entra: `{"op": "Remove", "path": "members", "value": [{"value": id}, ...]}` removes those members only;
  `{"op": "Add", "path": "members", "value": [...]}`; op names in any case; several operations at once.
- RFC 7644 §3.5.2.2: `{"op": "remove", "path": "members[value eq \"id\"]"}`.
- Okta: a path-less `replace` with `{"id": ..., "displayName": ...}` with every membership update (the id
  is readOnly and ignored), and `{"op": "replace", "path": "members", "value": [all]}` to push a group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from marshmallow import ValidationError

from schemas.base import flatten_errors
from schemas.group import GROUP_RESOURCE, GROUP_SCHEMA, load_group
from scimsvc.scim.attribute_names import member
from scimsvc.scim.body_shape import check_schemas
from scimsvc.scim.errors import (
    Reason,
    ScimError,
    invalid_filter,
    invalid_path,
    invalid_syntax,
    invalid_value,
    shown,
)
from scimsvc.scim.filters.tree import Compare, Node, Or
from scimsvc.scim.patch import PatchOperation, apply_patch, resolve_path

_MEMBERS = "members"
_QUALIFIED_MEMBERS = f"{GROUP_RESOURCE.core.id}:{_MEMBERS}".lower()
_SHOWN = 5  # ids named in one error message


def _is_members_key(key: Any) -> bool:
    return isinstance(key, str) and key.strip().lower() in (_MEMBERS, _QUALIFIED_MEMBERS)


def _describe(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _canonical_id(value: str) -> str | None:
    """The id in canonical form (lower-case, hyphenated), None if it is not a UUID.

    Ids stay strings: a 50,000-member push must not pay for 50,000 UUID objects.
    """
    lowered = value.lower()
    if _CANONICAL_ID.fullmatch(lowered):
        return lowered
    try:
        return str(UUID(value))
    except ValueError:
        return None


# The keys of a member object as IdPs send it (RFC 7643 §4.2); `display` and `$ref` are ours to fill in.
_MEMBER_KEYS = frozenset({"value", "display", "type", "$ref"})
# Each byte of "<id>\n<id>..." mapped to its class: a lower-case hex digit to x, '-' and '\n' to
# themselves, any other byte (x included) to '?'. Canonical ids map to exactly _ID_SHAPE.
_ID_CLASSES = bytes(
    ord("x") if chr(b) in "0123456789abcdef" else b if chr(b) in "-\n" else ord("?") for b in range(256)
)
_ID_SHAPE = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"


def _plain_member_ids(items: list[Any]) -> list[str] | None:
    """The ids of a member list in the shape IdPs send, de-duplicated in order, or None for any other list.

    That shape: objects with only value/display/type/$ref keys, a canonical id as value and no type but
    User. A push may name 50,000 members, so this checks them in a few passes that run in C (a
    comprehension, `bytes.translate` over all ids at once) rather than a Python loop per member;
    `member_values` takes, and explains, everything else.
    """
    try:
        values = [item["value"] for item in items]
    except (TypeError, KeyError):  # a member that is not an object, or has no exact "value" key
        return None
    if sum(map(len, items)) != len(items):  # some member has more keys than "value"
        if not all(map(_MEMBER_KEYS.issuperset, items)):
            return None
        try:
            kinds = {item.get("type") for item in items}
        except TypeError:  # an unhashable type
            return None
        if any(isinstance(kind, str) and kind.lower() not in ("user", "") for kind in kinds):
            return None
    try:
        joined = "\n".join(values).encode("ascii")
    except (TypeError, UnicodeEncodeError):  # a value that is not a string, or not ASCII
        return None
    if joined.translate(_ID_CLASSES) != b"\n".join([_ID_SHAPE] * len(values)):
        return None
    return list(dict.fromkeys(values))


def member_values(raw: Any, *, where: str = "members") -> list[str]:
    """The user ids (canonical strings) of a `members` value (a list of `{"value": id}`, one such object,
    or bare ids), de-duplicated in order; 400 invalidValue naming every malformed id."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    plain = _plain_member_ids(items)
    return plain if plain is not None else _member_ids(items, where)


def _member_ids(items: list[Any], where: str) -> list[str]:
    """`member_values` one member at a time: any shape it accepts, and the error for any it does not."""
    ids: dict[str, None] = {}
    malformed: list[str] = []
    for index, item in enumerate(items):
        value: Any = item
        if isinstance(item, Mapping):
            kind = member(item, "type")
            if isinstance(kind, str) and kind.lower() not in ("user", ""):
                raise invalid_value(
                    f"{where}[{index}] has type {kind!r}: only users can be members (groups do not nest)"
                )
            value = member(item, "value")
            if value is None:
                raise invalid_value(f'{where}[{index}] has no "value": name the member by its User id')
        if not isinstance(value, str):
            raise invalid_value(
                f"{where}[{index}]: a member's value must be a User id string, got {shown(value)}"
            )
        canonical = _canonical_id(value)
        if canonical is None:
            malformed.append(value)
        else:
            ids[canonical] = None
    if malformed:
        verb = "is not a User id" if len(malformed) == 1 else "are not User ids"
        raise invalid_value(
            f"{where}: {_describe(malformed)} {verb} of this service (a User id is the `id` it returned "
            "when the user was created)"
        )
    return list(ids)


def unknown_members_error(ids: Sequence[UUID | str]) -> ScimError:
    """400 for member ids that are not SCIM-provisioned users of the tenant."""
    text = [str(i) for i in ids]
    return invalid_value(
        f"members: {_describe(text)} {'is' if len(text) == 1 else 'are'} not "
        f"{'a user' if len(text) == 1 else 'users'} of this organization: provision the user first "
        "(POST /Users), then add it to the group",
        reason=Reason.UNKNOWN_MEMBER,
    )


def validate_group(body: Any) -> tuple[dict[str, Any], list[str]]:
    """The stored resource of a Group body and its member ids, or a 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise invalid_value("the request body must be a JSON object describing a Group")
    check_schemas(body, GROUP_SCHEMA, "Group")
    members = next((v for k, v in body.items() if _is_members_key(k)), None)
    try:
        resource = load_group(body)
    except ValidationError as exc:
        raise invalid_value("invalid Group: " + "; ".join(flatten_errors(exc.messages))) from None
    return resource, member_values(members)


@dataclass(frozen=True)
class MemberChange:
    """What a PATCH does to the members: `replace` is the whole new list (a push) when it names one;
    otherwise `add` and `remove` are disjoint id sets applied to the current members."""

    replace: tuple[str, ...] | None = None
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def is_push(self) -> bool:
        return self.replace is not None

    @property
    def is_empty(self) -> bool:
        return self.replace is None and not self.add and not self.remove


class _MemberSets:
    """Folds member operations, in order, into a MemberChange without knowing the current members."""

    def __init__(self) -> None:
        self.replace: dict[str, None] | None = None
        self.add: dict[str, None] = {}
        self.remove: dict[str, None] = {}
        self.count = 0

    def do_add(self, ids: Iterable[str]) -> None:
        for i in ids:
            self.count += 1
            if self.replace is not None:
                self.replace[i] = None
            else:
                self.add[i] = None
                self.remove.pop(i, None)

    def do_remove(self, ids: Iterable[str]) -> None:
        for i in ids:
            self.count += 1
            if self.replace is not None:
                self.replace.pop(i, None)
            else:
                self.remove[i] = None
                self.add.pop(i, None)

    def do_replace(self, ids: Iterable[str]) -> None:
        self.replace = {}
        self.add, self.remove = {}, {}
        self.do_add(ids)

    def result(self) -> MemberChange:
        if self.replace is not None:
            return MemberChange(replace=tuple(self.replace))
        return MemberChange(add=tuple(self.add), remove=tuple(self.remove))


def _filter_ids(node: Node, text: str) -> list[str]:
    """The ids of `members[value eq "a" or value eq "b"]`; other member filters are refused."""
    if isinstance(node, Or):
        return _filter_ids(node.left, text) + _filter_ids(node.right, text)
    if (
        isinstance(node, Compare)
        and node.op == "eq"
        and node.attr.lower() in ("value", "members.value")
        and isinstance(node.value, str)
    ):
        return [node.value]
    raise invalid_filter(
        f'path {text!r}: a member filter can only name members by id, e.g. members[value eq "<user id>"] '
        '(several joined with "or")'
    )


def _too_many(count: int, limit: int) -> ScimError:
    return ScimError(
        413,
        f"this PATCH changes {count} members; a group PATCH may change at most {limit}. Split the change "
        "into several PATCH requests, or replace the whole member list with PUT /Groups/{id}",
    )


def plan_group_patch(
    resource: Mapping[str, Any], operations: Sequence[PatchOperation], *, max_member_ops: int
) -> tuple[dict[str, Any], MemberChange]:
    """The group's new stored resource and its member change, from PATCH operations applied in order.

    Raises ScimError 400 (naming the failing operation), or 413 past `max_member_ops` member values.
    """
    sets = _MemberSets()
    others: list[PatchOperation] = []
    for index, operation in enumerate(operations):
        try:
            _plan_one(operation, sets, others)
        except ScimError as exc:
            where = f"Operations[{index}] ({operation.op}{' ' + operation.path if operation.path else ''})"
            raise ScimError(exc.status, f"{where}: {exc.detail}", exc.scim_type) from None
        if sets.count > max_member_ops:
            raise _too_many(sets.count, max_member_ops)
    patched = apply_patch(resource, others, GROUP_RESOURCE) if others else dict(resource)
    try:
        new_resource = load_group(patched)
    except ValidationError as exc:
        raise invalid_value("invalid Group after PATCH: " + "; ".join(flatten_errors(exc.messages))) from None
    return new_resource, sets.result()


def _plan_one(operation: PatchOperation, sets: _MemberSets, others: list[PatchOperation]) -> None:
    op, path, value = operation.op, operation.path, operation.value
    if path is None:
        # add/replace with a value object: its `members` key is a member operation, the rest is not.
        if not isinstance(value, Mapping):
            raise invalid_syntax(
                f'an "{op}" operation without a "path" needs an object value such as '
                f'{{"displayName": "Sales"}}, got {shown(value)}'
            )
        rest = {k: v for k, v in value.items() if not _is_members_key(k)}
        for key, members in value.items():
            if _is_members_key(key):
                _members_op(op, members, sets)
        if rest:
            others.append(PatchOperation(op=op, path=None, value=rest))
        return
    target = resolve_path(path, GROUP_RESOURCE)
    if target.attr is None or target.attr.name != "members":
        others.append(operation)
        return
    if target.sub is not None:
        raise invalid_path(
            f'path {path!r}: change members as a whole, e.g. path "members" with a list of '
            '{"value": "<user id>"}, or remove one with members[value eq "<user id>"]'
        )
    if target.filter is None:
        if op == "remove" and value is None:
            sets.do_replace(())  # remove every member
        else:
            _members_op(op, value, sets)
        return
    named = member_values(_filter_ids(target.filter, path), where=f"path {path!r}")
    if op == "remove":
        sets.do_remove(named)
    elif op == "replace":
        sets.do_remove(named)
        sets.do_add(member_values(value, where="value"))
    else:
        sets.do_add(member_values(value, where="value") if value is not None else named)


def _members_op(op: str, value: Any, sets: _MemberSets) -> None:
    ids = member_values(value, where="value")
    if op == "add":
        sets.do_add(ids)
    elif op == "remove":
        sets.do_remove(ids)
    else:
        sets.do_replace(ids)
