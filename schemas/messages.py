"""Message shapes the API documents but no handler loads: SCIM errors, list responses, PATCH requests,
discovery documents, query strings and headers, and the admin and ops response bodies.

The OpenAPI document (`scimsvc/web/openapi.py`) is built from these and from the schemas that do validate
requests (`schemas.user`, `schemas.group`, `schemas.admin`). A PATCH body is parsed by
`scimsvc.scim.patch`, which is more lenient than `PatchOpSchema` (op names in any case): the schema says
what a client should send.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

from schemas.admin import LICENSES, RateLimitSchema, TenantSettingsSchema
from schemas.group import GroupSchema
from schemas.user import UserSchema

ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_URN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST_URN = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def _d(description: str) -> dict[str, Any]:
    return {"description": description}


class OpenSchema(Schema):
    """A documented body that may carry more than it names (responses grow; SCIM ignores the unknown)."""

    class Meta:
        unknown = EXCLUDE


# --- SCIM messages (RFC 7644) ------------------------------------------------------------------------


class ErrorSchema(OpenSchema):
    """RFC 7644 §3.12: every error of this API, SCIM or admin, has this body."""

    schemas = fields.List(fields.String(), required=True, metadata=_d(f'Always ["{ERROR_URN}"]'))
    status = fields.String(required=True, metadata=_d("The HTTP status code, as a string"))
    scimType = fields.String(
        metadata=_d(
            "The RFC 7644 error type where one applies: invalidFilter, invalidSyntax, invalidPath, noTarget, "
            "invalidValue, mutability, uniqueness, tooMany, preconditionFailed"
        )
    )
    detail = fields.String(required=True, metadata=_d("What went wrong and what to do about it"))


class PatchOperationSchema(OpenSchema):
    op = fields.String(
        required=True,
        validate=validate.OneOf(("add", "remove", "replace")),
        metadata=_d("add, remove or replace (any letter case is accepted)"),
    )
    path = fields.String(
        metadata=_d('An attribute path, e.g. `name.givenName` or `emails[type eq "work"].value`')
    )
    value = fields.Raw(metadata=_d("The new value; without a path, an object of attributes"))


class PatchOpSchema(OpenSchema):
    """RFC 7644 §3.5.2: a PATCH request body."""

    schemas = fields.List(fields.String(), required=True, metadata=_d(f'Always ["{PATCH_URN}"]'))
    Operations = fields.List(fields.Nested(PatchOperationSchema), required=True)


class ListResponseSchema(OpenSchema):
    """RFC 7644 §3.4.2: one page of a query's results."""

    schemas = fields.List(fields.String(), required=True, metadata=_d(f'Always ["{LIST_URN}"]'))
    totalResults = fields.Integer(required=True, metadata=_d("How many resources match, in all pages"))
    startIndex = fields.Integer(metadata=_d("1-based index of the first resource of this page"))
    itemsPerPage = fields.Integer(metadata=_d("How many resources this page holds"))


# A resource in a response may lack any attribute but `id`: `attributes`/`excludedAttributes` select them.
USER_RESPONSE = UserSchema(partial=True)
GROUP_RESPONSE = GroupSchema(partial=True)


class UserListResponseSchema(ListResponseSchema):
    Resources = fields.List(fields.Nested(USER_RESPONSE))


class GroupListResponseSchema(ListResponseSchema):
    Resources = fields.List(fields.Nested(GROUP_RESPONSE))


class SupportedSchema(OpenSchema):
    supported = fields.Boolean(required=True)


class BulkSupportSchema(SupportedSchema):
    maxOperations = fields.Integer()
    maxPayloadSize = fields.Integer()


class FilterSupportSchema(SupportedSchema):
    maxResults = fields.Integer()


class AuthenticationSchemeSchema(OpenSchema):
    type = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String()
    specUri = fields.String()
    primary = fields.Boolean()


class DiscoveryMetaSchema(OpenSchema):
    resourceType = fields.String()
    location = fields.String()


class SearchListResponseSchema(ListResponseSchema):
    Resources = fields.List(fields.Dict(), metadata=_d("The matching Users, then the matching Groups"))


class SearchRequestSchema(OpenSchema):
    """RFC 7644 §3.4.3: a query sent as the body of POST `.search` (the GET query parameters)."""

    schemas = fields.List(fields.String(), metadata=_d(f'["{SEARCH_URN}"]'))
    attributes = fields.List(
        fields.String(), metadata=_d("Attributes to return (plus those always returned)")
    )
    excludedAttributes = fields.List(fields.String(), metadata=_d("Attributes to leave out"))
    filter = fields.String(metadata=_d('A SCIM filter, e.g. `userName eq "jane@example.com"`'))
    sortBy = fields.String(metadata=_d("The attribute to sort by"))
    sortOrder = fields.String(validate=validate.OneOf(("ascending", "descending")))
    startIndex = fields.Integer(metadata=_d("1-based index of the first result"))
    count = fields.Integer(metadata=_d("Page size, capped by the server"))


class BulkOperationSchema(OpenSchema):
    method = fields.String(required=True, validate=validate.OneOf(("POST", "PUT", "PATCH", "DELETE")))
    path = fields.String(required=True, metadata=_d("/Users, /Groups/{id} or /Groups/bulkId:x"))
    bulkId = fields.String(metadata=_d("The id a POST gives its new resource for later operations"))
    version = fields.String(metadata=_d("If-Match for this operation"))
    data = fields.Raw(metadata=_d("The resource (POST, PUT) or the PatchOp (PATCH)"))


class BulkRequestSchema(OpenSchema):
    """RFC 7644 §3.7: several operations in one request."""

    schemas = fields.List(fields.String(), required=True, metadata=_d(f'["{BULK_REQUEST_URN}"]'))
    failOnErrors = fields.Integer(metadata=_d("Stop after this many errors"))
    Operations = fields.List(fields.Nested(BulkOperationSchema), required=True)


class BulkResultSchema(OpenSchema):
    method = fields.String()
    bulkId = fields.String()
    version = fields.String()
    location = fields.String()
    status = fields.String(required=True, metadata=_d("The operation's HTTP status, as a string"))
    response = fields.Nested(ErrorSchema, metadata=_d("The error, for a failed operation"))


class BulkResponseSchema(OpenSchema):
    schemas = fields.List(fields.String(), required=True)
    Operations = fields.List(fields.Nested(BulkResultSchema), required=True)


class ServiceProviderConfigSchema(OpenSchema):
    """RFC 7643 §5: what this server supports."""

    schemas = fields.List(fields.String(), required=True)
    patch = fields.Nested(SupportedSchema, required=True)
    bulk = fields.Nested(BulkSupportSchema, required=True)
    filter = fields.Nested(FilterSupportSchema, required=True)
    changePassword = fields.Nested(SupportedSchema, required=True)
    sort = fields.Nested(SupportedSchema, required=True)
    etag = fields.Nested(SupportedSchema, required=True)
    authenticationSchemes = fields.List(fields.Nested(AuthenticationSchemeSchema), required=True)
    meta = fields.Nested(DiscoveryMetaSchema)


class SchemaExtensionSchema(OpenSchema):
    schema = fields.String(required=True)
    required = fields.Boolean(required=True)


class ResourceTypeSchema(OpenSchema):
    """RFC 7643 §6: a resource type and its schemas."""

    schemas = fields.List(fields.String(), required=True)
    id = fields.String()
    name = fields.String(required=True)
    endpoint = fields.String(required=True)
    description = fields.String()
    schema = fields.String(required=True)
    schemaExtensions = fields.List(fields.Nested(SchemaExtensionSchema))
    meta = fields.Nested(DiscoveryMetaSchema)


class AttributeDefinitionSchema(OpenSchema):
    """RFC 7643 §7: one attribute of a SCIM schema."""

    name = fields.String(required=True)
    type = fields.String(required=True)
    multiValued = fields.Boolean(required=True)
    description = fields.String()
    required = fields.Boolean()
    caseExact = fields.Boolean()
    mutability = fields.String()
    returned = fields.String()
    uniqueness = fields.String()
    canonicalValues = fields.List(fields.String())
    referenceTypes = fields.List(fields.String())
    subAttributes = fields.List(fields.Nested(lambda: AttributeDefinitionSchema()))


class SchemaDefinitionSchema(OpenSchema):
    """RFC 7643 §7: a SCIM schema (`/Schemas/{id}`)."""

    schemas = fields.List(fields.String(), required=True)
    id = fields.String(required=True)
    name = fields.String()
    description = fields.String()
    attributes = fields.List(fields.Nested(AttributeDefinitionSchema), required=True)
    meta = fields.Nested(DiscoveryMetaSchema)


class ResourceTypeListResponseSchema(ListResponseSchema):
    Resources = fields.List(fields.Nested(ResourceTypeSchema))


class SchemaListResponseSchema(ListResponseSchema):
    Resources = fields.List(fields.Nested(SchemaDefinitionSchema))


class PageQuerySchema(Schema):
    """RFC 7644 §3.4.2: filtering and paging of a list."""

    filter = fields.String(metadata=_d('A SCIM filter, e.g. `userName eq "jane@example.com"`'))
    startIndex = fields.Integer(metadata=_d("1-based index of the first result (below 1 means 1)"))
    count = fields.Integer(metadata=_d("Page size, capped by the server (negative means 0)"))


class ProjectionQuerySchema(Schema):
    """RFC 7644 §3.4.2.5: which attributes a response carries."""

    attributes = fields.String(
        metadata=_d("Comma-separated attributes to return (plus those always returned)")
    )
    excludedAttributes = fields.String(metadata=_d("Comma-separated attributes to leave out"))


class SortQuerySchema(Schema):
    """RFC 7644 §3.4.2.3: the order of a list."""

    sortBy = fields.String(metadata=_d("The attribute to sort by, e.g. `userName` or `meta.created`"))
    sortOrder = fields.String(
        validate=validate.OneOf(("ascending", "descending")), metadata=_d("ascending (default) or descending")
    )


class UserListQuerySchema(PageQuerySchema, SortQuerySchema, ProjectionQuerySchema):
    pass


class GroupListQuerySchema(PageQuerySchema, ProjectionQuerySchema):
    pass


class IfMatchSchema(Schema):
    if_match = fields.String(
        data_key="If-Match", metadata=_d('RFC 7644 §3.14: change only this version, e.g. W/"3"; else 412')
    )


class IfNoneMatchSchema(Schema):
    if_none_match = fields.String(
        data_key="If-None-Match", metadata=_d("RFC 7644 §3.14: 304 when the resource still has this version")
    )


# --- Admin API responses -----------------------------------------------------------------------------


class TenantSchema(TenantSettingsSchema):
    """A tenant and its settings, as the admin API returns it."""

    class Meta:
        unknown = EXCLUDE

    id = fields.UUID(dump_only=True)
    rate_limit = fields.Nested(RateLimitSchema)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    scim_base_url = fields.String(dump_only=True, metadata=_d("The SCIM base URL to give the IdP"))


class TokenSchema(Schema):
    id = fields.UUID(required=True)
    label = fields.String(required=True)
    created_by = fields.String(
        allow_none=True,
        required=True,
        validate=validate.OneOf(("operator", "org_admin", "cli")),
        metadata=_d("Who created it: the operator, an organization admin or the CLI (null: not recorded)"),
    )
    created_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(
        allow_none=True, required=True, metadata=_d("When an IdP last used it (written about once a minute)")
    )
    expires_at = fields.DateTime(allow_none=True, required=True, metadata=_d("null: never expires"))
    revoked_at = fields.DateTime(allow_none=True, required=True)
    state = fields.String(required=True, validate=validate.OneOf(("live", "expired", "revoked")))


class NewTokenSchema(Schema):
    id = fields.UUID(required=True)
    label = fields.String(required=True)
    expires_at = fields.DateTime(allow_none=True, required=True, metadata=_d("null: never expires"))
    token = fields.String(required=True, metadata=_d("The bearer token; shown only this once"))


class LicenseSummarySchema(Schema):
    seats = fields.Integer(required=True)
    used = fields.Integer(required=True)
    free = fields.Integer(required=True)
    waiting = fields.List(fields.UUID(), required=True, metadata=_d("Users waiting for a seat, in order"))
    over_allocated = fields.Boolean(required=True)


class LicenseAssignedSchema(Schema):
    user_id = fields.UUID(required=True)
    license = fields.String(allow_none=True, required=True, validate=validate.OneOf(("full", *LICENSES)))
    status = fields.String(
        required=True,
        validate=validate.OneOf(("accepted",)),
        metadata=_d("The worker applies the assignment in a moment; the audit log records it (or why not)"),
    )


class TeamRefSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)


class AdminUserSchema(Schema):
    id = fields.UUID(required=True)
    userName = fields.String(required=True)
    fullName = fields.String(required=True)
    active = fields.Boolean(required=True)
    state = fields.String(required=True, validate=validate.OneOf(("active", "inactive", "unlinked")))
    license = fields.String(allow_none=True, required=True)
    seat = fields.Boolean(required=True)
    waiting = fields.Boolean(required=True)
    provisioning_state = fields.String(required=True)
    provisionedAt = fields.DateTime(
        allow_none=True, required=True, metadata=_d("When the worker first applied the user")
    )
    teams = fields.List(fields.Nested(TeamRefSchema), required=True)
    created = fields.DateTime(required=True)
    lastModified = fields.DateTime(required=True)


class AdminUserPageSchema(Schema):
    items = fields.List(fields.Nested(AdminUserSchema), required=True)
    next_after = fields.UUID(allow_none=True, required=True, metadata=_d("`after` of the next page, if any"))


class AdminUserQuerySchema(Schema):
    state = fields.String(validate=validate.OneOf(("active", "inactive", "unlinked")))
    license = fields.String(validate=validate.OneOf(("full", "free", "free_restricted", "none")))
    q = fields.String(metadata=_d("Part of the userName or name"))


class PageLimitQuerySchema(Schema):
    limit = fields.Integer(metadata=_d("Page size: 100 by default, clamped to 1..1000"))


class AfterQuerySchema(PageLimitQuerySchema):
    after = fields.UUID(metadata=_d("The last id of the previous page"))


class AdminUserListQuerySchema(AdminUserQuerySchema, AfterQuerySchema):
    pass


class HardDeleteSchema(Schema):
    deleted = fields.UUID(required=True)
    handovers = fields.List(fields.Dict(), required=True, metadata=_d("Each board handed to an heir"))


class AuditEntrySchema(Schema):
    id = fields.Integer(required=True)
    user_id = fields.UUID(allow_none=True, required=True)
    action = fields.String(required=True)
    actor = fields.String(required=True, validate=validate.OneOf(("scim", "admin", "org_admin", "worker")))
    detail = fields.Dict(required=True)
    request_id = fields.String(allow_none=True, required=True)
    at = fields.DateTime(required=True)


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEntrySchema), required=True)
    next_before = fields.Integer(allow_none=True, required=True)


class AuditQuerySchema(PageLimitQuerySchema):
    before = fields.Integer(
        validate=validate.Range(min=1, max=2**63 - 1),  # audit ids are a bigint
        metadata=_d("The last audit id seen: older entries"),
    )
    user_id = fields.UUID()
    action = fields.String(metadata=_d("Only entries of this action (README.md lists them)"))


class LinkedGroupSchema(Schema):
    id = fields.UUID(required=True)
    displayName = fields.String(required=True)


class TeamDetailSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    member_count = fields.Integer(required=True)
    group = fields.Nested(LinkedGroupSchema, allow_none=True, required=True, metadata=_d("The linked group"))
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class TeamListSchema(Schema):
    teams = fields.List(fields.Nested(TeamDetailSchema), required=True)


class TeamMemberSchema(Schema):
    user_id = fields.UUID(required=True)
    userName = fields.String(required=True)
    added_by = fields.String(required=True)
    joined_at = fields.DateTime(required=True)


class TeamMemberPageSchema(Schema):
    members = fields.List(fields.Nested(TeamMemberSchema), required=True)
    next = fields.UUID(allow_none=True, required=True)


class BoardSchema(Schema):
    id = fields.UUID(required=True)
    title = fields.String(required=True)
    team_id = fields.UUID(allow_none=True, required=True)
    owner_id = fields.UUID(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)


class BoardPageSchema(Schema):
    boards = fields.List(fields.Nested(BoardSchema), required=True)
    next_after = fields.UUID(allow_none=True, required=True)


class BoardQuerySchema(AfterQuerySchema):
    owner_id = fields.UUID()
    team_id = fields.UUID()


# --- Operators' endpoints ----------------------------------------------------------------------------


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("ok",)))


class ReadySchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("ready", "not ready")))
    checks = fields.Dict(
        keys=fields.String(), values=fields.String(), required=True, metadata=_d("postgres: ok, or why not")
    )


class TenantLagSchema(OpenSchema):
    tenant_id = fields.UUID(required=True)
    name = fields.String(required=True)
    pending_rows = fields.Integer(required=True)
    oldest_age_seconds = fields.Float(required=True)


class OutboxHealthSchema(OpenSchema):
    pending_rows = fields.Integer(required=True)
    failing_rows = fields.Integer(required=True)
    oldest_age_seconds = fields.Float(allow_none=True, required=True)
    oldest_by_tenant = fields.List(fields.Nested(TenantLagSchema), required=True)


class QueueHealthSchema(OpenSchema):
    """`/ops/queue`: whether provisioning keeps up."""

    status = fields.String(required=True, validate=validate.OneOf(("ok", "degraded", "stalled")))
    reasons = fields.List(fields.String(), required=True)
    outbox = fields.Nested(OutboxHealthSchema, required=True)
    queue = fields.Dict(allow_none=True, required=True, metadata=_d("The arq queue; null if Redis is down"))
    jobs_last_hour = fields.Dict(allow_none=True, required=True)
    workers = fields.List(fields.Dict(), required=True, metadata=_d("Worker heartbeats, freshest first"))
    live_workers = fields.Integer(required=True)
    redis_error = fields.String(metadata=_d("Why Redis could not be read"))
