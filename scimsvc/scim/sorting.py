"""RFC 7644 §3.4.2.3 `sortBy` / `sortOrder`: parse them and turn them into an SQL ORDER BY (no I/O).

* `sortBy` names an attribute of the resource type (sub-attribute paths and extension URNs allowed);
  an unknown one, a complex attribute without a sub-attribute, or `sortOrder` other than
  ascending/descending is a 400 `invalidValue` (we advertise sort as supported, so a sort we cannot do
  is refused rather than silently ignored).
* a multi-valued attribute sorts by its primary element's value, else its first element's;
* strings compare case-insensitively unless the attribute is caseExact;
* resources without a value come last when ascending, first when descending (PostgreSQL's default
  NULLS LAST / NULLS FIRST, as the RFC asks); an empty string in the resource counts as no value;
* ties keep the stable paging order, so walking startIndex never skips or repeats a resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.catalog import AttrPath, ResourceTypeDef
from scimsvc.scim.errors import invalid_value
from scimsvc.scim.filters.sql import Column, Queryable

SORT_ORDERS = ("ascending", "descending")


@dataclass(frozen=True)
class Sort:
    """A validated sort: the attribute (a multi-valued complex one resolved to its `value`) and order."""

    path: AttrPath
    descending: bool = False


def parse_sort(sort_by: str | None, sort_order: str | None, rtype: ResourceTypeDef) -> Sort | None:
    """The sort a request asks for; None when it names no `sortBy` (the default order applies)."""
    order = (sort_order or "").strip()
    if order and order.lower() not in SORT_ORDERS:
        raise invalid_value(f'sortOrder must be "ascending" or "descending", got {order!r}')
    name = (sort_by or "").strip()
    if not name:
        return None
    path = rtype.resolve(name)
    if path is None:
        raise invalid_value(f"cannot sort by {name!r}: {rtype.name} has no such attribute")
    if path.sub is None and path.attr.type == "complex":
        value = path.attr.sub("value")
        if value is None or not path.attr.multi_valued:
            subs = ", ".join(f"{path.attr.name}.{s.name}" for s in path.attr.sub_attributes[:3])
            raise invalid_value(
                f"cannot sort by the complex attribute {name!r}: name a sub-attribute ({subs})"
            )
        path = AttrPath(path.schema, path.attr, value)
    return Sort(path, descending=order.lower() == "descending")


def _lit(name: str) -> str:
    """A catalog name (never user input) as an SQL string literal."""
    return "'" + name.replace("'", "''") + "'"


def sort_expression(
    sort: Sort,
    *,
    columns: Mapping[str, Column],
    resource_column: str,
    unsortable: frozenset[str] = frozenset(),
) -> str:
    """The SQL expression `sort` orders by; `columns` as in `filters.sql.compile_filter`.

    `unsortable` names (lower-cased) attributes kept outside the resource that cannot be sorted on.
    """
    path = sort.path
    top = str(AttrPath(path.schema, path.attr)).lower()
    if top in unsortable:
        raise invalid_value(f"cannot sort by {str(path)!r}")
    target = path.target
    column = columns.get(str(path).lower())
    if column is not None:
        expr = column.sql
        kind = column.type
        case_exact = column.case_exact if column.case_exact is not None else target.case_exact
    else:
        kind = {"boolean": "boolean", "dateTime": "dateTime"}.get(target.type, "string")
        case_exact = target.case_exact
        keys = ([path.schema.id] if path.is_extension else []) + [path.attr.name]
        holder = resource_column + "".join(f"->{_lit(k)}" for k in keys)
        if path.attr.multi_valued:
            element = f"e.v->>{_lit(path.sub.name)}" if path.sub else "e.v #>> '{}'"
            elements = f"CASE jsonb_typeof({holder}) WHEN 'array' THEN {holder} ELSE '[]'::jsonb END"
            # Only catalog names are in the text (quoted by _lit); there are no values at all.
            expr = (
                f"(SELECT {element} FROM jsonb_array_elements({elements}) WITH ORDINALITY AS e(v, n) "  # noqa: S608
                "ORDER BY e.v->>'primary' = 'true' DESC NULLS LAST, e.n LIMIT 1)"
            )
        elif path.sub is not None:
            expr = f"{holder}->>{_lit(path.sub.name)}"
        else:
            expr = resource_column + "".join(f"->{_lit(k)}" for k in keys[:-1]) + f"->>{_lit(keys[-1])}"
        if kind == "dateTime":
            expr = f"({expr})::timestamptz"
    if kind == "string":
        if column is None:
            expr = f"NULLIF({expr}, '')"
        # A column keeps the expression of its index (e.g. lower(user_name)) so the index serves the order.
        if not case_exact:
            expr = f"lower({expr})"
    return f"{expr} {'DESC' if sort.descending else 'ASC'}"


def order_by(
    sort: Sort | None,
    *,
    columns: Mapping[str, Column],
    resource_column: str,
    stable: str,
    unsortable: frozenset[str] = frozenset(),
) -> str:
    """An ORDER BY list: the sort (if any), then the `stable` order that makes paging deterministic."""
    if sort is None:
        return stable
    expression = sort_expression(
        sort, columns=columns, resource_column=resource_column, unsortable=unsortable
    )
    return f"{expression}, {stable}"


def order_for(sort: Sort | None, target: Queryable) -> str:
    """`order_by` for one resource type; its side-table attributes cannot be sorted on."""
    return order_by(
        sort,
        columns=target.columns,
        resource_column=target.resource_column,
        stable=target.stable_order,
        unsortable=frozenset(target.rows or {}),
    )
