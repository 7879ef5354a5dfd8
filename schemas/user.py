"""The SCIM User (RFC 7643 §4.1), the enterprise extension (§4.3) and our read-only product extension."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields, validate, validates

from schemas.base import ScimBoolean, ScimSchema, ScimString
from schemas.catalog import ResourceTypeDef, SchemaDef, attributes_of
from schemas.compiled import dump_of_load

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PRODUCT_SCHEMA = "urn:scimsvc:schemas:extension:product:2.0:User"

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".bmp", ".png", ".gif")


def _s(description: str = "", **scim: Any) -> dict[str, Any]:
    return {"description": description, "scim": scim}


def Str(  # noqa: N802
    description: str = "", *, required: bool = False, max_length: int | None = None, **scim: Any
) -> ScimString:
    limit = [validate.Length(max=max_length)] if max_length else []
    return ScimString(required=required, validate=limit, metadata=_s(description, **scim))


# Indexed columns hold at most ~2,700 bytes per entry: these caps keep any UTF-8 text under it.
MAX_USER_NAME = 254  # the longest email address (RFC 5321 path limit)
MAX_INDEXED_TEXT = 512


def Bool(description: str = "", **scim: Any) -> ScimBoolean:  # noqa: N802
    return ScimBoolean(metadata=_s(description, **scim))


def ReadOnly(description: str = "", **scim: Any) -> ScimString:  # noqa: N802
    return ScimString(dump_only=True, metadata=_s(description, mutability="readOnly", **scim))


class NameSchema(ScimSchema):
    formatted = Str("The full name, formatted for display")
    familyName = Str("Family name")
    givenName = Str("Given name")
    middleName = Str("Middle name(s)")
    honorificPrefix = Str("Honorific prefix, e.g. Ms.")
    honorificSuffix = Str("Honorific suffix, e.g. III")


class MultiValuedSchema(ScimSchema):
    """The sub-attributes every multi-valued attribute shares (RFC 7643 §2.4)."""

    value = Str("The attribute's value")
    display = Str("A human-readable name")
    type = Str("A label indicating the attribute's function")
    primary = Bool("Whether this is the preferred value")


class EmailSchema(MultiValuedSchema):
    type = Str("work, home or other", canonicalValues=["work", "home", "other"])


class PhotoSchema(MultiValuedSchema):
    value = Str("URL of a photo", type="reference", referenceTypes=["external"])
    type = Str("photo or thumbnail", canonicalValues=["photo", "thumbnail"])


class AddressSchema(ScimSchema):
    formatted = Str("The full mailing address")
    streetAddress = Str("Street address")
    locality = Str("City or locality")
    region = Str("State or region")
    postalCode = Str("Zip code or postal code")
    country = Str("Country, ISO 3166-1 alpha-2")
    type = Str("work, home or other", canonicalValues=["work", "home", "other"])
    primary = Bool("Whether this is the preferred address")


class GroupRefSchema(ScimSchema):
    value = ReadOnly("Group id")
    ref = ScimString(
        data_key="$ref",
        dump_only=True,
        metadata=_s("Group URI", type="reference", referenceTypes=["Group"], mutability="readOnly"),
    )
    display = ReadOnly("Group displayName")
    type = ReadOnly("direct or indirect", canonicalValues=["direct", "indirect"])


class ManagerSchema(ScimSchema):
    value = Str("The id of the SCIM resource representing the user's manager")
    ref = ScimString(
        data_key="$ref", metadata=_s("URI of the manager", type="reference", referenceTypes=["User"])
    )
    displayName = ScimString(
        metadata=_s(
            "The manager's displayName, filled in by the service", mutability="readOnly", returned="request"
        )
    )


class EnterpriseUserSchema(ScimSchema):
    employeeNumber = Str("Employee number")
    costCenter = Str("Cost center")
    organization = Str("Organization")
    division = Str("Division")
    department = Str("Department")
    manager = fields.Nested(ManagerSchema, metadata=_s("The user's manager"))


class ProductUserSchema(ScimSchema):
    """Read-only product state, shown to the IdP; never written through SCIM."""

    provisioningState = ReadOnly(
        "pending until the worker has applied the latest change, then provisioned or deprovisioned",
        canonicalValues=["pending", "provisioned", "deprovisioned"],
    )
    license = ReadOnly(
        "The license the worker allocated: full (holds a seat), free, free_restricted; absent: none",
        canonicalValues=["full", "free", "free_restricted"],
    )
    seat = ScimBoolean(dump_only=True, metadata=_s("Whether the user holds a seat", mutability="readOnly"))
    waiting = ScimBoolean(
        dump_only=True,
        metadata=_s("Whether the user waits for a seat (first come, first served)", mutability="readOnly"),
    )
    provisionedAt = ScimString(
        dump_only=True,
        metadata=_s("When the worker last applied a change", type="dateTime", mutability="readOnly"),
    )


class MetaSchema(ScimSchema):
    resourceType = ReadOnly("The resource type")
    created = ScimString(dump_only=True, metadata=_s("Created", type="dateTime", mutability="readOnly"))
    lastModified = ScimString(
        dump_only=True, metadata=_s("Last modified", type="dateTime", mutability="readOnly")
    )
    location = ReadOnly("The resource's URI", type="reference", referenceTypes=["uri"])
    version = ReadOnly("Weak ETag of the resource", caseExact=True)


class UserSchema(ScimSchema):
    """A SCIM User as the IdP sends it; validated on POST and PUT and after every PATCH."""

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
    externalId = Str(
        "Identifier of the user in the IdP", max_length=MAX_INDEXED_TEXT, caseExact=True, common=True
    )
    meta = fields.Nested(
        MetaSchema, dump_only=True, metadata=_s("Resource metadata", mutability="readOnly", common=True)
    )
    userName = Str(
        "The user's email address: the product's primary identifier, unique per tenant",
        required=True,
        max_length=MAX_USER_NAME,
        uniqueness="server",
    )
    name = fields.Nested(NameSchema, metadata=_s("The components of the user's name"))
    displayName = Str("The name shown in the product", max_length=MAX_INDEXED_TEXT)
    nickName = Str("Casual name")
    profileUrl = Str("Profile page URL", type="reference", referenceTypes=["external"])
    title = Str("Job title")
    userType = Str("Full asks for a full license (a seat)")
    preferredLanguage = Str("Preferred language, e.g. en-US")
    locale = Str("Locale, e.g. en-US")
    timezone = Str("Time zone, e.g. Asia/Tokyo")
    active = Bool("Whether the user may sign in and hold a license")
    password = ScimString(
        load_only=True,
        metadata=_s(
            "Never stored: the product signs users in through the IdP",
            mutability="writeOnly",
            returned="never",
            supported=False,  # left out of /Schemas: a PUT or PATCH that sets one is refused
        ),
    )
    emails = fields.List(fields.Nested(EmailSchema), metadata=_s("Email addresses"))
    phoneNumbers = fields.List(fields.Nested(MultiValuedSchema), metadata=_s("Phone numbers"))
    ims = fields.List(fields.Nested(MultiValuedSchema), metadata=_s("Instant messaging addresses"))
    photos = fields.List(fields.Nested(PhotoSchema), metadata=_s("Photo URLs"))
    addresses = fields.List(fields.Nested(AddressSchema), metadata=_s("Physical addresses"))
    groups = fields.List(
        fields.Nested(GroupRefSchema),
        dump_only=True,
        metadata=_s("Groups the user belongs to", mutability="readOnly"),
    )
    entitlements = fields.List(fields.Nested(MultiValuedSchema), metadata=_s("Entitlements"))
    roles = fields.List(fields.Nested(MultiValuedSchema), metadata=_s("Roles; the primary one is used"))
    x509Certificates = fields.List(
        fields.Nested(MultiValuedSchema), metadata=_s("DER-encoded X.509 certificates")
    )
    enterprise = fields.Nested(EnterpriseUserSchema, data_key=ENTERPRISE_SCHEMA)

    @validates("userName")
    def _user_name_is_email(self, value: str, **_: Any) -> None:
        validate.Email(error="must be an email address, e.g. jane@example.com (got {input!r})")(value)

    @validates("photos")
    def _photo_urls(self, value: list[dict[str, Any]], **_: Any) -> None:
        for photo in value:
            if str(photo.get("type", "")).lower() != "photo" or "value" not in photo:
                continue
            try:
                url = urlsplit(photo["value"])
            except ValueError:
                raise ValidationError(f"photo {photo['value']!r} is not a valid URL") from None
            if (
                url.scheme not in ("http", "https")
                or not url.netloc
                or not url.path.lower().endswith(PHOTO_EXTENSIONS)
            ):
                raise ValidationError(
                    f"photo {photo['value']!r} must be an http(s) URL ending in "
                    ".jpg, .jpeg, .bmp, .png or .gif"
                )


def _manager_value(data: Any) -> Any:
    """Entra sets the manager with a bare id string; store it as `{"value": id}`."""
    return {"value": data} if isinstance(data, str) else data


_ENTERPRISE_LOWER = ENTERPRISE_SCHEMA.lower()


def load_user(data: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalize a User body into the stored resource (canonical keys, no id/meta).

    Raises marshmallow.ValidationError. The password, if any, is dropped here; callers that must refuse
    it (PUT, PATCH) check for it first.
    """
    if ENTERPRISE_SCHEMA in data:  # as IdPs spell it
        ext_key: str | None = ENTERPRISE_SCHEMA
    else:
        ext_key = next((k for k in data if isinstance(k, str) and k.lower() == _ENTERPRISE_LOWER), None)
    if ext_key is not None and isinstance(data[ext_key], dict):
        ext = {k: (_manager_value(v) if k.lower() == "manager" else v) for k, v in data[ext_key].items()}
        data = {**data, ext_key: ext}
    return _load_user(data)  # the password, load-only, is not in the stored form


USER_SCHEMA_INSTANCE = UserSchema()
_load_user = dump_of_load(USER_SCHEMA_INSTANCE)

USER_RESOURCE = ResourceTypeDef(
    name="User",
    endpoint="/Users",
    description="A person provisioned into the product: a seat, a license and teams",
    core=SchemaDef(
        id=USER_SCHEMA,
        name="User",
        description="User Account",
        attributes=attributes_of(UserSchema(), exclude=frozenset({ENTERPRISE_SCHEMA})),
    ),
    extensions=(
        SchemaDef(
            id=ENTERPRISE_SCHEMA,
            name="EnterpriseUser",
            description="Enterprise User",
            attributes=attributes_of(EnterpriseUserSchema()),
        ),
        SchemaDef(
            id=PRODUCT_SCHEMA,
            name="ProductUser",
            description="The product state of a provisioned user, read-only",
            attributes=tuple(
                a.__class__(**{**a.__dict__, "mutability": "readOnly"})
                for a in attributes_of(ProductUserSchema())
            ),
        ),
    ),
)
