"""What a filter comparison means: the one set of rules `sql` and `match` both apply.

Which operators each kind of value takes (string, boolean, dateTime, number, uuid) with each operator's
SQL and Python form side by side (`OPS`), how an operand is typed and range-checked (`make_check`, raising
invalid_filter), what `eq null`, `ne null` and `pr` mean (`normalize`), and the conversions (`as_bool`,
`as_datetime`, `as_number`, `as_uuid`, `as_text`) that read a value as a kind. It never resolves attribute
names (`names`), builds SQL text or walks a resource, and does no I/O.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from schemas.catalog import Attr
from scimsvc.scim.errors import invalid_filter
from scimsvc.scim.filters.parse import NUMBER, quote
from scimsvc.scim.filters.tree import Compare, Present, Value


@dataclass(frozen=True)
class Op:
    """One comparison operator, in SQL and in Python."""

    sql: str  # the SQL operator
    test: Callable[[Any, Any], bool]  # the same comparison in Python
    pattern: str = ""  # co/sw/ew: the LIKE pattern around the escaped value
    ordering: bool = False  # gt/ge/lt/le


OPS: dict[str, Op] = {
    "eq": Op("=", operator.eq),
    "ne": Op("<>", operator.ne),
    "co": Op("LIKE", lambda a, b: b in a, "%{}%"),
    "sw": Op("LIKE", lambda a, b: a.startswith(b), "{}%"),
    "ew": Op("LIKE", lambda a, b: a.endswith(b), "%{}"),
    "gt": Op(">", operator.gt, ordering=True),
    "ge": Op(">=", operator.ge, ordering=True),
    "lt": Op("<", operator.lt, ordering=True),
    "le": Op("<=", operator.le, ordering=True),
}
_ORDERED = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_KIND_OPS: dict[str, frozenset[str]] = {
    "string": frozenset(OPS),
    "uuid": frozenset(OPS),
    "boolean": frozenset({"eq", "ne"}),
    "dateTime": _ORDERED,
    "number": _ORDERED,
}
_KINDS = dict(boolean="boolean", dateTime="dateTime", integer="number", decimal="number", uuid="uuid")


@dataclass(frozen=True)
class Leaf:
    """A single value a filter tests: its name (for messages), kind and case rule."""

    name: str
    kind: str  # string boolean dateTime number uuid
    case_exact: bool


def leaf_of(name: str, attr: Attr, *, type_name: str | None = None, case_exact: bool | None = None) -> Leaf:
    """The value `attr` holds, tested by the rules of its type; `type_name` / `case_exact` override the
    catalog's (an SQL column of another type, the `id` compared as a UUID)."""
    kind = _KINDS.get(attr.type if type_name is None else type_name, "string")
    if case_exact is not None:
        return Leaf(name, kind, case_exact)
    return Leaf(name, kind, attr.case_exact or kind == "uuid")


@dataclass(frozen=True)
class Check:
    """A validated test of one value: "pr", "absent" (`eq null`) or a comparison with a typed operand."""

    leaf: Leaf
    op: str
    operand: Any = None


def normalize(op: str, value: Value) -> str:
    """`pr` stays; `eq null` is "absent", `ne null` is "pr"; other comparisons with null are errors."""
    if op == "pr" or value is not None:
        return op
    if op in ("eq", "ne"):
        return "absent" if op == "eq" else "pr"
    raise invalid_filter(f'"{op} null" is not allowed; only "eq null" and "ne null" test for a missing value')


def make_check(leaf: Leaf, op: str, value: Value) -> Check:
    """The test `leaf op value` (op already normalized); raises invalid_filter if it makes no sense."""
    if op in ("pr", "absent"):
        return Check(leaf, op)
    kind = leaf.kind
    if op not in _KIND_OPS[kind]:
        allowed = ", ".join(o for o in OPS if o in _KIND_OPS[kind])
        raise invalid_filter(
            f'"{op}" cannot be used on the {kind} attribute {quote(leaf.name)}; use {allowed} or pr'
        )
    if kind == "boolean":
        flag = as_bool(value)
        if flag is None:
            raise invalid_filter(
                f"{quote(leaf.name)} is a boolean: compare it with true or false, not {_show(value)}"
            )
        return Check(leaf, op, flag)
    if kind == "dateTime":
        instant = as_datetime(value) if isinstance(value, str) else None
        if instant is None:
            raise invalid_filter(
                f"{quote(leaf.name)} is a dateTime: compare it with an ISO 8601 string such as "
                f'"2024-01-31T12:00:00Z", not {_show(value)}'
            )
        if not _utc_representable(instant):
            raise invalid_filter(
                f"{_show(value)} compared with {quote(leaf.name)} is out of range: a dateTime in a filter "
                "must fall, in UTC, between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"
            )
        return Check(leaf, op, instant)
    if kind == "number":
        number = as_number(value)
        if number is None:
            raise invalid_filter(
                f"{quote(leaf.name)} is a number: compare it with a number, not {_show(value)}"
            )
        if not _numeric_representable(number):
            raise invalid_filter(
                f"{_show(value)} compared with {quote(leaf.name)} is out of range: a number in a filter has "
                f"at most {_NUMERIC_INTEGER_DIGITS} digits before the decimal point and "
                f"{_NUMERIC_FRACTION_DIGITS} after"
            )
        return Check(leaf, op, number)
    text = as_text(value)
    if kind == "uuid" and op in ("eq", "ne"):
        return Check(leaf, op, (text, as_uuid(text)))
    return Check(leaf, op, text)


def _show(value: Value) -> str:
    return quote(value) if isinstance(value, str) else json.dumps(value)


def as_text(value: Any) -> str:
    """A value compared as a string: numbers and booleans by their JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def as_bool(value: Any) -> bool | None:
    """A boolean from true/false (or their text, any case); None if not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def as_datetime(value: Any) -> datetime | None:
    """An aware datetime from an ISO 8601 string (`Z` allowed; naive means UTC); None if not one."""
    if isinstance(value, datetime):
        instant = value
    elif isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def as_number(value: Any) -> Decimal | None:
    """A finite Decimal from a number or a JSON number's text; None if not one (booleans are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
        return number if number.is_finite() else None
    if isinstance(value, str) and NUMBER.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


# What a PostgreSQL numeric parameter holds (asyncpg refuses, or worse wraps, anything past it).
_NUMERIC_INTEGER_DIGITS = 131_072
_NUMERIC_FRACTION_DIGITS = 16_383


def _numeric_representable(number: Decimal) -> bool:
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: as_number refuses NaN and infinities
    return number.adjusted() < _NUMERIC_INTEGER_DIGITS and exponent >= -_NUMERIC_FRACTION_DIGITS


def _utc_representable(instant: datetime) -> bool:
    """Whether `instant` in UTC is still a datetime (year 1..9999), as asyncpg must send it.

    A filter value such as "0001-01-01T00:00:00+01:00" is a valid ISO 8601 string whose UTC time is in
    year 0; it is refused (400) rather than clamped, so that a comparison always means what it says.
    """
    try:
        instant.astimezone(UTC)
    except OverflowError:
        return False
    return True


def as_uuid(value: str) -> uuid.UUID | None:
    """The UUID `value` spells; None if it spells none."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def node_parts(node: Compare | Present) -> tuple[str, Value]:
    """The operator and value of a comparison (`pr` and None for `attr pr`)."""
    return ("pr", None) if isinstance(node, Present) else (node.op, node.value)
