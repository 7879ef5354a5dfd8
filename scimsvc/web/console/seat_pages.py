"""Console pages of an organization's seats and settings: the seats page (figures as applied, "applying…"
while the worker has licensing changes to apply, the waiting list and why each user without a seat has
none, manual assignment), lowering seats below use (a confirmation step) and the settings page (license
rules, allowed domains, domain teams, name and rate limit).

Every change goes through `TenantSettingsSchema` and `services/tenants.py:update_tenant_settings`, the
admin API's path. An organization admin (a portal session) sees both pages and changes the license rules,
allowed domains and domain teams (the service refuses anything else from an org_admin actor); the seats,
the name and the rate limit are shown to them read-only, and the handlers that change them (and the
confirmation of lowered seats) are the operator's: a portal session gets the access gate's 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from aiohttp import web

from schemas.admin import LicenseAssignmentSchema, TenantSettingsSchema
from scimsvc.scim.errors import ScimError, not_found
from scimsvc.services import tenants as tenant_service
from scimsvc.services.licenses import (
    MANAGED_BY_SCIM,
    assign_license_by_hand,
    licensing_applying,
    seat_overview,
)
from scimsvc.web.admin_requests import action_scope, admin_scope, load, tenant_id_of
from scimsvc.web.console import forms, setting_forms
from scimsvc.web.console.i18n import Translate
from scimsvc.web.console.pages import organization, page, texts
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.console.user_pages import find_typed_user
from scimsvc.web.keys import POOL

routes = web.RouteTableDef()

# The admin API's refusal (MANAGED_BY_SCIM) in the words of this console.
MANAGED_BY_SCIM_HERE = (
    "Licenses of this organization are managed by SCIM: the identity provider assigns them while SCIM is "
    "on. Change the user's assignment in the IdP, or turn SCIM off on the SCIM page to assign licenses here."
)

PAGE_SIZE = 50
APPLYING_REFRESH_SECONDS = 2  # the seats page reloads itself this often while a change is being applied


def see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def refresh_seconds(
    request: web.Request, *, applying: bool, failed: str | None, error: str | None
) -> int | None:
    """How often a page showing "applying…" reloads itself: never on an answer to a POST or an error page
    (a reload would GET the POST's URL), nor once the worker's attempt failed (the page says so)."""
    if not applying or failed or error or request.method != "GET":
        return None
    return APPLYING_REFRESH_SECONDS


def place_of(query: Mapping[str, str], name: str, _: Translate) -> tuple[datetime, UUID] | None:
    """A page cursor, `<time>_<id>` (the place the page starts after); a 404 when it cannot be one."""
    raw = query.get(name)
    if not raw:
        return None
    at, _sep, user_id = raw.rpartition("_")
    try:
        return datetime.fromisoformat(at), UUID(user_id)
    except ValueError:
        raise not_found(_("That page of the list does not exist: start again from the first page.")) from None


def place(at: datetime, user_id: UUID) -> str:
    return f"{at.isoformat()}_{user_id}"


# --- seats and licenses ----------------------------------------------------------------------------


async def _seats_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> web.Response:
    tenant = await organization(request)
    tenant_id = UUID(tenant["id"])
    query = request.query
    waiting_after = place_of(query, "waiting_after", texts(request))
    others_after = place_of(query, "others_after", texts(request))
    overview = await seat_overview(
        request.app[POOL],
        tenant_id,
        waiting_after=waiting_after,
        others_after=others_after,
        limit=PAGE_SIZE,
    )
    # Each list's next page keeps the other list's place.
    cursors = {k: query[k] for k in ("waiting_after", "others_after") if query.get(k)}
    w_rows, o_rows = overview.waiting_rows, overview.without_seat_rows
    waiting_next = (
        urlencode({**cursors, "waiting_after": place(w_rows[-1]["waiting_since"], w_rows[-1]["id"])})
        if len(w_rows) == PAGE_SIZE
        else None
    )
    others_next = (
        urlencode({**cursors, "others_after": place(o_rows[-1]["created_at"], o_rows[-1]["id"])})
        if len(o_rows) == PAGE_SIZE
        else None
    )
    progress = overview.progress
    context = {
        "tenant": tenant,
        "section": "seats",
        "overview": overview,
        "waiting_next": waiting_next,
        "others_next": others_next,
        "paged": waiting_after is not None or others_after is not None,
        "refresh_seconds": refresh_seconds(
            request, applying=progress.applying, failed=progress.failed, error=error
        ),
        "license_choices": LicenseAssignmentSchema().fields["license"].validate.choices,  # type: ignore[union-attr]
        "form": dict(form or {}),
        "error": error,
    }
    return page(request, "seats.html", context, status=status)


@routes.get("/console/tenants/{tid}/seats")
@for_org_admins
async def seats(request: web.Request) -> web.Response:
    return await _seats_page(request)


@routes.post("/console/tenants/{tid}/seats")
async def seats_save(request: web.Request) -> web.Response:
    """Seats (the operator only). Lowering them below the seats in use first asks for a confirmation."""
    form = await request.post()
    tenant_id = tenant_id_of(request)
    try:
        seats = setting_forms.seats(form, texts(request))
        changes = load(TenantSettingsSchema(), {"seats": seats})
        if form.get("confirmed") != "yes":
            overview = await seat_overview(request.app[POOL], tenant_id, limit=0)
            if seats < overview.used and seats < overview.seats:
                raise see_other(f"/console/tenants/{tenant_id}/seats/lower?seats={seats}")
        await tenant_service.update_tenant_settings(action_scope(request), tenant_id, changes)
    except ScimError as exc:
        return await _seats_page(request, status=exc.status, error=exc.detail, form=form)
    raise see_other(f"/console/tenants/{tenant_id}/seats?done=seats-saved")


@routes.get("/console/tenants/{tid}/seats/lower")
async def seats_lower(request: web.Request) -> web.Response:
    """The confirmation of seats lowered below use (the operator only): what happens, and a form that
    POSTs it confirmed."""
    try:
        seats = setting_forms.seats(request.query, texts(request))
    except ScimError as exc:
        return await _seats_page(request, status=exc.status, error=exc.detail)
    tenant = await organization(request)
    overview = await seat_overview(request.app[POOL], UUID(tenant["id"]), limit=0)
    context = {"tenant": tenant, "section": "seats", "seats": seats, "overview": overview}
    return page(request, "seats_lower.html", context)


@routes.post("/console/tenants/{tid}/seats/assign")
async def license_assign(request: web.Request) -> web.Response:
    """Manual assignment: the same service as the admin API, so SCIM's lock (409) holds here too."""
    form = await request.post()
    tenant_id = tenant_id_of(request)
    _ = texts(request)
    try:
        license = forms.text(form, "license")
        plain = {"license": _("Choose the license from the list.")}
        data = forms.load_form(
            LicenseAssignmentSchema(), {"license": None if license == "none" else license}, plain
        )
        user_id = await find_typed_user(request.app[POOL], tenant_id, forms.text(form, "user"), _)
        await assign_license_by_hand(admin_scope(request, tenant_id), user_id, data["license"])
    except ScimError as exc:
        detail = _(MANAGED_BY_SCIM_HERE) if exc.detail == MANAGED_BY_SCIM else exc.detail
        return await _seats_page(request, status=exc.status, error=detail, form=form)
    raise see_other(f"/console/tenants/{tenant_id}/seats?done=license-assigned")


# --- settings --------------------------------------------------------------------------------------


async def _settings_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> web.Response:
    tenant = await organization(request)
    tenant_id = UUID(tenant["id"])
    pool = request.app[POOL]
    team_ids = await tenant_service.team_ids_by_name(pool, tenant_id)
    progress = await licensing_applying(pool, tenant_id)
    names = {str(team_id): name for name, team_id in team_ids.items()}
    context = {
        "tenant": tenant,
        "section": "settings",
        "progress": progress,
        "refresh_seconds": refresh_seconds(
            request, applying=progress.applying, failed=progress.failed, error=error
        ),
        "domain_team_lines": setting_forms.domain_team_lines(tenant["domain_teams"], names),
        "teams": sorted(team_ids),
        "rate_presets": setting_forms.RATE_PRESETS,
        "form": dict(form or {}),
        "error": error,
    }
    return page(request, "settings.html", context, status=status)


@routes.get("/console/tenants/{tid}/settings")
@for_org_admins
async def settings(request: web.Request) -> web.Response:
    return await _settings_page(request)


async def _save(request: web.Request, read: Any, done: str) -> web.Response:
    form = await request.post()
    tenant_id = tenant_id_of(request)
    try:
        changes = load(TenantSettingsSchema(), await read(form, tenant_id))
        await tenant_service.update_tenant_settings(action_scope(request), tenant_id, changes)
    except ScimError as exc:
        return await _settings_page(request, status=exc.status, error=exc.detail, form=form)
    raise see_other(f"/console/tenants/{tenant_id}/settings?done={done}")


@routes.post("/console/tenants/{tid}/settings/licenses")
@for_org_admins
async def license_rules_save(request: web.Request) -> web.Response:
    async def read(form: Mapping[str, Any], _: UUID) -> dict[str, Any]:
        return setting_forms.license_rules(form, texts(request))

    return await _save(request, read, "license-rules-saved")


@routes.post("/console/tenants/{tid}/settings/domains")
@for_org_admins
async def domains_save(request: web.Request) -> web.Response:
    async def read(form: Mapping[str, Any], tenant_id: UUID) -> dict[str, Any]:
        team_ids = await tenant_service.team_ids_by_name(request.app[POOL], tenant_id)
        return {
            "allowed_domains": setting_forms.allowed_domains(form, texts(request)),
            "domain_teams": setting_forms.domain_teams(form, team_ids, texts(request)),
        }

    return await _save(request, read, "domains-saved")


@routes.post("/console/tenants/{tid}/settings/organization")
async def organization_save(request: web.Request) -> web.Response:
    """The name and the rate limit: the operator's (a portal session gets the access gate's 404)."""

    async def read(form: Mapping[str, Any], _: UUID) -> dict[str, Any]:
        return setting_forms.organization(form, texts(request))

    return await _save(request, read, "organization-saved")
