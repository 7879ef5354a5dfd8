"""Which listener serves what, with SCIMSVC_INTERNAL_PORT set (README.md, Docker Compose).

`scimsvc serve` then listens twice, one app and one pool behind both: the main port serves SCIM and the
health checks, the internal port serves everything. The operator's paths (admin API, console, metrics,
the queue view, the API docs) answer 404 on the main port, as a path that does not exist does, so that a
proxy that forwards the main port whole still publishes none of them.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from scimsvc.web.keys import SETTINGS
from scimsvc.web.route_template import route_template

# Route templates under these belong to the internal listener only.
INTERNAL_PREFIXES = ("/admin/", "/console", "/metrics", "/ops/queue", "/api/docs")


def internal_only(template: str | None) -> bool:
    """Whether a request that matched the route `template` is for the internal listener only."""
    return template is not None and template.startswith(INTERNAL_PREFIXES)


def local_port(request: web.BaseRequest) -> int | None:
    """The port of this server that the request's connection came in on (None once it is closed)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    return sockname[1] if isinstance(sockname, tuple) else None


@web.middleware
async def listener_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On any port but SCIMSVC_INTERNAL_PORT, an operator's path is not there: 404 (error_middleware's)."""
    if internal_only(route_template(request)) and local_port(request) != request.app[SETTINGS].internal_port:
        raise web.HTTPNotFound()
    return await handler(request)
