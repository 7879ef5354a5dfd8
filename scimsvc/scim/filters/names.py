"""Attribute names in a filter resolved against the catalog (`schemas.catalog`), and their errors.

A name as written (`userName`, `emails.value`, `urn:...:User:x`, `type` inside `emails[...]`) becomes an
`AttrPath` or a sub-attribute, or an invalid_filter naming the unknown or misused attribute; for a
multi-valued attribute, which part of each element a comparison tests. `sql` and `match` both resolve
through here, so they accept and refuse the same names. It never holds SQL, a comparison rule beyond
choosing the leaf (`rules`), or I/O.
"""

from __future__ import annotations

from schemas.catalog import Attr, AttrPath, ResourceTypeDef
from scimsvc.scim.errors import ScimError, invalid_filter
from scimsvc.scim.filters.parse import quote
from scimsvc.scim.filters.rules import Leaf, leaf_of
from scimsvc.scim.filters.tree import ValuePath


def resolve(rtype: ResourceTypeDef, name: str) -> AttrPath:
    """The attribute `name` is in `rtype`; invalid_filter if there is none."""
    path = rtype.resolve(name)
    if path is None:
        raise invalid_filter(f"unknown attribute {quote(name)} in filter")
    return path


def resolve_sub(attr: Attr, name: str) -> Attr:
    """The sub-attribute `name` of `attr` (a plain name, as inside `attr[...]`); invalid_filter if none."""
    sub = attr.sub(name) if "." not in name and ":" not in name else None
    if sub is None:
        raise invalid_filter(f"unknown sub-attribute {quote(name)} of {quote(attr.name)} in filter")
    return sub


def needs_sub(path: AttrPath) -> ScimError:
    """The error for comparing a complex attribute itself, with an example of a sub-attribute to name."""
    example = f"{path.attr.name}.{path.attr.sub_attributes[0].name}" if path.attr.sub_attributes else ""
    hint = f", e.g. {quote(example)}" if example else ""
    return invalid_filter(f"{quote(str(path))} is a complex attribute: name one of its sub-attributes{hint}")


def element_leaf(path: AttrPath) -> tuple[Attr | None, Leaf]:
    """What a comparison on a multi-valued attribute tests in each element, and by which rules: the named
    sub-attribute, `value` when the attribute is complex and none is named, or the element itself."""
    attr, sub = path.attr, path.sub
    if sub is None and attr.type == "complex":
        sub = attr.sub("value")
        if sub is None:
            raise needs_sub(path)
    if sub is None:
        return None, leaf_of(str(path), attr)
    return sub, leaf_of(f"{AttrPath(path.schema, attr)}.{sub.name}", sub)


def value_path(rtype: ResourceTypeDef, node: ValuePath, in_scope: bool) -> AttrPath:
    """The complex attribute of `attr[...]`; invalid_filter if nested (`in_scope`) or not complex."""
    if in_scope:
        raise invalid_filter(f"value filters cannot be nested: {quote(node.attr)}[...]")
    path = resolve(rtype, node.attr)
    if path.sub is not None or path.attr.type != "complex":
        raise invalid_filter(f"{quote(node.attr)}[...]: a value filter needs a complex attribute")
    return path
