"""A SCIM schema's load-and-dump compiled into plain functions, for the bodies marshmallow would accept.

Validation was a third of a POST /Users' CPU in the web process: marshmallow walks every declared field
of every nested schema through several layers of calls (~100 µs for a plain User, and as much again to
dump the result into the stored form). `compile_schema` reads a schema's fields once and builds a loader
that makes the same checks in one pass over the attributes a body has and returns what
`schema.dump(schema.load(body))` returns. It handles only what it can reproduce exactly: at the first
thing it is unsure of (a value of another type, a value a validator refuses, a missing required
attribute) it raises `Unsure`, and the caller loads with marshmallow, which gives the result or the
error messages. A schema with a field kind or hook it does not know gets no compiled loader at all.
The schemas stay the one place the rules live; tests/test_compiled_schemas.py holds the two to the
same results on generated bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, ValidationError, fields
from marshmallow.decorators import POST_DUMP, POST_LOAD, PRE_DUMP, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA

from schemas.base import ScimBoolean, ScimSchema, ScimString

Loader = Callable[[Any], Any]


class Unsure(Exception):
    """The body needs marshmallow: it may be invalid, or valid in a way the compiled loader skips."""


class NotCompilable(Exception):
    """The schema uses something the compiled loader does not reproduce."""


def _string(field: ScimString) -> Loader:
    validators = tuple(field.validators)

    def load(value: Any) -> str:
        kind = type(value)
        if kind is int or kind is float:
            value = str(value)  # ScimString keeps numbers as text; bool, a subclass of int, is refused
        elif kind is not str:
            raise Unsure
        if "\x00" in value:
            raise Unsure
        for validator in validators:
            try:
                validator(value)
            except ValidationError:
                raise Unsure from None
        return value

    return load


def _boolean(field: ScimBoolean) -> Loader:
    if field.validators or field.truthy != ScimBoolean.truthy or field.falsy != ScimBoolean.falsy:
        raise NotCompilable(f"boolean {field.name} with its own values or validators")

    def load(value: Any) -> bool:
        if value is True or value is False:
            return value
        if type(value) is str:
            text = value.strip().lower()
            if text in ("true", "1"):
                return True
            if text in ("false", "0"):
                return False
        raise Unsure  # numbers and anything else: marshmallow decides

    return load


def _nested(field: fields.Nested) -> Loader:
    if field.many or field.only or field.exclude or field.validators or field.unknown is not None:
        raise NotCompilable(f"nested {field.name} with options")
    schema = field.schema
    if not isinstance(schema, ScimSchema):
        raise NotCompilable(f"nested {field.name} is not a ScimSchema")
    return compile_schema(schema)


def _list(field: fields.List) -> Loader:
    if field.validators:
        raise NotCompilable(f"list {field.name} with validators")
    inner = _field(field.inner)

    def load(value: Any) -> list[Any]:
        if type(value) is not list:
            raise Unsure
        return [inner(item) for item in value]

    return load


def _field(field: fields.Field) -> Loader:
    if field.attribute is not None:
        raise NotCompilable(f"{field.name} has an attribute name of its own")
    if type(field) is ScimString:
        load = _string(field)
    elif type(field) is ScimBoolean:
        load = _boolean(field)
    elif type(field) is fields.Nested:
        load = _nested(field)
    elif type(field) is fields.List:
        load = _list(field)
    else:
        raise NotCompilable(f"{field.name}: {type(field).__name__}")
    if field.allow_none:
        raise NotCompilable(f"{field.name} allows null")  # canonical_keys drops nulls; keep it simple
    return _not_null(load)


def _not_null(load: Loader) -> Loader:
    def checked(value: Any) -> Any:
        if value is None:
            raise Unsure
        return load(value)

    return checked


def _same_when_dumped(field: fields.Field) -> bool:
    """Whether a loaded value of `field` is its dumped value too (no renamed or load-only attribute)."""
    if isinstance(field, fields.List):
        return _same_when_dumped(field.inner)
    if isinstance(field, fields.Nested):
        return all(
            (f.data_key is None or f.data_key == name) and not f.load_only and _same_when_dumped(f)
            for name, f in field.schema.load_fields.items()
        )
    return True


def compile_schema(schema: ScimSchema) -> Loader:
    """A function returning `schema.dump(schema.load(body))` for `body`, or raising `Unsure`.

    Raises NotCompilable if the schema has a field kind or hook the function would not reproduce.
    """
    if schema.unknown != EXCLUDE or schema.many or schema.partial:
        raise NotCompilable("a schema instance with options")
    hooks = schema._hooks  # noqa: SLF001 (marshmallow's resolved decorators; read once, here)
    if [name for name, _, _ in hooks[PRE_LOAD]] != ["canonical_keys"]:
        raise NotCompilable("pre_load hooks other than canonical_keys")
    if any(hooks[tag] for tag in (POST_LOAD, VALIDATES_SCHEMA, PRE_DUMP, POST_DUMP)):
        raise NotCompilable("post_load, validates_schema or dump hooks")
    # (data key, attribute, loader, kept in the dump) in declaration order, as load and dump walk them.
    steps = [
        (field.data_key or name, name, _field(field), not field.load_only)
        for name, field in schema.load_fields.items()
    ]
    required = tuple(field.data_key or name for name, field in schema.load_fields.items() if field.required)
    checks = tuple(
        (options["field_name"], getattr(schema, method)) for method, _, options in hooks[VALIDATES]
    )
    # `@validates` methods see loaded values; the nested loaders return dumped ones.
    if not all(_same_when_dumped(schema.load_fields[name]) for name, _ in checks):
        raise NotCompilable("a validated attribute whose dumped value differs from its loaded one")
    canonical_keys = schema.canonical_keys

    def load(body: Any) -> dict[str, Any]:
        try:
            data = canonical_keys(body)
        except ValidationError:
            raise Unsure from None
        for key in required:
            if key not in data:
                raise Unsure
        loaded: dict[str, Any] = {}
        for key, attribute, load_value, _ in steps:
            if key in data:
                loaded[attribute] = load_value(data[key])
        for attribute, check in checks:
            if attribute in loaded:
                try:
                    check(loaded[attribute])
                except ValidationError:
                    raise Unsure from None
        return {key: loaded[attribute] for key, attribute, _, kept in steps if kept and attribute in loaded}

    return load


def dump_of_load(schema: ScimSchema) -> Callable[[Any], dict[str, Any]]:
    """`schema.dump(schema.load(body))`: compiled for the bodies that allow it, else by marshmallow (which
    raises its ValidationError for an invalid body)."""
    try:
        compiled: Loader | None = compile_schema(schema)
    except NotCompilable:
        compiled = None

    def load(body: Any) -> dict[str, Any]:
        if compiled is not None:
            try:
                return compiled(body)  # type: ignore[no-any-return]
            except Unsure:
                pass
        return schema.dump(schema.load(body))  # type: ignore[no-any-return]

    return load
