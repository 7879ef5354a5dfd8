"""The one error renderer, and authentication (SCIM bearer token / operator key) with the SCIM rate
limit."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from functools import lru_cache

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from scimsvc.ops.metrics import CLIENT_CLOSED_REQUEST
from scimsvc.ratelimit.limiter import retry_after
from scimsvc.scim.errors import Reason, ScimError, database_unavailable
from scimsvc.settings import parse_networks
from scimsvc.store.db import unavailable
from scimsvc.store.tenants import hash_token
from scimsvc.web.client_address import client_address
from scimsvc.web.keys import (
    ALLOWED_DOMAINS,
    LIMITER,
    LOG_TENANT_ID,
    RATE_LIMIT,
    REFUSAL,
    REQUEST_ID,
    SETTINGS,
    TENANT_ID,
    TOKEN_CACHE,
)
from scimsvc.web.rate_limiting import charged
from scimsvc.web.request_metrics import client_gone
from scimsvc.web.route_template import log_path
from scimsvc.web.routes.responses import SCIM_CONTENT_TYPE

log = logging.getLogger(__name__)

SCIM_PREFIX = "/scim/v2"
ADMIN_PREFIX = "/admin/v1"
# The operator key guards the admin API and the operator views that reveal tenants and load.
OPERATOR_PREFIXES = (ADMIN_PREFIX, "/ops/queue")
# Writes under these paths may revoke a token or change a tenant (scimsvc/web/token_cache.py).
CHANGES_TENANTS = (ADMIN_PREFIX, "/console/")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def error_response(
    request: web.BaseRequest, error: ScimError, headers: dict[str, str] | None = None
) -> web.Response:
    """`error` as the answer: an RFC 7644 §3.12 body (also for a request aiohttp could not parse,
    scimsvc/web/read_deadlines.py)."""
    request[REFUSAL] = error  # the provisioning log's scimType and detail (web/provisioning_log.py)
    content_type = SCIM_CONTENT_TYPE if request.path.startswith(SCIM_PREFIX) else "application/json"
    return web.Response(
        body=orjson.dumps(error.body()), status=error.status, content_type=content_type, headers=headers
    )


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> tuple[ScimError, dict[str, str]]:
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPNotFound):
        detail = f"no such endpoint: {request.method} {request.path}"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        headers["Allow"] = allowed
        detail = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        detail = (
            f"the request body is too large (limit {request.app[SETTINGS].max_body_bytes} bytes): "
            "split the change into smaller requests"
        )
    else:
        detail = exc.reason or "request failed"
    return ScimError(exc.status, detail), headers


def _passed_on(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers of an aiohttp HTTP error worth keeping on the SCIM error (rate limits, Retry-After)."""
    return {k: v for k, v in headers.items() if "ratelimit" in k.lower() or k.lower() == "retry-after"}


DATABASE_LOG_EVERY = 10.0  # seconds between warnings while the database stays unreachable
_database_log = {"at": float("-inf"), "missed": 0}


def log_database_unavailable(request: web.Request, exc: BaseException) -> None:
    # One warning per interval, not a traceback per request: during an outage every request fails alike.
    now = time.monotonic()
    if now - _database_log["at"] < DATABASE_LOG_EVERY:
        _database_log["missed"] += 1
        return
    log.warning(
        "database unavailable on %s %s (503, %d more since the last warning): %r",
        request.method,
        log_path(request),
        _database_log["missed"],
        exc,
    )
    _database_log.update(at=now, missed=0)


def _log_client_gone(request: web.Request, what: str) -> None:
    log.info(
        "client closed the connection before the answer: %s %s (%s)", request.method, log_path(request), what
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error as an RFC 7644 §3.12 body; never HTML, never a traceback."""
    try:
        return await handler(request)
    except ScimError as exc:
        headers = dict(exc.headers)
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="scimsvc"'
        return error_response(request, exc, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error, headers = _from_http_exception(request, exc)
        return error_response(request, error, {**_passed_on(exc.headers), **headers})
    except asyncio.CancelledError:  # aiohttp cancels a handler whose client left mid-body
        if client_gone(request):
            _log_client_gone(request, "cancelled")
        raise
    except Exception as exc:
        if client_gone(request):
            # Whatever broke (reading the body, writing a stream), the client left first: no server fault.
            _log_client_gone(request, repr(exc))
            return web.Response(status=CLIENT_CLOSED_REQUEST)
        if request.writer is not None and request.writer.output_size > 0:
            return _broken_off(request, exc)
        if unavailable(exc):
            log_database_unavailable(request, exc)
            error = database_unavailable()
            return error_response(request, error, error.headers)
        log.exception("unhandled error on %s %s", request.method, log_path(request))
        detail = f"internal error; quote request id {request.get(REQUEST_ID)} to the operator"
        return error_response(request, ScimError(500, detail))


def _broken_off(request: web.Request, exc: Exception) -> web.Response:
    """A streamed answer (a CSV export) failed after it had begun: no error body can follow its first
    bytes, so the connection is closed and the client sees a transfer cut short, never a status line
    inside the body. Counted as the 503 or 500 it would have been."""
    status = 503 if unavailable(exc) else 500
    log.warning(
        "answer of %s %s broke off after it had begun (%d): %r",
        request.method,
        log_path(request),
        status,
        exc,
    )
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=status)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


TOO_MANY_FAILURES = (
    "too many failed authentications from this address: retry after {seconds} s with a valid credential"
)
INVALID_TOKEN = "the bearer token is not valid (unknown, revoked or expired): ask your operator for a new one"


def client_of(request: web.Request) -> str:
    """The client's address: behind a trusted proxy, the rightmost untrusted X-Forwarded-For entry."""
    settings = request.app[SETTINGS]
    return client_address(
        request.remote, request.headers.get("X-Forwarded-For"), _networks(settings.trusted_proxies)
    )


# The access log asks for every request's client: the setting's networks are parsed once.
_networks = lru_cache(maxsize=8)(parse_networks)


def _too_many(wait_seconds: float) -> ScimError:
    seconds = retry_after(int(wait_seconds * 1000))
    return ScimError(429, TOO_MANY_FAILURES.format(seconds=seconds), headers={"Retry-After": seconds})


async def failed_authentication(request: web.Request, kind: str, what: str) -> None:
    """Log and count a wrong credential of `kind` (scim, operator) for the client's address; past the
    address's budget, answer 429 instead of 401."""
    address = client_of(request)
    wait = await request.app[LIMITER].auth_failed(kind, address)
    if wait > 0:
        raise _too_many(wait)
    log.warning(
        "failed authentication (%s) from %s on %s %s", what, address, request.method, log_path(request)
    )


async def operator_key_given(request: web.Request, given: str | None, what: str) -> bool:
    """Whether `given` is the operator key (admin API, /ops/queue, the console's sign-in).

    Unlike SCIM tokens (random and unguessable, sent by IdPs from addresses many organizations share),
    the operator key is a secret a person chose, and operators do not call from IdPs' addresses: an
    address over its budget of wrong keys gets 429 before any key is compared, else the limit would not
    stop guessing. A wrong key sent again (a script with a stale key) counts once, so it never uses up
    the budget of the address it shares with the operator.
    """
    admin_key = request.app[SETTINGS].admin_key
    if given is None or not admin_key:
        return False
    limiter = request.app[LIMITER]
    wait = limiter.auth_blocked("operator", client_of(request))
    if wait > 0:
        raise _too_many(wait)
    if secrets.compare_digest(given.encode(), admin_key.encode()):
        return True
    if limiter.new_refusal(("operator", hash_token(given))):
        await failed_authentication(request, "operator", what)
    return False


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """SCIM routes: the bearer token selects the tenant. Admin routes: the operator key."""
    path = request.path
    if path.startswith(SCIM_PREFIX):
        token = _bearer(request)
        if token is None:
            raise ScimError(401, "authentication required: send 'Authorization: Bearer <SCIM token>'")
        check = await request.app[TOKEN_CACHE].check(token)
        found = check.tenant
        if found is None:
            # Only guesses count: a revoked token (an IdP still holding it) or one refused moments ago keeps
            # getting 401 and never uses up the budget of the address other organizations call from.
            if check.guess:
                # A prefix of the token's hash tells operators which token it is; the token is never logged.
                await failed_authentication(request, "scim", f"SCIM token sha256:{check.digest.hex()[:8]}")
            raise ScimError(401, INVALID_TOKEN)
        request[LOG_TENANT_ID] = found["tenant_id"]
        if not found["scim_enabled"]:
            raise ScimError(
                403,
                "SCIM provisioning is turned off for this organization: an admin of the organization can "
                "turn it back on from the console's SCIM page",
                reason=Reason.SCIM_DISABLED,
            )
        request[TENANT_ID] = found["tenant_id"]
        request[ALLOWED_DOMAINS] = tuple(found["allowed_domains"])
        request[RATE_LIMIT] = found["rate_limit"]
        # Charged here, not by a middleware of its own: one call less on every request. The console's
        # middleware, after this one, lets every SCIM path through untouched.
        return await charged(request, handler)
    elif path.startswith(OPERATOR_PREFIXES):
        admin_key = request.app[SETTINGS].admin_key
        if not admin_key:
            raise ScimError(403, "operator endpoints are disabled: set SCIMSVC_ADMIN_KEY on the server")
        if not await operator_key_given(request, _bearer(request), "admin key"):
            raise ScimError(401, "operator endpoint: send 'Authorization: Bearer <SCIMSVC_ADMIN_KEY>'")
    if request.method in READ_METHODS or not path.startswith(CHANGES_TENANTS):
        return await handler(request)
    try:
        return await handler(request)
    finally:
        # This process forgets cached tokens at once; the others when PostgreSQL's notification lands.
        request.app[TOKEN_CACHE].forget()
