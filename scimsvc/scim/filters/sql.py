"""Filters compiled to PostgreSQL: a parameterised boolean fragment for a WHERE clause.

`Queryable` says how one resource type is stored (real `Column`s, a JSONB resource column, multi-valued
attributes kept as `Rows` of a side table, indexed element arrays); `where_sql` / `compile_filter` turn a
filter into SQL that never evaluates to NULL, applying `rules` and `names` exactly as `match` does. Filter
values only ever go to the parameter list as `$N`; the text holds catalog names alone. It never runs SQL
(the store does), and what a comparison means is decided in `rules`: `_SqlCompiler.check` only writes it
as SQL, the twin of `match._evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.catalog import Attr, AttrPath, ResourceTypeDef
from scimsvc.scim.errors import ScimError, invalid_filter
from scimsvc.scim.filters.names import element_leaf, needs_sub, resolve, resolve_sub, value_path
from scimsvc.scim.filters.parse import parse_filter, quote
from scimsvc.scim.filters.rules import OPS, Check, Leaf, Op, leaf_of, make_check, node_parts, normalize
from scimsvc.scim.filters.tree import And, Compare, Node, Not, Or, Value, ValuePath


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
    node = parse_filter(filter_text)
    if isinstance(node, Compare) and node.op == "eq" and isinstance(node.value, str) and node.value:
        template = _lookup_template(target, node.attr, len(params))
        if template is not None:
            params.append(node.value)
            return template
    return _compile(node, target, params)


def _compile(node: Node, target: Queryable, params: list[Any]) -> str:
    return compile_filter(
        node,
        target.rtype,
        columns=target.columns,
        resource_column=target.resource_column,
        params=params,
        rows=target.rows,
        element_indexes=target.element_indexes,
    )


# `attr eq "value"` (the lookup IdPs send before every write) on a single-valued string attribute compiles
# to one text whatever the non-empty value, which goes to `params` as it is: that text is kept per (target,
# attribute as written, first parameter's number). Kept only when two different values compile to the same
# text with themselves as the one parameter; anything else (ids, booleans, dates, multi-valued attributes,
# unknown names) is compiled every time. Bounded: attribute names come from requests.
_TEMPLATES: dict[tuple[int, str, int], tuple[Queryable, str | None]] = {}
_MAX_TEMPLATES = 256
_PROBES = ("probe", "another probe")


def _lookup_template(target: Queryable, attr: str, first: int) -> str | None:
    key = (id(target), attr, first)
    kept = _TEMPLATES.get(key)
    if kept is not None and kept[0] is target:
        return kept[1]
    texts = set()
    for probe in _PROBES:
        params: list[Any] = [None] * first
        try:
            texts.add(_compile(Compare(attr, "eq", probe), target, params))
        except ScimError:
            texts.clear()
            break
        if len(params) != first + 1 or params[first] is not probe:
            texts.clear()
            break
    template = texts.pop() if len(texts) == 1 else None
    if len(_TEMPLATES) >= _MAX_TEMPLATES:
        _TEMPLATES.clear()
    _TEMPLATES[key] = (target, template)
    return template


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


def _column_leaf(name: str, attr: Attr, column: Column | None) -> Leaf:
    """The leaf `attr` stands for, read from `column` when it has one (whose type and case rule win)."""
    if column is None:
        return leaf_of(name, attr)
    return leaf_of(name, attr, type_name=column.type, case_exact=column.case_exact)


def _lit(name: str) -> str:
    """A catalog name (never user input) as an SQL string literal."""
    return "'" + name.replace("'", "''") + "'"


class _SqlCompiler:
    """Builds the SQL of one filter, appending its values to `params`."""

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
            path = value_path(self.rtype, node, scope is not None)
            rows = self.rows_of(path)
            if rows is not None:
                return self.exists_row(rows, self.node(node.filter, _SqlScope(path, "", rows)))
            if not path.attr.multi_valued:
                return self.node(node.filter, _SqlScope(path, ""))
            alias = self.alias()
            return self.exists(
                self.json(path, text=False), alias, self.node(node.filter, _SqlScope(path, alias))
            )
        op, value = node_parts(node)
        return self.term(node.attr, normalize(op, value), value, scope)

    def term(self, name: str, op: str, value: Value, scope: _SqlScope | None) -> str:
        if scope is None:
            path = resolve(self.rtype, name)
        else:
            sub = resolve_sub(scope.path.attr, name)
            if scope.rows is not None:
                label = f"{scope.path}.{sub.name}"
                row_col = self.row_column(scope.rows, label, sub)
                check = make_check(_column_leaf(label, sub, row_col), op, value)
                return self.check(check, _Target(row_col.sql, row_col.nullable, json_text=False))
            if scope.alias:
                check = make_check(leaf_of(f"{scope.path}.{sub.name}", sub), op, value)
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
            element, leaf = element_leaf(path)
            check = make_check(leaf, "pr" if op == "absent" else op, value)
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
                raise needs_sub(path)
            parts = [self.term(s.name, "pr", None, _SqlScope(path, "")) for s in attr.sub_attributes] or [
                "FALSE"
            ]
            present = "(" + " OR ".join(parts) + ")"
            return present if op == "pr" else f"NOT {present}"
        column = self.columns.get(str(path).lower())
        check = make_check(_column_leaf(str(path), path.target, column), op, value)
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
            raise invalid_filter(f"{quote(label)} cannot be used in a filter here")
        return column

    def row_term(self, rows: Rows, path: AttrPath, op: str, value: Value) -> str:
        """A test on a multi-valued attribute kept in rows: some row passes (`pr`: there is a row)."""
        if path.sub is None and op in ("pr", "absent"):
            found = self.exists_row(rows, "TRUE")
            return found if op == "pr" else f"NOT ({found})"
        element, leaf = element_leaf(path)
        if element is None:
            raise needs_sub(path)
        column = self.row_column(rows, leaf.name, element)
        check = make_check(_column_leaf(leaf.name, element, column), "pr" if op == "absent" else op, value)
        condition = self.check(check, _Target(column.sql, column.nullable, json_text=False))
        found = self.exists_row(rows, condition)
        return f"NOT ({found})" if op == "absent" else found

    def check(self, check: Check, target: _Target) -> str:
        """`check` in SQL: the twin of `match._evaluate`."""
        leaf, op, expr = check.leaf, check.op, target.expr
        if op in ("pr", "absent"):
            if leaf.kind == "string":
                present = f"({expr} IS NOT NULL AND {expr} <> '')" if target.nullable else f"{expr} <> ''"
            else:
                present = f"{expr} IS NOT NULL" if target.nullable else "TRUE"
            return present if op == "pr" else f"NOT ({present})"
        spec = OPS[op]
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


def _like_pattern(op: Op, text: str) -> str:
    """`text` with LIKE's wildcards and escape escaped, inside the pattern of co/sw/ew."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return op.pattern.format(escaped)
