"""The OpenAPI 3 document and Swagger UI, built by aiohttp-apigami from the routes' marshmallow schemas.

Handlers carry apigami's decorators (`docs`, `request_schema`, `response_schema`, ...) for what is
particular to them; what follows from the middlewares (which credential a prefix needs, the errors
that authentication, rate limits and body parsing add, SCIM's media type) is written into the document
here, from the same constants the middlewares use. apigami only documents: its validation middleware
is not installed, the handlers validate and answer SCIM errors themselves.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web
from aiohttp_apigami import docs, response_schema, setup_aiohttp_apispec
from aiohttp_apigami.constants import SWAGGER_DICT
from aiohttp_apigami.swagger_ui import NAME_SWAGGER_DOCS, NAME_SWAGGER_SPEC

from schemas.messages import ErrorSchema
from scimsvc import __version__
from scimsvc.web.middlewares import OPERATOR_PREFIXES, SCIM_PREFIX
from scimsvc.web.routes.responses import SCIM_CONTENT_TYPE

DOCS_PATH = "/api/docs"
SPEC_PATH = "/api/docs/openapi.json"
STATIC_PATH = "/api/docs/static"
OPENAPI_VERSION = "3.0.3"

SCIM_TOKEN = "scimToken"
OPERATOR_KEY = "operatorKey"
SECURITY_SCHEMES = {
    SCIM_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": "A tenant's SCIM token (from POST /admin/v1/tenants/{tid}/scim/tokens)",
    },
    OPERATOR_KEY: {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator key (SCIMSVC_ADMIN_KEY) for /admin/v1 and /ops/queue",
    },
}

ERRORS = {
    400: "Invalid request: the body, a query parameter or a path (SCIM scimType says which kind)",
    401: "No credential, or an unknown, revoked or expired one",
    403: "Refused: SCIM is disabled for the tenant, or the operator key is not configured",
    404: "No such resource",
    409: "Conflicts with the current state: an existing resource (scimType uniqueness), or a refusal why",
    412: "If-Match names an older version (scimType preconditionFailed)",
    413: "The request body is larger than the server accepts",
    429: "Over the tenant's SCIM budget, or too many failed authentications: see Retry-After",
    503: "Not ready",
}

Handler = TypeVar("Handler", bound=Callable[..., Any])

# apigami 0.x keeps its document under a string app key (for aiohttp-apispec compatibility); aiohttp warns
# about that at every start-up. Nothing of ours is concerned.
warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module="aiohttp_apigami")


def errors(*statuses: int) -> Callable[[Handler], Handler]:
    """Document that a handler answers these statuses with an RFC 7644 §3.12 error body."""

    def decorate(handler: Handler) -> Handler:
        for status in statuses:
            handler = response_schema(ErrorSchema, status, description=ERRORS[status])(handler)
        return handler

    return decorate


def _security(path: str) -> str | None:
    """The security scheme the auth middleware applies to `path` (None: public)."""
    if path.startswith(SCIM_PREFIX):
        return SCIM_TOKEN
    if path.startswith(OPERATOR_PREFIXES):
        return OPERATOR_KEY
    return None


def _error_response(status: int, media_type: str) -> dict[str, Any]:
    return {
        "description": ERRORS[status],
        "content": {media_type: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _with_media_type(content: dict[str, Any], media_type: str) -> dict[str, Any]:
    return {(media_type if k == "application/json" else k): v for k, v in content.items()}


def _finish_operation(path: str, operation: dict[str, Any], operation_id: str) -> None:
    # apigami's `docs` always adds Swagger 2's `produces`, which OpenAPI 3 does not allow.
    operation.pop("produces", None)
    operation.pop("consumes", None)
    operation.setdefault("operationId", operation_id)
    scim = path.startswith(SCIM_PREFIX)
    media_type = SCIM_CONTENT_TYPE if scim else "application/json"
    responses = operation["responses"]
    body = operation.get("requestBody")
    if body is not None:
        body["required"] = True  # every documented body is required (apigami writes False)
        if scim:  # RFC 7644 §8.1: application/scim+json, and plain JSON is accepted
            schema = body["content"]["application/json"]
            body["content"] = {SCIM_CONTENT_TYPE: schema, "application/json": schema}
        for status in (400, 413):
            responses.setdefault(str(status), _error_response(status, media_type))
    scheme = _security(path)
    if scheme is not None:
        operation["security"] = [{scheme: []}]
        for status in (401, 403, 429):
            responses.setdefault(str(status), _error_response(status, media_type))
    for status, response in responses.items():
        if not response.get("description"):
            response["description"] = HTTPStatus(int(status)).phrase
        if scim and "content" in response:
            response["content"] = _with_media_type(response["content"], SCIM_CONTENT_TYPE)


def _drop_ref_properties(schemas: dict[str, Any]) -> None:
    """SCIM's `$ref` attributes (a member's URI) are not listed as properties: OpenAPI tools (Swagger UI,
    resolvers) take any "$ref" key for a reference. Objects stay open, so the attribute is still valid."""
    for schema in schemas.values():
        prop = schema.get("properties", {}).pop("$ref", None)
        if prop is not None:
            note = f"Also `$ref`: {prop.get('description', 'a URI')} (a string)."
            schema["description"] = f"{schema['description']} {note}" if schema.get("description") else note


def finish_document(document: dict[str, Any], app: web.Application) -> dict[str, Any]:
    """Add what the middlewares decide to apigami's document; drop HEAD (aiohttp's twin of each GET)."""
    names: dict[tuple[str, str], str] = {}
    for route in app.router.routes():
        if route.resource is not None:
            handler = getattr(route.handler, "__name__", route.method.lower())
            names[(route.method.lower(), route.resource.canonical)] = handler
    _drop_ref_properties(document.get("components", {}).get("schemas", {}))
    used: set[str] = set()
    for path, operations in document.get("paths", {}).items():
        operations.pop("head", None)
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue  # path-level `parameters`
            operation_id = names.get((method, path), method)
            if operation_id in used:
                operation_id = f"{operation_id}_{method}_{path.strip('/').replace('/', '_')}"
            used.add(operation_id)
            _finish_operation(path, operation, operation_id)
    return document


async def _finish_on_startup(app: web.Application) -> None:
    finish_document(app[SWAGGER_DICT], app)  # in place: apigami's handler serves this dict


def setup_openapi(app: web.Application) -> None:
    """Serve the OpenAPI document at /api/docs/openapi.json and Swagger UI at /api/docs (no auth).

    The document is built at start-up, from every route registered by then.
    """
    apispec = setup_aiohttp_apispec(
        app,
        title="scimsvc",
        version=__version__,
        url=SPEC_PATH,
        swagger_path=DOCS_PATH,
        static_path=STATIC_PATH,
        openapi_version=OPENAPI_VERSION,
        info={
            "description": "Multi-tenant SCIM 2.0 service provider: SCIM under /scim/v2 (a tenant's "
            "token), the admin API under /admin/v1 (the operator key), operators' endpoints under /ops. "
            "Every error has an RFC 7644 §3.12 body."
        },
    )
    for name, scheme in SECURITY_SCHEMES.items():
        apispec.spec.components.security_scheme(name, scheme)
    apispec.spec.components.schema("Error", schema=ErrorSchema)  # the name the added errors refer to
    _document_docs_routes(app)
    app.on_startup.append(_finish_on_startup)  # after apigami's own start-up hook, which builds it


def _document_docs_routes(app: web.Application) -> None:
    tags = ["API documentation"]
    for name, summary, media_type in (
        (NAME_SWAGGER_SPEC, "This OpenAPI document", "application/json"),
        (NAME_SWAGGER_DOCS, "Swagger UI", "text/html"),
    ):
        schema = {"type": "object"} if media_type == "application/json" else {"type": "string"}
        for route in app.router[name]:
            if route.method == "GET":
                docs(
                    tags=tags,
                    summary=summary,
                    responses={200: {"description": summary, "content": {media_type: {"schema": schema}}}},
                )(route.handler)
