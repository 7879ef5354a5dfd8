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
