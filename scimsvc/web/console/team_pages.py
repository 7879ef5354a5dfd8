"""The console's teams pages: the list with each team's linked SCIM group, a team with its members, linking a
SCIM group to a team (a re-link), and deleting a team after a confirmation.

Organization admins (portal sessions) may use every one of them for their own organization.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from aiohttp import web

from schemas.admin import TeamGroupLinkSchema, TeamSchema
from scimsvc.scim.errors import ScimError, invalid_value, not_found
from scimsvc.services import teams as team_service
from scimsvc.web.admin_requests import action_scope, query_id, team_id_of, tenant_id_of, user_id_of
from scimsvc.web.console import forms
from scimsvc.web.console.pages import organization, page, texts
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.console.user_pages import find_typed_user
from scimsvc.web.keys import POOL

routes = web.RouteTableDef()

PAGE_SIZE = 50
APPLYING_REFRESH_SECONDS = 3
NO_TEAM = "There is no such team in this organization: it was deleted, or the address is wrong."


async def _team(request: web.Request, tenant_id: UUID) -> Any:
    """The URL's team of this organization; a 404 in the console's words (the admin API names ids)."""
    try:
        return await team_service.team_or_404(request.app[POOL], tenant_id, team_id_of(request))
    except ScimError as exc:
        if exc.status != 404:
            raise
        raise not_found(texts(request)(NO_TEAM)) from None


def _team_name(request: web.Request) -> dict[str, str]:
    return {"name": texts(request)("A team name is 1 to 200 characters of text.")}


def _name_taken(request: web.Request, exc: ScimError, name: str) -> str | None:
    """A name another team has (the service's 409), in the page's words; None for any other error."""
    if exc.status != 409:
        return None
    _ = texts(request)
    return _("There is already a team named “{name}” in this organization: choose another name.", name=name)


def _team_url(tenant_id: UUID, team_id: UUID | None = None, done: str | None = None) -> str:
    url = f"/console/tenants/{tenant_id}/teams" + (f"/{team_id}" if team_id else "")
    return url + (f"?done={done}" if done else "")


async def _teams_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> web.Response:
    tenant = await organization(request)
    rows = await team_service.list_teams(request.app[POOL], UUID(tenant["id"]))
    context = {"tenant": tenant, "section": "teams", "teams": rows, "form": dict(form or {}), "error": error}
    return page(request, "teams.html", context, status=status)


@routes.get("/console/tenants/{tid}/teams")
@for_org_admins
async def teams_list(request: web.Request) -> web.Response:
    return await _teams_page(request)


@routes.post("/console/tenants/{tid}/teams")
@for_org_admins
async def team_create(request: web.Request) -> web.Response:
    form = await request.post()
    tenant_id = tenant_id_of(request)
    name = forms.text(form, "name")
    try:
        name = forms.load_form(TeamSchema(), {"name": name}, _team_name(request))["name"]
        await team_service.create_team(action_scope(request), tenant_id, name)
    except ScimError as exc:
        error = _name_taken(request, exc, name) or exc.detail
        return await _teams_page(request, status=exc.status, error=error, form=form)
    raise web.HTTPSeeOther(_team_url(tenant_id, done="team-created"))


async def _team_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> web.Response:
    tenant = await organization(request)
    tenant_id = UUID(tenant["id"])
    pool = request.app[POOL]
    team = await _team(request, tenant_id)
    after = query_id(request.query, "after", "user")
    members = await team_service.members_page(pool, team["id"], after=after, limit=PAGE_SIZE)
    applying = False
    linkable: list[Any] = []
    if team["group_id"] is not None:
        applying = await team_service.group_applying(pool, tenant_id, team["group_id"])
    else:
        linkable = await team_service.unlinked_groups(pool, tenant_id)
    context = {
        "tenant": tenant,
        "section": "teams",
        "team": team,
        "members": members,
        "next_after": str(members[-1]["user_id"]) if len(members) == PAGE_SIZE else None,
        "linkable": linkable,
        "applying": applying,
        "refresh_seconds": APPLYING_REFRESH_SECONDS,
        "form": dict(form or {}),
        "error": error,
    }
    return page(request, "team.html", context, status=status)


@routes.get("/console/tenants/{tid}/teams/{team_id}")
@for_org_admins
async def team_detail(request: web.Request) -> web.Response:
    return await _team_page(request)


@routes.post("/console/tenants/{tid}/teams/{team_id}/rename")
@for_org_admins
async def team_rename(request: web.Request) -> web.Response:
    form = await request.post()
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    name = forms.text(form, "name")
    try:
        name = forms.load_form(TeamSchema(), {"name": name}, _team_name(request))["name"]
        await team_service.rename_team(action_scope(request), tenant_id, team_id, name)
    except ScimError as exc:
        error = _name_taken(request, exc, name) or exc.detail
        return await _team_page(request, status=exc.status, error=error, form=form)
    raise web.HTTPSeeOther(_team_url(tenant_id, team_id, "team-renamed"))


@routes.post("/console/tenants/{tid}/teams/{team_id}/group")
@for_org_admins
async def team_link_group(request: web.Request) -> web.Response:
    """Link a SCIM group linked to no team to this team; the worker then adds the group's members."""
    form = await request.post()
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    await _team(request, tenant_id)
    try:
        raw = forms.text(form, "group_id")
        if not raw:
            raise invalid_value(texts(request)("Choose the SCIM group to link to this team."))
        plain = {"group_id": texts(request)("Choose the SCIM group to link to this team.")}
        group_id = forms.load_form(TeamGroupLinkSchema(), {"group_id": raw}, plain)["group_id"]
        await team_service.link_group(action_scope(request), tenant_id, team_id, group_id)
    except ScimError as exc:
        error = exc.detail
        if exc.status == 404:  # the team was just found: the group is gone (or another organization's)
            error = texts(request)("That SCIM group is not in this organization any more: choose another.")
        elif exc.status == 409:  # the team or the group was linked meanwhile (services/teams.py:link_group)
            error = texts(request)(
                "This team or that SCIM group was linked meanwhile: a team follows one group, and a group "
                "links to one team. The page now shows the links as they are."
            )
        return await _team_page(request, status=exc.status, error=error, form=form)
    raise web.HTTPSeeOther(_team_url(tenant_id, team_id, "team-linked"))


@routes.get("/console/tenants/{tid}/teams/{team_id}/delete")
@for_org_admins
async def team_delete_confirm(request: web.Request) -> web.Response:
    """The confirmation of a team's deletion: what goes (memberships) and what stays (the linked group)."""
    tenant = await organization(request)
    team = await _team(request, UUID(tenant["id"]))
    return page(request, "team_delete.html", {"tenant": tenant, "section": "teams", "team": team})


@routes.post("/console/tenants/{tid}/teams/{team_id}/delete")
@for_org_admins
async def team_delete(request: web.Request) -> web.Response:
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    if not await team_service.delete_team(action_scope(request), tenant_id, team_id):
        raise not_found(texts(request)(NO_TEAM))
    raise web.HTTPSeeOther(_team_url(tenant_id, done="team-deleted"))


@routes.post("/console/tenants/{tid}/teams/{team_id}/members")
@for_org_admins
async def member_add(request: web.Request) -> web.Response:
    """Manual membership: allowed with SCIM on (a later group push overwrites it)."""
    form = await request.post()
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    pool = request.app[POOL]
    await _team(request, tenant_id)
    try:
        user_id = await find_typed_user(pool, tenant_id, forms.text(form, "user"), texts(request))
        if not await team_service.add_member(action_scope(request), tenant_id, team_id, user_id):
            raise not_found(texts(request)("There is no such user in this organization."))
    except ScimError as exc:
        return await _team_page(request, status=exc.status, error=exc.detail, form=form)
    raise web.HTTPSeeOther(_team_url(tenant_id, team_id, "member-added"))


@routes.post("/console/tenants/{tid}/teams/{team_id}/members/{uid}/remove")
@for_org_admins
async def member_remove(request: web.Request) -> web.Response:
    tenant_id, team_id = tenant_id_of(request), team_id_of(request)
    user_id = user_id_of(request)
    if not await team_service.remove_member(action_scope(request), tenant_id, team_id, user_id):
        error = texts(request)("This user is not a member of this team (any more).")
        return await _team_page(request, status=404, error=error)
    raise web.HTTPSeeOther(_team_url(tenant_id, team_id, "member-removed"))
