"""Console pages of webhook endpoints: a tenant's (`/console/tenants/{tid}/webhooks`) and the operator's, for
every tenant (`/console/webhooks`). The same services and schemas as the admin API
(`web/routes/admin_webhooks.py`).

A new or rotated secret is shown once (never in a URL, never on a reload): the POST answers 303 to the
endpoint's `/secret` page and hands the secret over in `reveal.py`'s one-minute cookie, bound to this
session and owner, which that page clears, so reloading it neither shows the secret again nor adds an
endpoint or rotates again. The secret is derived, not stored; no other GET shows it. Disabling, rotating
and deleting ask first (`confirm.html`, a GET page whose form POSTs with `confirm=on`).

An organization admin's portal session opens the tenant's pages and actions (`for_org_admins` on the
`TENANT` handlers), never the operator's: each URL has its own handler, so marking one leaves the other
operator-only. Every endpoint, delivery and event id is looked up among the URL's owner's (`owner_of`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from aiohttp import web
from marshmallow import Schema
from multidict import MultiDictProxy

from schemas.webhooks import (
    MAX_DESCRIPTION,
    MAX_URL,
    WebhookCreateSchema,
    WebhookReplaySchema,
    WebhookUpdateSchema,
)
from scimsvc.product.events import EVENT_TYPES
from scimsvc.product.webhooks import url_problem
from scimsvc.scim.errors import ScimError, invalid_value, not_found
from scimsvc.services import webhooks
from scimsvc.services.audit import operator_audit_page
from scimsvc.web.admin_requests import action_scope, load
from scimsvc.web.console import forms, reveal
from scimsvc.web.console.pages import confirmation, organization, page, texts
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.console.session import SESSION, is_portal
from scimsvc.web.console.user_pages import detail_lines
from scimsvc.web.keys import POOL, SETTINGS
from scimsvc.web.webhook_views import (
    delivery_before,
    endpoint_id_of,
    owner_of,
    render_delivery,
    render_endpoint,
)

routes = web.RouteTableDef()

OPERATOR = "/console/webhooks"
TENANT = "/console/tenants/{tid}/webhooks"
DELIVERIES_SHOWN = 25
AUDIT_SHOWN = 50  # the operator's endpoints' latest changes (all of them: GET /admin/v1/audit)
# Notices after a change (Post/Redirect/Get): fixed texts, as web/console/pages.py:NOTICES.
NOTICES = {
    "webhook-saved": "Endpoint saved.",
    "webhook-enabled": "Endpoint enabled: deliveries resume, and its failure clock starts afresh.",
    "webhook-disabled": "Endpoint disabled: nothing is sent to it until it is enabled again.",
    "webhook-deleted": "Endpoint deleted, with its deliveries.",
    "webhook-replayed": "Replay queued: the new deliveries are at the top of the list below.",
}
SECRET_COOKIE = "scimsvc_new_webhook_secret"
REVEAL_PURPOSE = "new-webhook-secret"  # the HMAC key of its cookie (`reveal.py`)


def _endpoint_of(request: web.Request) -> tuple[UUID | None, UUID]:
    """The endpoint a URL names: its owner (None: the operator) and its id."""
    return owner_of(request), endpoint_id_of(request)


def _base(request: web.Request) -> str:
    tid = request.match_info.get("tid")
    return TENANT.replace("{tid}", tid) if tid is not None else OPERATOR


async def _context(request: web.Request, **extra: Any) -> dict[str, Any]:
    """What every webhook page shows: the tenant (for its tabs) or none (the operator's endpoints)."""
    tenant = await organization(request) if owner_of(request) is not None else None
    return {
        "tenant": tenant,
        "section": "webhooks",
        "base": _base(request),
        "event_types": EVENT_TYPES,
        "form": {},
        **extra,
    }


def _endpoint_payload(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The add and edit forms as a `WebhookCreateSchema` payload: no type ticked means every type."""
    return {
        "url": forms.text(form, "url"),
        "description": forms.text(form, "description"),
        "event_types": [t for t in form.getall("event_types", []) if isinstance(t, str)],
    }


def _portal(request: web.Request) -> bool:
    return is_portal(request.get(SESSION))


def _endpoint_fields(request: web.Request, typed: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """The add and edit forms' fields as typed (`_endpoint_payload`), loaded by the admin API's `schema`,
    and the URL's form and the event types checked as the service checks them: what a person can type
    wrong told in the page's words."""
    _ = texts(request)
    plain = {
        "url": _(
            "Type the endpoint's URL, starting with https:// (at most {most} characters).", most=MAX_URL
        ),
        "description": _("A description is at most {most} characters.", most=MAX_DESCRIPTION),
        "event_types": _("Choose the event types from the list (none ticked: every type)."),
    }
    data = forms.load_form(schema, typed, plain)
    # A fixed sentence of product/webhooks.py:url_problem, translated like any text of the console.
    if problem := url_problem(data["url"], allow_http=request.app[SETTINGS].webhook_allow_http):
        raise invalid_value(_("The endpoint's URL cannot be used: {problem}.", problem=_(problem)))
    try:
        webhooks.event_types_of(data["event_types"])
    except ScimError:
        raise invalid_value(plain["event_types"]) from None
    return data


def _refusal(request: web.Request, exc: ScimError, url: str = "") -> str:
    """The service's refusal of an endpoint's change in the page's words: what the person can do about it
    (an organization admin is told to ask the operator for what only the server's settings change)."""
    _ = texts(request)
    if exc.detail == webhooks.NO_SIGNING_KEY:
        if _portal(request):
            return _(
                "Webhooks cannot be signed on this service yet, so no endpoint can be added or given a new "
                "secret. Ask the operator of this service to set up webhook signing, then try again."
            )
        return _(
            "Webhooks cannot be signed: set SCIMSVC_WEBHOOK_SIGNING_KEY on the server (a random secret of 32 "
            "characters or more), then try again."
        )
    # services/webhooks.py:check_url, past url_problem: the host's addresses.
    if isinstance(exc, webhooks.UrlRefused) and exc.kind != "form":
        host = urlsplit(url).hostname or url
        if exc.kind == "timeout":
            return _(
                "The endpoint's URL cannot be used now: its host {host} did not answer in time when looked "
                "up. Try again in a moment.",
                host=host,
            )
        if exc.kind == "not_found":
            return _(
                "The endpoint's URL cannot be used: its host {host} was not found. Check the URL's spelling.",
                host=host,
            )
        if _portal(request):
            return _(
                "The endpoint's URL cannot be used: its host {host} is an address of a private network, "
                "which this service does not send events to. Use an address reachable on the internet, or "
                "ask the operator of this service to allow that network.",
                host=host,
            )
        return _(
            "The endpoint's URL cannot be used: its host {host} is an address of a private network. Use an "
            "address reachable on the internet, or allow that network with SCIMSVC_WEBHOOK_ALLOWED_NETWORKS "
            "on the server.",
            host=host,
        )
    return exc.detail


def _confirmed(request: web.Request, form: Mapping[str, Any]) -> None:
    """A destructive action's form comes from its confirmation page (`confirm=on`), else nothing changes."""
    if form.get("confirm") != "on":
        _ = texts(request)
        raise invalid_value(_("Nothing was changed: confirm first, with the button on the page that asks."))


async def _endpoint_or_404(request: web.Request, endpoint_id: UUID) -> Any:
    """The URL's owner's endpoint, or a 404 in the console's words (not the admin API's)."""
    try:
        return await webhooks.endpoint_or_404(request.app[POOL], owner_of(request), endpoint_id)
    except ScimError as exc:
        if exc.status != 404:
            raise
        _ = texts(request)
        raise not_found(
            _("There is no such webhook endpoint here: it was deleted, or it belongs to another owner.")
        ) from None


# --- the list and the add form ---------------------------------------------------------------------------


async def _list_page(
    request: web.Request, *, status: int = 200, error: str | None = None, form: dict[str, Any] | None = None
) -> web.Response:
    context = await _context(request, error=error, form=form or {})
    pool, owner = request.app[POOL], owner_of(request)
    context["endpoints"] = [render_endpoint(r) for r in await webhooks.list_endpoints(pool, owner)]
    # A tenant's endpoints' changes are in its audit log; the operator's have no tenant: shown here.
    changes = [] if owner else await operator_audit_page(pool, before=None, limit=AUDIT_SHOWN)
    _ = texts(request)
    context["changes"] = [{**r, "detail": detail_lines(r, _)} for r in changes]
    return page(request, "webhooks.html", context, status=status, notices=NOTICES)


@routes.get(OPERATOR)
async def webhooks_list(request: web.Request) -> web.Response:
    return await _list_page(request)


@routes.get(TENANT)
@for_org_admins
async def tenant_webhooks_list(request: web.Request) -> web.Response:
    return await _list_page(request)


@routes.post(OPERATOR)
async def webhook_create(request: web.Request) -> web.Response:
    return await _create(request)


@routes.post(TENANT)
@for_org_admins
async def tenant_webhook_create(request: web.Request) -> web.Response:
    return await _create(request)


async def _create(request: web.Request) -> web.Response:
    """Register an endpoint; its secret is shown in this answer only."""
    form = await request.post()
    typed = _endpoint_payload(form)
    try:
        data = _endpoint_fields(request, typed, WebhookCreateSchema())
        row, secret = await webhooks.create_endpoint(action_scope(request), owner_of(request), data)
    except ScimError as exc:
        error = _refusal(request, exc, typed["url"])
        return await _list_page(request, status=exc.status, error=error, form=typed)
    raise _see_secret(request, row["id"], secret)


def _secret_path(request: web.Request, endpoint_id: UUID) -> str:
    return f"{_base(request)}/{endpoint_id}/secret"


def _owner_key(request: web.Request) -> str:
    owner = owner_of(request)
    return str(owner) if owner is not None else "operator"


def _see_secret(request: web.Request, endpoint_id: UUID, secret: str) -> web.HTTPSeeOther:
    """303 to the endpoint's page that shows `secret` once (`reveal.py`)."""
    response = web.HTTPSeeOther(_secret_path(request, endpoint_id))
    reveal.reveal_next(
        request,
        response,
        cookie=SECRET_COOKIE,
        path=_secret_path(request, endpoint_id),
        purpose=REVEAL_PURPOSE,
        owner=_owner_key(request),
        item_id=str(endpoint_id),
        secret=secret,
    )
    return response


@routes.get(OPERATOR + "/{wid}/secret")
async def webhook_secret(request: web.Request) -> web.Response:
    return await _show_secret(request)


@routes.get(TENANT + "/{wid}/secret")
@for_org_admins
async def tenant_webhook_secret(request: web.Request) -> web.Response:
    return await _show_secret(request)


async def _show_secret(request: web.Request) -> web.Response:
    """The endpoint's page with the secret its POST just made, once: this answer clears the cookie, so a
    reload says it was shown (and repeats nothing)."""
    endpoint_id = endpoint_id_of(request)
    handed = reveal.revealed(request, cookie=SECRET_COOKIE, purpose=REVEAL_PURPOSE, owner=_owner_key(request))
    secret = handed[1] if handed is not None and handed[0] == str(endpoint_id) else None
    shown_once = None
    if secret is None:
        _ = texts(request)
        shown_once = _("The signing secret was shown once and cannot be shown again: rotate it for another.")
    response = await _endpoint_page(request, new_secret=secret, notice=shown_once)
    reveal.forget(response, cookie=SECRET_COOKIE, path=_secret_path(request, endpoint_id))
    return response


# --- one endpoint ----------------------------------------------------------------------------------------


async def _endpoint_page(
    request: web.Request,
    *,
    endpoint: Mapping[str, Any] | None = None,
    new_secret: str | None = None,
    status: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    notice: str | None = None,
) -> web.Response:
    pool, owner = request.app[POOL], owner_of(request)
    context = await _context(request, error=error, form=form or {}, new_secret=new_secret)
    if notice is not None:
        context["notice"] = notice
    endpoint_id = endpoint["id"] if endpoint is not None else endpoint_id_of(request)
    row = await _endpoint_or_404(request, endpoint_id)
    try:
        before = delivery_before(request.query)
    except ScimError as exc:
        before, context["error"], status = None, exc.detail, exc.status
    found = await webhooks.deliveries(pool, owner, endpoint_id, before=before, limit=DELIVERIES_SHOWN)
    context["endpoint"] = render_endpoint(row)
    context["deliveries"] = [render_delivery(d) for d in found]
    context["next_before"] = found[-1].row["id"] if len(found) == DELIVERIES_SHOWN else None
    return page(request, "webhook.html", context, status=status, notices=NOTICES)


@routes.get(OPERATOR + "/{wid}")
async def webhook_detail(request: web.Request) -> web.Response:
    return await _endpoint_page(request)


@routes.get(TENANT + "/{wid}")
@for_org_admins
async def tenant_webhook_detail(request: web.Request) -> web.Response:
    return await _endpoint_page(request)


# --- confirmations of the destructive actions (GET pages; their forms POST below) ---------------------------


async def _confirm(request: web.Request, action: str) -> web.Response:
    """The confirmation page of disabling, rotating or deleting the URL's endpoint."""
    _ = texts(request)
    row = await _endpoint_or_404(request, endpoint_id_of(request))
    url, here = row["url"], f"{_base(request)}/{row['id']}"
    asks = {
        "disable": (
            _("Disable this endpoint?"),
            _("Nothing is sent to {url} until it is enabled again.", url=url),
            _("Disable endpoint"),
            "enabled",
            {"enabled": "false"},
        ),
        "rotate": (
            _("Rotate the signing secret?"),
            _(
                "A new secret is shown once, on the next page. Deliveries carry signatures of both the new "
                "and the current secret during the overlap, so the receiver at {url} can switch without "
                "missing one.",
                url=url,
            ),
            _("Rotate secret"),
            "rotate",
            {},
        ),
        "delete": (
            _("Delete this endpoint?"),
            _("The endpoint {url} is deleted with its deliveries. This cannot be undone.", url=url),
            _("Delete endpoint"),
            "delete",
            {},
        ),
    }
    title, message, button, posts_to, fields = asks[action]
    context = await _context(request)
    return confirmation(
        request,
        title=title,
        message=message,
        action=f"{here}/{posts_to}",
        button=button,
        cancel=here,
        fields={**fields, "confirm": "on"},
        context=context,
    )


@routes.get(OPERATOR + "/{wid}/disable")
async def webhook_disable_confirm(request: web.Request) -> web.Response:
    return await _confirm(request, "disable")


@routes.get(TENANT + "/{wid}/disable")
@for_org_admins
async def tenant_webhook_disable_confirm(request: web.Request) -> web.Response:
    return await _confirm(request, "disable")


@routes.get(OPERATOR + "/{wid}/rotate")
async def webhook_rotate_confirm(request: web.Request) -> web.Response:
    return await _confirm(request, "rotate")


@routes.get(TENANT + "/{wid}/rotate")
@for_org_admins
async def tenant_webhook_rotate_confirm(request: web.Request) -> web.Response:
    return await _confirm(request, "rotate")


@routes.get(OPERATOR + "/{wid}/delete")
async def webhook_delete_confirm(request: web.Request) -> web.Response:
    return await _confirm(request, "delete")


@routes.get(TENANT + "/{wid}/delete")
@for_org_admins
async def tenant_webhook_delete_confirm(request: web.Request) -> web.Response:
    return await _confirm(request, "delete")


# --- the actions -----------------------------------------------------------------------------------------


def _see_endpoint(request: web.Request, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{_base(request)}/{endpoint_id_of(request)}?done={done}")


@routes.post(OPERATOR + "/{wid}/edit")
async def webhook_edit(request: web.Request) -> web.Response:
    return await _edit(request)


@routes.post(TENANT + "/{wid}/edit")
@for_org_admins
async def tenant_webhook_edit(request: web.Request) -> web.Response:
    return await _edit(request)


async def _edit(request: web.Request) -> web.Response:
    form = await request.post()
    typed = _endpoint_payload(form)
    try:
        data = _endpoint_fields(request, typed, WebhookUpdateSchema())
        await webhooks.update_endpoint(action_scope(request), *_endpoint_of(request), data)
    except ScimError as exc:
        error = _refusal(request, exc, typed["url"])
        return await _endpoint_page(request, status=exc.status, error=error, form=typed)
    raise _see_endpoint(request, "webhook-saved")


@routes.post(OPERATOR + "/{wid}/enabled")
async def webhook_enable(request: web.Request) -> web.Response:
    return await _enable(request)


@routes.post(TENANT + "/{wid}/enabled")
@for_org_admins
async def tenant_webhook_enable(request: web.Request) -> web.Response:
    return await _enable(request)


async def _enable(request: web.Request) -> web.Response:
    """Enable, or (from its confirmation page) disable the endpoint."""
    form = await request.post()
    try:
        data = load(WebhookUpdateSchema(), {"enabled": forms.flag(forms.text(form, "enabled"))})
        if data.get("enabled") is False:
            _confirmed(request, form)
        row = await webhooks.update_endpoint(action_scope(request), *_endpoint_of(request), data)
    except ScimError as exc:
        return await _endpoint_page(request, status=exc.status, error=exc.detail)
    raise _see_endpoint(request, "webhook-enabled" if row["enabled"] else "webhook-disabled")


@routes.post(OPERATOR + "/{wid}/rotate")
async def webhook_rotate(request: web.Request) -> web.Response:
    return await _rotate(request)


@routes.post(TENANT + "/{wid}/rotate")
@for_org_admins
async def tenant_webhook_rotate(request: web.Request) -> web.Response:
    return await _rotate(request)


async def _rotate(request: web.Request) -> web.Response:
    """A new secret, shown once on the page this answer redirects to; the previous one signs too during the
    overlap."""
    form = await request.post()
    try:
        _confirmed(request, form)
        row, secret = await webhooks.rotate_secret(action_scope(request), *_endpoint_of(request))
    except ScimError as exc:
        error = _refusal(request, exc)
        if exc.status == 409 and exc.detail != webhooks.NO_SIGNING_KEY:  # rotated already, still signing
            current = await _endpoint_or_404(request, endpoint_id_of(request))
            _ = texts(request)
            error = _(
                "The secret was rotated recently: the previous one still signs until {when} UTC, so that "
                "the receiver can switch. Rotate again after that.",
                when=f"{current['previous_until']:%Y-%m-%d %H:%M}" if current["previous_until"] else "–",
            )
        return await _endpoint_page(request, status=exc.status, error=error)
    raise _see_secret(request, row["id"], secret)


@routes.post(OPERATOR + "/{wid}/delete")
async def webhook_delete(request: web.Request) -> web.Response:
    return await _delete(request)


@routes.post(TENANT + "/{wid}/delete")
@for_org_admins
async def tenant_webhook_delete(request: web.Request) -> web.Response:
    return await _delete(request)


async def _delete(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        _confirmed(request, form)
        await webhooks.delete_endpoint(action_scope(request), *_endpoint_of(request))
    except ScimError as exc:
        return await _endpoint_page(request, status=exc.status, error=exc.detail)
    raise web.HTTPSeeOther(f"{_base(request)}?done=webhook-deleted")


_ZONED = re.compile(r"(Z|[+-][0-9]{2}:?[0-9]{2})$", re.IGNORECASE)  # a time that names its zone


def _replay_payload(form: Mapping[str, Any]) -> dict[str, Any]:
    """One event id, or a range typed in UTC (`datetime-local` fields carry no time zone)."""
    if event_id := forms.text(form, "event_id"):
        return {"event_id": event_id}
    payload = {}
    for name in ("since", "until"):
        if value := forms.text(form, name):
            payload[name] = value if _ZONED.search(value) else value + "Z"
    return payload


@routes.post(OPERATOR + "/{wid}/replay")
async def webhook_replay(request: web.Request) -> web.Response:
    return await _replay(request)


@routes.post(TENANT + "/{wid}/replay")
@for_org_admins
async def tenant_webhook_replay(request: web.Request) -> web.Response:
    return await _replay(request)


async def _replay(request: web.Request) -> web.Response:
    form = await request.post()
    typed = {name: forms.text(form, name) for name in ("event_id", "since", "until")}
    _ = texts(request)
    a_range = _("Type the range's start and end as dates and times (UTC), the start before the end.")
    plain = {"event_id": _("An event id looks like evt_12."), "since": a_range, "until": a_range}
    try:
        data = forms.load_form(WebhookReplaySchema(), _replay_payload(form), {**plain, "_schema": a_range})
        await webhooks.replay(
            action_scope(request),
            *_endpoint_of(request),
            event=data.get("event_id"),
            since=data.get("since"),
            until=data.get("until"),
        )
    except ScimError as exc:
        detail = exc.detail
        if exc.status == 400 and detail.startswith("event_id"):  # services/webhooks.py:parse_event_id
            detail = _("“{id}” is not an event id: an event id looks like evt_12.", id=typed["event_id"][:40])
        elif exc.status == 409 and not (await _endpoint_or_404(request, endpoint_id_of(request)))["enabled"]:
            detail = _("This endpoint is disabled: enable it, then replay.")
        if exc.status == 404 and typed["event_id"]:  # the admin API's words name the tenant's id
            detail = _("There is no event {id} among this organization's events.", id=typed["event_id"])
            if owner_of(request) is None:
                detail = _("There is no event {id}.", id=typed["event_id"])
        return await _endpoint_page(request, status=exc.status, error=detail, form=typed)
    raise _see_endpoint(request, "webhook-replayed")
