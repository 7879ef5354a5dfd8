"""A refused SCIM request as the organization's admin reads it (web/console/refusals.py): the log keeps why
(scim/errors.py:Reason), and the provisioning log page and the SCIM panel's "last request seen" explain it
in the organization's words, in English or Japanese, with the page to fix it on, next to what the IdP was
told."""

from __future__ import annotations

import html
import re
from typing import Any

from schemas.provisioning_log import LogEntrySchema
from scimsvc.scim.errors import Reason, ScimError
from scimsvc.services.provisioning_log import log_filters
from scimsvc.web.console.i18n import catalogue
from scimsvc.web.console.refusals import REFUSALS, explained
from tests.conftest import ADMIN_HEADERS, make_tenant, unique_email, user_body, wait_until
from tests.portal import portal_session
from tests.test_console import sign_in
from tests.test_provisioning_log import log_of

JA = {"Accept-Language": "ja"}


def visible(page: str) -> str:
    """The page's text as a person reads it (tags gone, entities decoded, spaces folded)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def newest_entry(client: Any, db: Any, tenant: Any, count: int) -> dict[str, Any]:
    async def enough() -> bool:
        n = await db.fetchval("SELECT count(*) FROM provisioning_log WHERE tenant_id = $1::uuid", tenant.id)
        return bool(n >= count)

    await wait_until(enough, what=f"{count} provisioning log rows")
    return (await log_of(client, tenant))["entries"][0]


async def test_a_user_outside_the_allowed_domains_is_explained_with_the_settings_page(client, db):
    tenant = await make_tenant(client, allowed_domains=["allowed.example"])
    email = unique_email("out", domain="elsewhere.example")
    resp = await client.post("/scim/v2/Users", json=user_body(email), headers=tenant.headers)
    assert resp.status == 400
    told = (await resp.json())["detail"]
    assert "organization" in told and "tenant" not in told  # the help pages' word, for the IdP too
    entry = await newest_entry(client, db, tenant, 1)
    assert (entry["status"], entry["reason"], entry["detail"]) == (400, "domain_not_allowed", told)

    portal = await portal_session(client, tenant.id)
    assert portal.tenant_id == tenant.id
    page = await client.get(f"/console/tenants/{tenant.id}/log")
    text = visible(await page.text())
    assert REFUSALS[Reason.DOMAIN_NOT_ALLOWED].text in text
    assert f'href="/console/tenants/{tenant.id}/settings">Open Settings</a>' in await page.text()
    assert f"What your identity provider was told: {told}" in text

    page = await client.get(f"/console/tenants/{tenant.id}/log", headers=JA)
    text = visible(await page.text())
    assert catalogue("ja")[REFUSALS[Reason.DOMAIN_NOT_ALLOWED].text] in text
    ja = catalogue("ja")
    assert ja["Open {page}"].format(page=ja["Settings"]) in text


async def test_the_scim_panel_explains_the_last_refused_request(client, db):
    tenant = await make_tenant(client)
    resp = await client.post(
        "/scim/v2/Groups",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Nobody made me"},
        headers=tenant.headers,
    )
    assert resp.status == 400
    # The body to create the team is quoted as JSON, ready to send.
    assert '{"name":"Nobody made me"}' in (await resp.json())["detail"]
    entry = await newest_entry(client, db, tenant, 1)
    assert entry["reason"] == "no_team"
    await sign_in(client)
    page = await client.get(f"/console/tenants/{tenant.id}/scim", headers=JA)
    assert page.status == 200
    body = await page.text()
    assert catalogue("ja")[REFUSALS[Reason.NO_TEAM].text] in visible(body)
    assert f'href="/console/tenants/{tenant.id}/teams"' in body


async def test_scim_turned_off_and_an_accepted_request_are_told_apart(client, db):
    tenant = await make_tenant(client)
    ok = await client.post("/scim/v2/Users", json=user_body(unique_email("in")), headers=tenant.headers)
    assert ok.status == 201
    assert (await newest_entry(client, db, tenant, 1))["reason"] is None
    resp = await client.put(
        f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200, await resp.text()
    refused = await client.get("/scim/v2/Users", headers=tenant.headers)
    assert refused.status == 403
    entry = await newest_entry(client, db, tenant, 2)
    assert (entry["status"], entry["reason"]) == (403, "scim_disabled")
    await sign_in(client)
    text = visible(await (await client.get(f"/console/tenants/{tenant.id}/log")).text())
    assert REFUSALS[Reason.SCIM_DISABLED].text in text
    assert text.count("What your identity provider was told:") == 1  # the accepted request has none


def test_every_reason_is_explained_in_both_languages_and_named_by_the_api_schema():
    japanese = catalogue("ja")
    described = LogEntrySchema().fields["reason"].metadata["description"]
    for reason in Reason:
        why = explained(reason.value)
        assert why is not None and why.text in japanese, reason
        assert why.page is None or why.label in japanese, reason
        assert reason.value in described, reason
    assert explained(None) is None and explained("a reason of a newer version") is None


def service_words(query: dict[str, str]) -> str:
    """What the admin API says of these filters (the page must not show it)."""
    try:
        log_filters(query)
    except ScimError as exc:
        return exc.detail
    raise AssertionError(f"the service takes {query}")


async def test_the_log_pages_filters_are_refused_in_the_pages_words(client):
    tenant = await make_tenant(client)
    await portal_session(client, tenant.id)
    ja = catalogue("ja")
    url = f"/console/tenants/{tenant.id}/log"
    for query, english in (
        ({"since": "yesterday"}, "Type the time as a date and time (UTC), like 2026-12-05 14:30."),
        ({"status": "6xx"}, "Choose the status from the list."),
        ({"group": "not-a-uuid"}, "Type a group's id: the UUID in the address of its entries."),
        (
            {"user": "a", "group": "2b1c3d4e-0000-4000-8000-000000000000"},
            "Filter by a user or by a group, not both.",
        ),
        (
            {"since": "2026-12-05T10:00", "until": "2026-12-05T09:00"},
            "The start of the period must be before its end.",
        ),
    ):
        for headers, text in (({}, english), (JA, ja[english])):
            resp = await client.get(url, params=query, headers=headers)
            assert resp.status == 400, query
            shown = visible(await resp.text())
            assert text in shown, (query, shown[:300])
            assert service_words(query) not in shown, query


def test_every_outcome_state_the_log_shows_has_its_japanese():
    japanese = catalogue("ja")
    assert [s for s in ("applied", "pending", "failed") if s not in japanese] == []
