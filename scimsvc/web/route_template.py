"""Which route a request matched, by its template: what metrics, the access log and rate limiting key on."""

from __future__ import annotations

from aiohttp.web_request import BaseRequest

# The label of a path no route matched: one for all of them, so that neither a scanner's paths nor what
# an unmatched path carries reach a metric label or a log line.
UNMATCHED = "unmatched"


def route_template(request: BaseRequest) -> str | None:
    """The template of the route the request matched (`/scim/v2/Users/{id}`), or None when none did
    (an unknown path, or a request aiohttp refused before routing it)."""
    try:
        resource = request.match_info.route.resource  # type: ignore[attr-defined]
    except (AttributeError, AssertionError):  # refused before routing: a BaseRequest without match_info
        return None
    return resource.canonical if resource is not None else None


# Paths whose last segment is a secret (a portal link's token): never written to a log as they are.
SECRET_PATH_PREFIXES = ("/console/portal/",)


def log_path(request: BaseRequest) -> str:
    """The request's path as a log line may show it: a path holding a secret (a portal link's token:
    `/console/portal/<token>`, still valid if unused) is shown by its route's template, or its prefix
    when no route matched; any other path as it is."""
    path = request.path
    for prefix in SECRET_PATH_PREFIXES:
        if path.startswith(prefix):
            return route_template(request) or prefix + "{redacted}"
    return path
