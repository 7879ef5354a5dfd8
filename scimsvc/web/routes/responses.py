"""Reading JSON request bodies and writing SCIM / JSON responses."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from scimsvc.scim.body_shape import MAX_DEPTH, check_shape
from scimsvc.scim.errors import invalid_syntax
from scimsvc.web.keys import SCIM_BODY

SCIM_CONTENT_TYPE = "application/scim+json"


async def read_json(request: web.Request, *, max_depth: int | None = MAX_DEPTH) -> Any:
    """The request body as JSON, or a 400 invalidSyntax saying what is wrong with it (including a
    body nested deeper than `max_depth`: see `scimsvc.scim.body_shape`)."""
    body = await _parse(request)
    return body if max_depth is None else check_shape(body, max_depth=max_depth, names=False)


async def read_scim_json(request: web.Request) -> Any:
    """`read_json` for a SCIM body, whose member names are case-insensitive: a name given twice in
    different case is a 400 too."""
    return check_shape(await _parse(request))


async def _parse(request: web.Request) -> Any:
    raw = await request.read()  # raises 413 past client_max_size; the error middleware renders it
    if not raw.strip():
        raise invalid_syntax("the request body is empty: send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_syntax(f"the request body is not valid JSON: {exc}") from None
    request[SCIM_BODY] = body  # parsed once: the provisioning log summarizes it (web/provisioning_log.py)
    return body


def scim_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type=SCIM_CONTENT_TYPE, headers=headers
    )


def json_response(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
