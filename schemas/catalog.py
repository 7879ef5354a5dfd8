"""SCIM attribute definitions (RFC 7643 §7) derived from the marshmallow schemas.

The same marshmallow schema that validates a resource describes it: each field's type, plurality and
`metadata["scim"]` characteristics become an `Attr`. Filters, PATCH paths, projections and the
`/Schemas` documents all read these definitions, so a rule about an attribute lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from marshmallow import Schema, fields


@dataclass(frozen=True)
class Attr:
    """One SCIM attribute and its characteristics."""

    name: str
    type: str = "string"  # string boolean decimal integer dateTime binary reference complex
    multi_valued: bool = False
    case_exact: bool = False
    required: bool = False
    mutability: str = "readWrite"  # readOnly readWrite immutable writeOnly
    returned: str = "default"  # always never default request
    uniqueness: str = "none"
    description: str = ""
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attr, ...] = ()
    common: bool = False  # id, externalId, meta: on every resource, not listed in a schema document
    supported: bool = True  # False: understood (e.g. refused with a clear error) but not a feature we offer

    def sub(self, name: str) -> Attr | None:
        """The sub-attribute called `name` (attribute names are case-insensitive)."""
        lowered = name.lower()
        for sub in self.sub_attributes:
            if sub.name.lower() == lowered:
                return sub
        return None

    def document(self) -> dict[str, Any]:
        """This attribute as an RFC 7643 §7 attribute definition."""
        doc: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        }
        if self.type in ("string", "reference", "binary"):
            doc["caseExact"] = self.case_exact
            doc["uniqueness"] = self.uniqueness
        if self.canonical_values:
            doc["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            doc["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            doc["subAttributes"] = [sub.document() for sub in self.sub_attributes]
        return doc


@dataclass(frozen=True)
class SchemaDef:
    """One SCIM schema (a core schema or an extension) and its attributes."""

    id: str
    name: str
    description: str
    attributes: tuple[Attr, ...]

    def attr(self, name: str) -> Attr | None:
        """The attribute called `name`, case-insensitively."""
        lowered = name.lower()
        for attr in self.attributes:
            if attr.name.lower() == lowered:
                return attr
        return None

    def document(self, *, location: str) -> dict[str, Any]:
        """The `/Schemas/{id}` document."""
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [attr.document() for attr in self.attributes if not attr.common and attr.supported],
            "meta": {"resourceType": "Schema", "location": location},
        }


@dataclass(frozen=True)
class AttrPath:
    """A resolved attribute path: `schema` URN, top-level `attr`, optional `sub` attribute."""

    schema: SchemaDef
    attr: Attr
    sub: Attr | None = None

    @property
    def is_extension(self) -> bool:
        return self.schema.id.startswith("urn:") and ":extension:" in self.schema.id

    @property
    def target(self) -> Attr:
        return self.sub or self.attr

    def __str__(self) -> str:
        text = self.attr.name if not self.sub else f"{self.attr.name}.{self.sub.name}"
        return f"{self.schema.id}:{text}" if self.is_extension else text


@dataclass(frozen=True)
class ResourceTypeDef:
    """A SCIM resource type: its core schema, its extensions and its endpoint."""

    name: str
    endpoint: str
    description: str
    core: SchemaDef
    extensions: tuple[SchemaDef, ...] = ()
    required_extensions: frozenset[str] = field(default_factory=frozenset)

    @property
    def schemas(self) -> tuple[SchemaDef, ...]:
        return (self.core, *self.extensions)

    @cached_property
    def hidden_attributes(self) -> tuple[tuple[SchemaDef, Attr], ...]:
        """Attributes that are, or have sub-attributes that are, `returned: never` or `request`."""
        hidden = ("never", "request")
        return tuple(
            (schema, attr)
            for schema in self.schemas
            for attr in schema.attributes
            if attr.returned in hidden or any(s.returned in hidden for s in attr.sub_attributes)
        )

    def extension(self, urn: str) -> SchemaDef | None:
        """The extension schema whose URN is `urn`, case-insensitively."""
        lowered = urn.lower()
        for ext in self.extensions:
            if ext.id.lower() == lowered:
                return ext
        return None

    def split_urn(self, path: str) -> tuple[SchemaDef, str]:
        """Split a path that may start with a schema URN into (schema, rest)."""
        lowered = path.lower()
        for schema in self.schemas:
            prefix = schema.id.lower() + ":"
            if lowered.startswith(prefix):
                return schema, path[len(prefix) :]
        return self.core, path

    def resolve(self, path: str) -> AttrPath | None:
        """Resolve `attr`, `attr.sub` or `urn:...:attr[.sub]` against this type; None if unknown."""
        schema, rest = self.split_urn(path)
        name, _, sub_name = rest.partition(".")
        attr = schema.attr(name)
        if attr is None:
            return None
        if not sub_name:
            return AttrPath(schema, attr)
        sub = attr.sub(sub_name)
        if sub is None or "." in sub_name:
            return None
        return AttrPath(schema, attr, sub)

    def document(self, *, location: str) -> dict[str, Any]:
        """The `/ResourceTypes/{name}` document."""
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.core.id,
            "schemaExtensions": [
                {"schema": ext.id, "required": ext.id in self.required_extensions} for ext in self.extensions
            ],
            "meta": {"resourceType": "ResourceType", "location": location},
        }


_FIELD_TYPES: tuple[tuple[type[fields.Field], str], ...] = (
    (fields.Boolean, "boolean"),
    (fields.DateTime, "dateTime"),
    (fields.Integer, "integer"),
    (fields.Float, "decimal"),
    (fields.Decimal, "decimal"),
    (fields.Nested, "complex"),
    (fields.String, "string"),
)


def attr_from_field(name: str, fld: fields.Field) -> Attr:
    """The SCIM attribute a marshmallow field describes."""
    multi = isinstance(fld, fields.List)
    inner = fld.inner if isinstance(fld, fields.List) else fld
    meta: dict[str, Any] = dict(fld.metadata.get("scim", {}))
    scim_type = meta.pop("type", None) or next(t for cls, t in _FIELD_TYPES if isinstance(inner, cls))
    subs: tuple[Attr, ...] = ()
    if isinstance(inner, fields.Nested):
        subs = attributes_of(inner.schema)
    return Attr(
        name=name,
        type=scim_type,
        multi_valued=multi,
        case_exact=meta.pop("caseExact", False),
        required=fld.required,
        mutability=meta.pop("mutability", "readWrite"),
        returned=meta.pop("returned", "default"),
        uniqueness=meta.pop("uniqueness", "none"),
        description=fld.metadata.get("description", ""),
        canonical_values=tuple(meta.pop("canonicalValues", ())),
        reference_types=tuple(meta.pop("referenceTypes", ())),
        sub_attributes=subs,
        common=meta.pop("common", False),
        supported=meta.pop("supported", True),
    )


def attributes_of(schema: Schema, *, exclude: frozenset[str] = frozenset()) -> tuple[Attr, ...]:
    """The SCIM attributes of a marshmallow schema's fields, keyed by their data keys."""
    result = []
    for fld in schema.fields.values():
        key = fld.data_key or fld.name or ""
        if key in exclude:
            continue
        result.append(attr_from_field(key, fld))
    return tuple(result)
