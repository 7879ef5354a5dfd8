"""The SCIM Group (RFC 7643 §4.2): a group of users, linked by name to a product team."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from schemas.base import ScimSchema, ScimString
from schemas.catalog import ResourceTypeDef, SchemaDef, attributes_of
from schemas.compiled import dump_of_load
from schemas.user import MetaSchema

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_TEXT = 512  # displayName and externalId are indexed: a B-tree entry must stay under ~2.7 kB


def _s(description: str = "", **scim: Any) -> dict[str, Any]:
    return {"description": description, "scim": scim}


class MemberSchema(ScimSchema):
    """One member of a group: a User of the same tenant, named by its id."""

    value = ScimString(metadata=_s("The id of a User of this tenant", caseExact=True, mutability="immutable"))
    ref = ScimString(
        data_key="$ref",
        dump_only=True,
        metadata=_s("The member's URI", type="reference", referenceTypes=["User"], mutability="immutable"),
    )
    display = ScimString(
        dump_only=True,
        metadata=_s(
            "The member's displayName (else userName), filled in by the service",
            mutability="readOnly",
            returned="request",
        ),
    )
    type = ScimString(
        metadata=_s("Always User: groups do not nest", canonicalValues=["User"], mutability="immutable")
    )


class GroupSchema(ScimSchema):
    """A SCIM Group as the IdP sends it. `members` is described here but loaded by `member_values`:
    a push of 50,000 members must not go through 50,000 nested schema loads."""

    id = ScimString(
        dump_only=True,
        metadata=_s(
            "Unique id, issued by the service",
            mutability="readOnly",
            returned="always",
            caseExact=True,
            uniqueness="server",
            common=True,
        ),
    )
    externalId = ScimString(
        validate=validate.Length(max=MAX_TEXT, error=f"must be at most {MAX_TEXT} characters"),
        metadata=_s("Identifier of the group in the IdP", caseExact=True, common=True),
    )
    meta = fields.Nested(
        MetaSchema, dump_only=True, metadata=_s("Resource metadata", mutability="readOnly", common=True)
    )
    displayName = ScimString(
        required=True,
        validate=validate.Length(min=1, max=MAX_TEXT, error=f"must be 1 to {MAX_TEXT} characters long"),
        metadata=_s(
            "The group's name. On creation it must be exactly the name of an existing team, which the "
            "group then stays linked to; renaming either later does not rename the other"
        ),
    )
    members = fields.List(
        fields.Nested(MemberSchema),
        metadata=_s("The group's members: users of this tenant; the linked team follows them"),
    )


GROUP_SCHEMA_INSTANCE = GroupSchema(exclude=("members",))
_load_group = dump_of_load(GROUP_SCHEMA_INSTANCE)

GROUP_RESOURCE = ResourceTypeDef(
    name="Group",
    endpoint="/Groups",
    description="A group of users, linked by name to a product team whose membership follows it",
    core=SchemaDef(
        id=GROUP_SCHEMA,
        name="Group",
        description="Group",
        attributes=attributes_of(GroupSchema()),
    ),
)


def load_group(data: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalize a Group body, without its members, into the stored resource.

    Raises marshmallow.ValidationError. Members are read separately (`scimsvc.scim.groups`).
    """
    without_members = {k: v for k, v in data.items() if not (isinstance(k, str) and k.lower() == "members")}
    return _load_group(without_members)
