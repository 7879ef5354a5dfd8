"""SCIM responses for Users, Groups and the root .search, chained in one place: a list query's paging,
projection and sort; each resource rendered and projected; a resource's ETag and Location; the 304 of
If-None-Match. Routes parse their body, call a service, then hand its rows to one of these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import asyncpg
from aiohttp import web

from schemas.catalog import ResourceTypeDef
from schemas.group import GROUP_RESOURCE
from schemas.user import USER_RESOURCE
from scimsvc.scim.resources import (
    Projection,
    list_response,
    not_modified,
    parse_paging,
    parse_projection,
    project,
    render_group,
    render_user,
    weak_etag,
)
from scimsvc.scim.sorting import Sort, parse_sort
from scimsvc.services import groups as group_service
from scimsvc.services import users as user_service
from scimsvc.services.changes import Scope
from scimsvc.web.keys import (
    ALLOWED_DOMAINS,
    LIMITER_REDIS,
    NEW_USERS,
    POOL,
    REDIS,
    REQUEST_ID,
    SETTINGS,
    TENANT_ID,
    USER_DELETES,
    USER_READS,
    USER_UPDATES,
    WRITTEN,
)
from scimsvc.web.routes.responses import scim_response


def scope_of(request: web.Request) -> Scope:
    """What a SCIM request acts on: its tenant (from the token), the resources and settings of the app."""
    app = request.app
    return Scope(
        pool=app[POOL],
        redis=app[REDIS],
        limiter_redis=app[LIMITER_REDIS],
        settings=app[SETTINGS],
        tenant_id=request[TENANT_ID],
        request_id=request.get(REQUEST_ID),
        allowed_domains=request[ALLOWED_DOMAINS],
        new_users=app[NEW_USERS],
        user_updates=app[USER_UPDATES],
        user_deletes=app[USER_DELETES],
        user_reads=app[USER_READS],
        written=request.get(WRITTEN),  # the provisioning log's list, when it is on
    )


def base_url(request: web.Request) -> str:
    """The SCIM base URL resources' `location` and `$ref` start with."""
    return request.app[SETTINGS].public_url + "/scim/v2"


NO_PROJECTION = Projection()


def projection_of(query: Mapping[str, str], rtype: ResourceTypeDef) -> Projection:
    """The projection `query` asks for; most requests name neither attributes nor excludedAttributes and
    share one (`parse_projection` would build the same, each time)."""
    if "attributes" not in query and "excludedAttributes" not in query:
        return NO_PROJECTION
    return parse_projection(query, rtype)


def paging(request: web.Request, query: Mapping[str, str]) -> tuple[int, int]:
    """(startIndex, count) of a list query, within the page sizes the settings allow."""
    settings = request.app[SETTINGS]
    return parse_paging(query, default_count=settings.default_page_size, max_count=settings.max_page_size)


Renderer = Callable[[web.Request, Sequence[asyncpg.Record], Projection], Awaitable[list[dict[str, Any]]]]


class Lister(Protocol):
    """A service's list function (`list_users`, `list_groups`): the total and one page of rows."""

    async def __call__(
        self, scope: Scope, *, filter_text: str | None, start_index: int, count: int, sort: Sort | None
    ) -> tuple[int, list[asyncpg.Record]]: ...


async def render_users(
    request: web.Request, rows: Sequence[asyncpg.Record], projection: Projection
) -> list[dict[str, Any]]:
    """Users as SCIM, projected."""
    url = base_url(request)
    return [project(render_user(r, base_url=url), projection, USER_RESOURCE) for r in rows]


async def render_groups(
    request: web.Request, rows: Sequence[asyncpg.Record], projection: Projection
) -> list[dict[str, Any]]:
    """Groups as SCIM, projected, reading the members of all of them in one query, and only if they are
    returned."""
    scope = scope_of(request)
    members = (
        await group_service.members_of(scope, [r["id"] for r in rows]) if projection.wants("members") else {}
    )
    url = base_url(request)
    display = projection.names("members", "display")
    return [
        project(
            render_group(r, members.get(r["id"]), base_url=url, member_display=display),
            projection,
            GROUP_RESOURCE,
        )
        for r in rows
    ]


async def list_page(
    request: web.Request,
    query: Mapping[str, str],
    rtype: ResourceTypeDef,
    *,
    fetch: Lister,
    render: Renderer,
) -> web.Response:
    """The ListResponse for a list query (GET /Users, or the body of POST /Users/.search): paging,
    projection and sort parsed in that order, one page fetched, each resource rendered and projected."""
    start_index, count = paging(request, query)
    projection = projection_of(query, rtype)
    sort = parse_sort(query.get("sortBy"), query.get("sortOrder"), rtype)
    total, rows = await fetch(
        scope_of(request), filter_text=query.get("filter"), start_index=start_index, count=count, sort=sort
    )
    resources = await render(request, rows, projection)
    return listed(resources, total=total, start_index=start_index)


async def users_list(request: web.Request, query: Mapping[str, str]) -> web.Response:
    """GET /Users, or POST /Users/.search with `query` from its body."""
    return await list_page(request, query, USER_RESOURCE, fetch=user_service.list_users, render=render_users)


async def groups_list(request: web.Request, query: Mapping[str, str]) -> web.Response:
    """GET /Groups, or POST /Groups/.search with `query` from its body."""
    return await list_page(
        request, query, GROUP_RESOURCE, fetch=group_service.list_groups, render=render_groups
    )


def listed(resources: Sequence[dict[str, Any]], *, total: int, start_index: int) -> web.Response:
    """Rendered resources as an RFC 7644 ListResponse."""
    return scim_response(list_response(resources, total=total, start_index=start_index))


def not_modified_response(request: web.Request, version: int) -> web.Response | None:
    """304 with the ETag when If-None-Match names the resource's current version; None otherwise."""
    if not_modified(request.headers.get("If-None-Match"), version):
        return web.Response(status=304, headers={"ETag": weak_etag(version)})
    return None


def changed_response(version: int) -> web.Response:
    """204 with the resource's new ETag: changed, and no body asked for."""
    return web.Response(status=204, headers={"ETag": weak_etag(version)})


def resource_response(
    body: dict[str, Any], projection: Projection, rtype: ResourceTypeDef, *, status: int = 200
) -> web.Response:
    """A rendered resource, projected, with its ETag (`meta.version`) and on 201 its Location."""
    headers = {"ETag": body["meta"]["version"]}
    if status == 201:
        headers["Location"] = body["meta"]["location"]
    return scim_response(project(body, projection, rtype), status=status, headers=headers)


def user_response(request: web.Request, row: Mapping[str, Any], *, status: int = 200) -> web.Response:
    """The user as SCIM, projected by the query's attributes/excludedAttributes (on writes too)."""
    body = render_user(row, base_url=base_url(request))
    return resource_response(body, projection_of(request.query, USER_RESOURCE), USER_RESOURCE, status=status)


async def group_response(
    request: web.Request,
    row: Mapping[str, Any],
    *,
    status: int = 200,
    written: Sequence[str] | None = None,
) -> web.Response:
    """The group as SCIM, projected by the query, reading its members only when they are returned.

    `written`: the member ids the request just wrote, rendered without reading them back, unless their
    display (users' names, in the database) is asked for.
    """
    projection = projection_of(request.query, GROUP_RESOURCE)
    members: Iterable[tuple[Any, str]] | None = None
    display = projection.names("members", "display")
    if projection.wants("members"):
        if written is not None and not display:
            members = ((user_id, "") for user_id in sorted(written))  # by id, as a read returns them
        else:
            members = (await group_service.members_of(scope_of(request), [row["id"]]))[row["id"]]
    body = render_group(row, members, base_url=base_url(request), member_display=display)
    return resource_response(body, projection, GROUP_RESOURCE, status=status)
