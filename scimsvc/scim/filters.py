"""RFC 7644 §3.4.2.2 filters: parse them, compile them to PostgreSQL, evaluate them in memory.

`parse_filter` turns the text into `filter_ast` nodes and checks only syntax. `compile_filter` (SQL) and
`matches` / `matches_element` (Python) resolve the names against the catalog and apply one set of rules,
kept in `_check` / `_evaluate` / `_SqlCompiler.check`, so that a filter selects the same resources in the
database as in memory:

* strings compare case-insensitively unless the attribute is caseExact; co/sw/ew are substring tests;
  gt/ge/lt/le compare code points (`COLLATE "C"` in SQL);
* booleans take eq/ne with true/false; dateTimes take ISO 8601 strings and compare as instants; the `id`
  compares as a UUID (an invalid UUID equals nothing);
* a comparison on an absent attribute is false, except `ne`, which is true; `eq null` means "not
  present", `ne null` "present"; an empty string is not present (RFC 7644: "a non-empty value");
* a multi-valued attribute matches when one of its elements does (`emails.value co "x"`,
  `emails[type eq "work"]`); `emails eq "x"` means `emails.value eq "x"`; `emails pr` means "has one".

The SQL never evaluates to NULL, so `not (...)` is the complement of `(...)`, as in memory.
"""

from __future__ import annotations

import json
import math
import operator
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from schemas.catalog import Attr, AttrPath, ResourceTypeDef
from scimsvc.scim.errors import ScimError, invalid_filter
from scimsvc.scim.filter_ast import COMPARE_OPS, And, Compare, Node, Not, Or, Present, Value, ValuePath

MAX_LENGTH = 10_000
MAX_DEPTH = 50


def _q(text: str) -> str:
    """`text` quoted for an error message, shortened if long."""
    return json.dumps(text if len(text) <= 60 else text[:60] + "…", ensure_ascii=False)


# --- Tokenizer ---------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s*")
_WORD = re.compile(r"[A-Za-z0-9_:.$+-]+")  # attribute paths, operators, keywords, numbers
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_ATTR_PATH = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9._:-]*:)?[A-Za-z$][A-Za-z0-9_$-]*(?:\.[A-Za-z$][A-Za-z0-9_$-]*)?", re.ASCII
)
_JSON = json.JSONDecoder()  # decodes one JSON string token (escapes, \uXXXX)
_LITERALS: dict[str, Value] = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "[" "]" "word" "string" "end"
    text: str
    pos: int
    value: str = ""  # the decoded string of a "string" token

    def describe(self) -> str:
        return "the end of the filter" if self.kind == "end" else _q(self.text)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        match = _SPACE.match(text, pos)
        pos = match.end() if match else pos
        if pos >= len(text):
            tokens.append(_Token("end", "", len(text)))
            return tokens
        char = text[pos]
        if char in "()[]":
            tokens.append(_Token(char, char, pos))
            pos += 1
        elif char == '"':
            try:
                value, end = _JSON.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                reason = exc.msg.removesuffix(" at").removesuffix(" starting").lower()
                raise invalid_filter(f"invalid string at position {exc.pos}: {reason}") from None
            if any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in value):
                raise invalid_filter(f"the string at position {pos} contains a NUL or an unpaired surrogate")
            tokens.append(_Token("string", text[pos:end], pos, value))
            pos = end
        else:
            word = _WORD.match(text, pos)
            if word is None:
                raise invalid_filter(f"unexpected character {_q(char)} at position {pos}")
            tokens.append(_Token("word", word.group(), pos))
            pos = word.end()


# --- Parser ------------------------------------------------------------------------------------------


def parse_filter(text: str) -> Node:
    """Parse an RFC 7644 §3.4.2.2 filter; raises invalid_filter (400) with the position of the problem.

    Precedence is not > and > or; chains of one operator become balanced trees so that no later walk
    recurses deeply. Attribute names are not checked here (compile_filter and matches do that).
    """
    if len(text) > MAX_LENGTH:
        raise invalid_filter(f"the filter is longer than {MAX_LENGTH} characters")
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() == word

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise invalid_filter("the filter is empty")
        node = self.disjunction(inner=False)
        token = self.peek()
        if token.kind != "end":
            raise invalid_filter(
                f'unexpected {token.describe()} at position {token.pos}; expected "and", "or" or the end'
            )
        return node

    def disjunction(self, *, inner: bool) -> Node:
        terms = [self.conjunction(inner=inner)]
        while self.at_keyword("or"):
            self.take()
            terms.append(self.conjunction(inner=inner))
        return _balanced(Or, terms)

    def conjunction(self, *, inner: bool) -> Node:
        terms = [self.term(inner=inner)]
        while self.at_keyword("and"):
            self.take()
            terms.append(self.term(inner=inner))
        return _balanced(And, terms)

    def term(self, *, inner: bool) -> Node:
        if self.peek().kind == "(":
            return self.group(inner=inner)
        if self.at_keyword("not"):
            self.take()
            if self.peek().kind != "(":
                token = self.peek()
                raise invalid_filter(
                    f'expected "(" after "not" at position {token.pos}, found {token.describe()}'
                )
            return Not(self.group(inner=inner))
        return self.attribute_expression(inner=inner)

    def group(self, *, inner: bool) -> Node:
        opening = self.open()
        node = self.disjunction(inner=inner)
        self.close(")", opening)
        return node

    def open(self) -> _Token:
        token = self.take()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise invalid_filter(f"the filter nests deeper than {MAX_DEPTH} levels (at position {token.pos})")
        return token

    def close(self, kind: str, opening: _Token) -> None:
        token = self.take()
        if token.kind != kind:
            raise invalid_filter(
                f'expected "{kind}" at position {token.pos} to close "{opening.text}" at position '
                f"{opening.pos}, found {token.describe()}"
            )
        self.depth -= 1

    def attribute_expression(self, *, inner: bool) -> Node:
        token = self.take()
        if token.kind != "word":
            raise invalid_filter(
                f"expected an attribute name at position {token.pos}, found {token.describe()}"
            )
        if not _ATTR_PATH.fullmatch(token.text):
            raise invalid_filter(f"{_q(token.text)} at position {token.pos} is not an attribute name")
        path = token.text
        following = self.peek()
        if following.kind == "[":
            if inner:
                raise invalid_filter(f'value filters cannot be nested: "[" at position {following.pos}')
            opening = self.open()
            node = self.disjunction(inner=True)
            self.close("]", opening)
            return ValuePath(path, node)
        if following.kind != "word":
            raise invalid_filter(
                f"expected an operator after {_q(path)} at position {following.pos}, "
                f"found {following.describe()}"
            )
        self.take()
        op = following.text.lower()
        if op == "pr":
            return Present(path)
        if op not in COMPARE_OPS:
            raise invalid_filter(
                f"unknown operator {_q(following.text)} at position {following.pos}; "
                "use eq, ne, co, sw, ew, gt, ge, lt, le or pr"
            )
        return Compare(path, op, self.value(following))

    def value(self, op: _Token) -> Value:
        token = self.take()
        if token.kind == "string":
            return token.value
        if token.kind == "word":
            if token.text.lower() in _LITERALS:
                return _LITERALS[token.text.lower()]
            number = _NUMBER.fullmatch(token.text)
            if number is not None:
                return _number(token, is_int=number.group(1) is None and number.group(2) is None)
            raise invalid_filter(
                f"expected a value after {_q(op.text)} at position {token.pos}, found {token.describe()} "
                "(strings go in double quotes)"
            )
        raise invalid_filter(
            f"expected a value after {_q(op.text)} at position {token.pos}, found {token.describe()}"
        )


def _number(token: _Token, *, is_int: bool) -> int | float:
    """An int of any size Python converts (4,300 digits), or a finite float; else out of range (400)."""
    try:
        value: int | float = int(token.text) if is_int else float(token.text)
    except ValueError:  # more digits than int() converts
        value = math.inf
    # math.isfinite(int) converts to float and raises OverflowError past 1e308: ints are always finite.
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid_filter(f"the number at position {token.pos} is out of range")
    return value


def _balanced(cls: type[And] | type[Or], terms: list[Node]) -> Node:
    """`a op b op c ...` as a tree of depth log2(n) (left-associative for up to three terms)."""
    if len(terms) == 1:
        return terms[0]
    middle = (len(terms) + 1) // 2
    return cls(_balanced(cls, terms[:middle]), _balanced(cls, terms[middle:]))


# --- The rules both backends share ------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A real SQL column (or parenthesized expression) standing for an attribute in compile_filter.

    `type` is "string", "boolean", "dateTime" or "uuid"; `case_exact` None takes the catalog's.
    """

    sql: str
    type: str
    nullable: bool = True
    case_exact: bool | None = None


@dataclass(frozen=True)
class Rows:
    """A multi-valued attribute kept in rows of its own table instead of the JSONB resource.

    `source` is a FROM clause ending in a WHERE condition that selects the current resource's elements
    (e.g. `group_members gm ... WHERE gm.group_id = g.id`); `columns` maps lower-cased sub-attribute
    names to expressions over it. A filter on the attribute becomes `EXISTS (SELECT 1 FROM source AND
    ...)`; a sub-attribute with no column cannot be filtered on.
    """

    source: str
    columns: Mapping[str, Column]


@dataclass(frozen=True)
class _Op:
    sql: str  # the SQL operator
    test: Callable[[Any, Any], bool]  # the same comparison in Python
    pattern: str = ""  # co/sw/ew: the LIKE pattern around the escaped value
    ordering: bool = False  # gt/ge/lt/le


_OPS: dict[str, _Op] = {
    "eq": _Op("=", operator.eq),
    "ne": _Op("<>", operator.ne),
    "co": _Op("LIKE", lambda a, b: b in a, "%{}%"),
    "sw": _Op("LIKE", lambda a, b: a.startswith(b), "{}%"),
    "ew": _Op("LIKE", lambda a, b: a.endswith(b), "%{}"),
    "gt": _Op(">", operator.gt, ordering=True),
    "ge": _Op(">=", operator.ge, ordering=True),
    "lt": _Op("<", operator.lt, ordering=True),
    "le": _Op("<=", operator.le, ordering=True),
}
_ORDERED = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_KIND_OPS: dict[str, frozenset[str]] = {
    "string": frozenset(_OPS),
    "uuid": frozenset(_OPS),
    "boolean": frozenset({"eq", "ne"}),
    "dateTime": _ORDERED,
    "number": _ORDERED,
}
_KINDS = dict(boolean="boolean", dateTime="dateTime", integer="number", decimal="number", uuid="uuid")
_ID_COLUMN = Column("", "uuid", nullable=False)  # how `matches` treats `id`: as the store's uuid column


@dataclass(frozen=True)
class _Leaf:
    """A single value a filter tests: its name (for messages), kind and case rule."""

    name: str
    kind: str  # string boolean dateTime number uuid
    case_exact: bool


def _leaf(name: str, attr: Attr, column: Column | None = None) -> _Leaf:
    kind = _KINDS.get(column.type if column else attr.type, "string")
    if column is not None and column.case_exact is not None:
        return _Leaf(name, kind, column.case_exact)
    return _Leaf(name, kind, attr.case_exact or kind == "uuid")


@dataclass(frozen=True)
class _Check:
    """A validated test of one value: "pr", "absent" (`eq null`) or a comparison with a typed operand."""

    leaf: _Leaf
    op: str
    operand: Any = None


def _normalize(op: str, value: Value) -> str:
    """`pr` stays; `eq null` is "absent", `ne null` is "pr"; other comparisons with null are errors."""
    if op == "pr" or value is not None:
        return op
    if op in ("eq", "ne"):
        return "absent" if op == "eq" else "pr"
    raise invalid_filter(f'"{op} null" is not allowed; only "eq null" and "ne null" test for a missing value')


def _check(leaf: _Leaf, op: str, value: Value) -> _Check:
    """The test `leaf op value` (op already normalized); raises invalid_filter if it makes no sense."""
    if op in ("pr", "absent"):
        return _Check(leaf, op)
    kind = leaf.kind
    if op not in _KIND_OPS[kind]:
        allowed = ", ".join(o for o in _OPS if o in _KIND_OPS[kind])
        raise invalid_filter(
            f'"{op}" cannot be used on the {kind} attribute {_q(leaf.name)}; use {allowed} or pr'
        )
    if kind == "boolean":
        flag = _as_bool(value)
        if flag is None:
            raise invalid_filter(
                f"{_q(leaf.name)} is a boolean: compare it with true or false, not {_show(value)}"
            )
        return _Check(leaf, op, flag)
    if kind == "dateTime":
        instant = _as_datetime(value) if isinstance(value, str) else None
        if instant is None:
            raise invalid_filter(
                f"{_q(leaf.name)} is a dateTime: compare it with an ISO 8601 string such as "
                f'"2024-01-31T12:00:00Z", not {_show(value)}'
            )
        if not _utc_representable(instant):
            raise invalid_filter(
                f"{_show(value)} compared with {_q(leaf.name)} is out of range: a dateTime in a filter must "
                "fall, in UTC, between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"
            )
        return _Check(leaf, op, instant)
    if kind == "number":
        number = _as_number(value)
        if number is None:
            raise invalid_filter(f"{_q(leaf.name)} is a number: compare it with a number, not {_show(value)}")
        if not _numeric_representable(number):
            raise invalid_filter(
                f"{_show(value)} compared with {_q(leaf.name)} is out of range: a number in a filter has at "
                f"most {_NUMERIC_INTEGER_DIGITS} digits before the decimal point and "
                f"{_NUMERIC_FRACTION_DIGITS} after"
            )
        return _Check(leaf, op, number)
    text = _text(value)
    if kind == "uuid" and op in ("eq", "ne"):
        return _Check(leaf, op, (text, _as_uuid(text)))
    return _Check(leaf, op, text)


def _show(value: Value) -> str:
    return _q(value) if isinstance(value, str) else json.dumps(value)


def _text(value: Any) -> str:
    """A value compared as a string: numbers and booleans by their JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _as_datetime(value: Any) -> datetime | None:
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


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
        return number if number.is_finite() else None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
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
    assert isinstance(exponent, int)  # finite: _as_number refuses NaN and infinities
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


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _like_pattern(op: _Op, text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return op.pattern.format(escaped)


def _present(leaf: _Leaf, raw: Any) -> bool:
    return raw is not None and not (leaf.kind == "string" and raw == "")


def _evaluate(check: _Check, raw: Any) -> bool:
    """`check` on a value from a resource (None when absent): the Python twin of `_SqlCompiler.check`."""
    leaf, op = check.leaf, check.op
    if op in ("pr", "absent"):
        return _present(leaf, raw) == (op == "pr")
    stored = _stored(leaf, raw)
    if leaf.kind == "uuid" and op in ("eq", "ne"):
        text, parsed = check.operand
        mine = _as_uuid(stored) if stored is not None else None
        same = stored is not None and (
            mine == parsed if mine is not None and parsed is not None else stored == text
        )
        return same == (op == "eq")
    if stored is None:
        return op == "ne"
    left, right = stored, check.operand
    if leaf.kind == "string" and not leaf.case_exact:
        left, right = left.lower(), right.lower()
    return bool(_OPS[op].test(left, right))


def _stored(leaf: _Leaf, raw: Any) -> Any:
    """A resource's value as the type of `leaf` (None when absent or not of that type)."""
    if raw is None:
        return None
    if leaf.kind == "boolean":
        return _as_bool(raw)
    if leaf.kind == "dateTime":
        return _as_datetime(raw)
    if leaf.kind == "number":
        return _as_number(raw)
    text = _text(raw)
    parsed = _as_uuid(text) if leaf.kind == "uuid" else None
    return str(parsed) if parsed else text


# --- Name resolution, shared too ----------------------------------------------------------------------


def _resolve(rtype: ResourceTypeDef, name: str) -> AttrPath:
    path = rtype.resolve(name)
    if path is None:
        raise invalid_filter(f"unknown attribute {_q(name)} in filter")
    return path


def _resolve_sub(attr: Attr, name: str) -> Attr:
    sub = attr.sub(name) if "." not in name and ":" not in name else None
    if sub is None:
        raise invalid_filter(f"unknown sub-attribute {_q(name)} of {_q(attr.name)} in filter")
    return sub


def _needs_sub(path: AttrPath) -> ScimError:
    example = f"{path.attr.name}.{path.attr.sub_attributes[0].name}" if path.attr.sub_attributes else ""
    hint = f", e.g. {_q(example)}" if example else ""
    return invalid_filter(f"{_q(str(path))} is a complex attribute: name one of its sub-attributes{hint}")


def _element_leaf(path: AttrPath) -> tuple[Attr | None, _Leaf]:
    """What a comparison on a multi-valued attribute tests in each element, and by which rules: the named
    sub-attribute, `value` when the attribute is complex and none is named, or the element itself."""
    attr, sub = path.attr, path.sub
    if sub is None and attr.type == "complex":
        sub = attr.sub("value")
        if sub is None:
            raise _needs_sub(path)
    if sub is None:
        return None, _leaf(str(path), attr)
    return sub, _leaf(f"{AttrPath(path.schema, attr)}.{sub.name}", sub)


def _value_path(rtype: ResourceTypeDef, node: ValuePath, in_scope: bool) -> AttrPath:
    if in_scope:
        raise invalid_filter(f"value filters cannot be nested: {_q(node.attr)}[...]")
    path = _resolve(rtype, node.attr)
    if path.sub is not None or path.attr.type != "complex":
        raise invalid_filter(f"{_q(node.attr)}[...]: a value filter needs a complex attribute")
    return path


def _node_parts(node: Compare | Present) -> tuple[str, Value]:
    return ("pr", None) if isinstance(node, Present) else (node.op, node.value)


# --- SQL ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queryable:
    """How one resource type is filtered and sorted in SQL: its columns, its JSONB column, its side
    tables and the order that keeps paging deterministic."""

    rtype: ResourceTypeDef
    columns: Mapping[str, Column]
    resource_column: str
    stable_order: str
    rows: Mapping[str, Rows] | None = None
    element_indexes: Mapping[str, str] | None = None


def where_sql(filter_text: str | None, target: Queryable, params: list[Any]) -> str:
    """The WHERE condition for a filter on `target` (TRUE when there is none); values go to `params`."""
    if filter_text is None or not filter_text.strip():
        return "TRUE"
    return compile_filter(
        parse_filter(filter_text),
        target.rtype,
        columns=target.columns,
        resource_column=target.resource_column,
        params=params,
        rows=target.rows,
        element_indexes=target.element_indexes,
    )


def compile_filter(
    node: Node,
    rtype: ResourceTypeDef,
    *,
    columns: Mapping[str, Column],
    resource_column: str,
    params: list[Any],
    rows: Mapping[str, Rows] | None = None,
    element_indexes: Mapping[str, str] | None = None,
) -> str:
    """A PostgreSQL boolean expression (never NULL) selecting the resources `node` matches.

    `element_indexes` maps lower-cased sub-attribute paths of multi-valued attributes ("emails.value") to
    an indexed jsonb array of their lower-cased values; a case-insensitive `eq` on one is narrowed by it.

    Filter values are appended to `params` and referenced as `$N`; the SQL text holds only catalog names.
    `columns` maps lower-cased canonical paths ("username", "meta.created") to real columns; `rows` maps
    lower-cased multi-valued attributes ("members") kept in a table of their own; any other attribute is
    read from the JSONB `resource_column`.
    """
    compiler = _SqlCompiler(rtype, columns, resource_column, params, rows or {})
    compiler.element_indexes = element_indexes or {}
    return compiler.node(node, None)


@dataclass(frozen=True)
class _Target:
    """Where a value is in SQL: a column, or JSONB text (`->>`) that needs a cast for non-strings."""

    expr: str
    nullable: bool
    json_text: bool


@dataclass(frozen=True)
class _SqlScope:
    path: AttrPath  # the attribute of `attr[...]`
    alias: str  # the element row's alias when the attribute is multi-valued, else ""
    rows: Rows | None = None  # set when the elements are rows of their own table


_CASTS = {"boolean": "boolean", "dateTime": "timestamptz", "number": "numeric"}


def _lit(name: str) -> str:
    """A catalog name (never user input) as an SQL string literal."""
    return "'" + name.replace("'", "''") + "'"


class _SqlCompiler:
    def __init__(
        self,
        rtype: ResourceTypeDef,
        columns: Mapping[str, Column],
        resource_column: str,
        params: list[Any],
        rows: Mapping[str, Rows],
    ) -> None:
        self.rtype = rtype
        self.columns = columns
        self.resource = resource_column
        self.params = params
        self.rows = rows
        self.aliases = 0
        self.element_indexes: Mapping[str, str] = {}

    def node(self, node: Node, scope: _SqlScope | None) -> str:
        if isinstance(node, And):
            return f"({self.node(node.left, scope)} AND {self.node(node.right, scope)})"
        if isinstance(node, Or):
            return f"({self.node(node.left, scope)} OR {self.node(node.right, scope)})"
        if isinstance(node, Not):
            return f"NOT ({self.node(node.expr, scope)})"
        if isinstance(node, ValuePath):
            path = _value_path(self.rtype, node, scope is not None)
            rows = self.rows_of(path)
            if rows is not None:
                return self.exists_row(rows, self.node(node.filter, _SqlScope(path, "", rows)))
            if not path.attr.multi_valued:
                return self.node(node.filter, _SqlScope(path, ""))
            alias = self.alias()
            return self.exists(
                self.json(path, text=False), alias, self.node(node.filter, _SqlScope(path, alias))
            )
        op, value = _node_parts(node)
        return self.term(node.attr, _normalize(op, value), value, scope)

    def term(self, name: str, op: str, value: Value, scope: _SqlScope | None) -> str:
        if scope is None:
            path = _resolve(self.rtype, name)
        else:
            sub = _resolve_sub(scope.path.attr, name)
            if scope.rows is not None:
                label = f"{scope.path}.{sub.name}"
                row_col = self.row_column(scope.rows, label, sub)
                check = _check(_leaf(label, sub, row_col), op, value)
                return self.check(check, _Target(row_col.sql, row_col.nullable, json_text=False))
            if scope.alias:
                check = _check(_leaf(f"{scope.path}.{sub.name}", sub), op, value)
                return self.check(check, self.element(scope.alias, sub))
            path = AttrPath(scope.path.schema, scope.path.attr, sub)
        attr = path.attr
        rows = self.rows_of(path)
        if rows is not None:
            return self.row_term(rows, path, op, value)
        if attr.multi_valued:
            array = self.json(AttrPath(path.schema, attr), text=False)
            if path.sub is None and op in ("pr", "absent"):
                length = f"jsonb_array_length({array}) > 0"
                nonempty = f"CASE jsonb_typeof({array}) WHEN 'array' THEN {length} ELSE FALSE END"
                return nonempty if op == "pr" else f"NOT ({nonempty})"
            element, leaf = _element_leaf(path)
            check = _check(leaf, "pr" if op == "absent" else op, value)
            alias = self.alias()
            found = self.exists(array, alias, self.check(check, self.element(alias, element)))
            index = self.element_indexes.get(
                f"{AttrPath(path.schema, attr)}.{element.name if element else ''}".lower()
            )
            if index is not None and op == "eq" and leaf.kind == "string" and not leaf.case_exact:
                # Narrow with the index first; the EXISTS keeps the exact rule (same answer, indexed).
                return f"({index} @> jsonb_build_array(lower({self.param(check.operand)}::text)) AND {found})"
            return f"NOT ({found})" if op == "absent" else found
        if attr.type == "complex" and path.sub is None:
            if op not in ("pr", "absent"):
                raise _needs_sub(path)
            parts = [self.term(s.name, "pr", None, _SqlScope(path, "")) for s in attr.sub_attributes] or [
                "FALSE"
            ]
            present = "(" + " OR ".join(parts) + ")"
            return present if op == "pr" else f"NOT {present}"
        column = self.columns.get(str(path).lower())
        check = _check(_leaf(str(path), path.target, column), op, value)
        if column is not None:
            return self.check(check, _Target(column.sql, column.nullable, json_text=False))
        return self.check(check, _Target(self.json(path, text=True), nullable=True, json_text=True))

    def rows_of(self, path: AttrPath) -> Rows | None:
        if not path.attr.multi_valued:
            return None
        return self.rows.get(str(AttrPath(path.schema, path.attr)).lower())

    @staticmethod
    def row_column(rows: Rows, label: str, sub: Attr) -> Column:
        column = rows.columns.get(sub.name.lower())
        if column is None:
            raise invalid_filter(f"{_q(label)} cannot be used in a filter here")
        return column

    def row_term(self, rows: Rows, path: AttrPath, op: str, value: Value) -> str:
        """A test on a multi-valued attribute kept in rows: some row passes (`pr`: there is a row)."""
        if path.sub is None and op in ("pr", "absent"):
            found = self.exists_row(rows, "TRUE")
            return found if op == "pr" else f"NOT ({found})"
        element, leaf = _element_leaf(path)
        if element is None:
            raise _needs_sub(path)
        column = self.row_column(rows, leaf.name, element)
        check = _check(_leaf(leaf.name, element, column), "pr" if op == "absent" else op, value)
        condition = self.check(check, _Target(column.sql, column.nullable, json_text=False))
        found = self.exists_row(rows, condition)
        return f"NOT ({found})" if op == "absent" else found

    def check(self, check: _Check, target: _Target) -> str:
        """`check` in SQL: the twin of `_evaluate`."""
        leaf, op, expr = check.leaf, check.op, target.expr
        if op in ("pr", "absent"):
            if leaf.kind == "string":
                present = f"({expr} IS NOT NULL AND {expr} <> '')" if target.nullable else f"{expr} <> ''"
            else:
                present = f"{expr} IS NOT NULL" if target.nullable else "TRUE"
            return present if op == "pr" else f"NOT ({present})"
        spec = _OPS[op]
        if leaf.kind == "uuid" and op in ("eq", "ne"):
            parsed = check.operand[1]
            if parsed is None:
                return "FALSE" if op == "eq" else "TRUE"
            comparison = f"{expr} {spec.sql} {self.param(parsed)}::uuid"
        else:
            left = f"({expr})::text" if leaf.kind == "uuid" else expr
            if target.json_text and leaf.kind in _CASTS:
                left = f"({expr})::{_CASTS[leaf.kind]}"
            right = self.param(_like_pattern(spec, check.operand) if spec.pattern else check.operand)
            if leaf.kind == "string" and not leaf.case_exact:
                left, right = f"lower({left})", f"lower({right})"
            if spec.ordering and leaf.kind in ("string", "uuid"):
                right += ' COLLATE "C"'
            if spec.pattern:
                right += " ESCAPE '\\'"
            comparison = f"{left} {spec.sql} {right}"
        if not target.nullable:
            return comparison
        if op == "ne":
            return f"({expr} IS NULL OR {comparison})"
        return f"({expr} IS NOT NULL AND {comparison})"

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def alias(self) -> str:
        self.aliases += 1
        return f"e{self.aliases}"

    def json(self, path: AttrPath, *, text: bool) -> str:
        keys = [path.schema.id] if path.is_extension else []
        keys += [path.attr.name] + ([path.sub.name] if path.sub else [])
        expr = self.resource + "".join(f"->{_lit(key)}" for key in keys[:-1])
        return f"{expr}{'->>' if text else '->'}{_lit(keys[-1])}"

    @staticmethod
    def element(alias: str, sub: Attr | None) -> _Target:
        expr = f"{alias}.v->>{_lit(sub.name)}" if sub else f"({alias}.v #>> '{{}}')"
        return _Target(expr, nullable=True, json_text=True)

    @staticmethod
    def exists_row(rows: Rows, condition: str) -> str:
        return f"EXISTS (SELECT 1 FROM {rows.source} AND {condition})"  # noqa: S608

    @staticmethod
    def exists(array: str, alias: str, condition: str) -> str:
        elements = f"CASE jsonb_typeof({array}) WHEN 'array' THEN {array} ELSE '[]'::jsonb END"
        return f"EXISTS (SELECT 1 FROM jsonb_array_elements({elements}) AS {alias}(v) WHERE {condition})"  # noqa: S608


# --- In memory ---------------------------------------------------------------------------------------

_Pred = Callable[[Any], bool]


def matches(node: Node, resource: Mapping[str, Any], rtype: ResourceTypeDef) -> bool:
    """Whether a rendered resource (canonical keys, `id`, `meta`, extensions under their URN) matches
    `node`, by the same rules as compile_filter; raises the same invalid_filter errors, whatever the data."""
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
                raise invalid_filter(f"value filters cannot be nested: {_q(node.attr)}[...]")
            path = _value_path(self.rtype, node, False)
            element = self.node(node.filter, _PyScope(path.attr, str(path)))
            get = _getter(path)
            if path.attr.multi_valued:
                return lambda r: any(element(item) for item in _items(get(r)))
            return lambda r: element(get(r))
        op, value = _node_parts(node)
        return self.term(node.attr, _normalize(op, value), value, scope)

    def term(self, name: str, op: str, value: Value, scope: _PyScope | None) -> _Pred:
        if scope is not None:
            sub = _resolve_sub(scope.attr, name)
            check = _check(_leaf(f"{scope.label}.{sub.name}", sub), op, value)
            return lambda element: _evaluate(check, _get(element, sub.name))
        assert self.rtype is not None
        path = _resolve(self.rtype, name)
        attr, get = path.attr, _getter(path)
        if attr.multi_valued:
            if path.sub is None and op in ("pr", "absent"):
                return lambda r: bool(_items(get(r))) == (op == "pr")
            element, leaf = _element_leaf(path)
            check = _check(leaf, "pr" if op == "absent" else op, value)
            key = element.name if element else None

            def found(r: Any) -> bool:
                return any(_evaluate(check, _get(item, key) if key else item) for item in _items(get(r)))

            return (lambda r: not found(r)) if op == "absent" else found
        if attr.type == "complex" and path.sub is None:
            if op not in ("pr", "absent"):
                raise _needs_sub(path)
            checks = [(s.name, _check(_leaf(f"{path}.{s.name}", s), "pr", None)) for s in attr.sub_attributes]
            return lambda r: any(_evaluate(c, _get(get(r), key)) for key, c in checks) == (op == "pr")
        is_id = attr.common and attr.name == "id" and path.sub is None
        check = _check(_leaf(str(path), path.target, _ID_COLUMN if is_id else None), op, value)
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
