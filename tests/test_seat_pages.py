"""The seats page and the settings page of an organization (web/console/seat_pages.py): the waiting rule
as an organization admin sees it, the reason beside every user without a seat, "applying…" until the
worker has applied a change, every setting saved through the console and read back through the admin API,
bad input refused with nothing changed, the confirmation of seats lowered below use, and what only the
operator may change."""

from __future__ import annotations

import asyncio
import html
import re
from uuid import UUID

import pytest

from scimsvc.product.licenses import Licensing
from scimsvc.product.seats import no_seat_reason
from scimsvc.scim.errors import ScimError
from scimsvc.services.actions import ActionScope, Actor
from scimsvc.services.tenants import org_admin_refusal, update_tenant_settings
from scimsvc.web.keys import POOL, REDIS
from tests.conftest import ADMIN_HEADERS, create_team, post_user, run_worker, wait_until
from tests.test_console import signed_in, unlabelled_inputs

FIXED = Licensing(seats=3)
FLEX = Licensing(seats=3, flexible=True)


# --- the reason's wording rule (pure) ---------------------------------------------------------------


def reason(tenant=FIXED, *, scim=True, active=True, pending=False, user_type=None, position=None):
    return no_seat_reason(
        tenant,
        scim_enabled=scim,
        active=active,
        pending=pending,
        user_type=user_type,
        waiting_position=position,
    )


@pytest.mark.parametrize(
    ("kwargs", "kind", "shown"),
    [
        ({"position": 2}, "waiting", "waiting: no seat was free when they needed one (position 2)"),
        (
            {"tenant": FLEX, "user_type": "Full", "position": 1},
            "waiting",
            "waiting: asked for a seat (userType Full) when none was free (position 1)",
        ),
        (
            {"tenant": FLEX},
            "flexible",
            "flexible licenses: gets the default license; set userType Full in the IdP to ask for a seat",
        ),
        ({"active": False, "position": 3}, "deactivated", "deactivated: holds no license"),
        (
            {"pending": True, "position": 1},
            "pending",
            "not applied yet: the latest change is still being applied",
        ),
        ({"scim": False}, "by_hand", "assigned by hand: SCIM is off, licenses are assigned on this page"),
        (
            {},
            "next_change",
            "no seat yet: joins the waiting list at its next change from the identity provider",
        ),
    ],
)
def test_the_reason_a_user_has_no_seat_reads_as_an_organization_admin_would(kwargs, kind, shown):
    got = reason(**kwargs)
    assert got.kind == kind and got.text.format(**got.values) == shown


# --- helpers ------------------------------------------------------------------------------------------


async def deactivate(client, tenant, user):
    patch = {"Operations": [{"op": "replace", "value": {"active": False}}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200, await resp.text()


def figure(body: str, name: str) -> str:
    found = re.search(rf'<dd id="seats-{name}">([^<]*)</dd>', body)
    assert found, f"no #seats-{name} on the page"
    return found.group(1)


def rows_of(body: str, table: str) -> list[list[str]]:
    """The cells of each body row of table `table`, as text."""
    found = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', body, re.S)
    if not found:
        return []
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)
    ]


async def seats_page(client, tenant) -> str:
    resp = await client.get(f"/console/tenants/{tenant.id}/seats")
    body = await resp.text()
    assert resp.status == 200, body[:500]
    return body


WAITING_RULE = re.compile(r'<p class="help" id="waiting-rule">(.*?)</p>', re.S)
EVERYONE_WAITS = (
    "Every user gets a seat while one is free; a user who gets none waits for one, first come, first served, "
    "and gets the next seat that frees."
)
FULL_USERS_WAIT = (
    "Flexible licenses: new users get the default license; only users with userType Full ask for a seat, and "
    "they wait when none is free."
)


async def test_an_organization_admin_reads_who_waits_for_a_seat_in_both_languages(
    client, new_tenant, settings
):
    """The seats page as the organization's admin sees it (a portal session): the waiting rule of the help
    pages, in English and Japanese, then the flexible program's after it is turned on."""
    from scimsvc.web.console.i18n import catalogue
    from tests.portal import portal_session

    tenant = await new_tenant(seats=1)
    for n in range(1, 3):
        await post_user(client, tenant, displayName=f"User {n}")
    await run_worker(settings)
    await portal_session(client, tenant.id)
    japanese = catalogue("ja")
    for headers, rule in (({}, EVERYONE_WAITS), ({"Accept-Language": "ja"}, japanese[EVERYONE_WAITS])):
        resp = await client.get(f"/console/tenants/{tenant.id}/seats", headers=headers)
        body = await resp.text()
        assert resp.status == 200
        found = WAITING_RULE.search(body)
        assert found and html.unescape(found.group(1)).strip() == rule
        assert (figure(body, "free"), figure(body, "waiting")) == ("0", "1")
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}", json={"flexible_licenses": True}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200, await resp.text()
    found = WAITING_RULE.search(await seats_page(client, tenant))
    assert found and html.unescape(found.group(1)).strip() == FULL_USERS_WAIT


async def tenant_json(client, tenant) -> dict:
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}", headers=ADMIN_HEADERS)
    assert resp.status == 200
    return await resp.json()


# --- the waiting rule on the seats page --------------------------------------------------------------


async def test_three_seats_five_users_no_free_seat_beside_a_user_without_one(client, new_tenant, settings):
    """The issue's case: the two users who got no seat wait in arrival order, and a seat freed by a
    deactivation goes to the oldest of them at once."""
    tenant = await new_tenant(seats=3)
    users = [await post_user(client, tenant, displayName=f"User {n}") for n in range(1, 6)]
    await run_worker(settings)
    await signed_in(client)

    body = await seats_page(client, tenant)
    assert (figure(body, "used"), figure(body, "free"), figure(body, "waiting")) == ("3", "0", "2")
    waiting = rows_of(body, "waiting-table")
    assert [(r[0], r[1].split()[:2]) for r in waiting] == [("1", ["User", "4"]), ("2", ["User", "5"])]
    assert waiting[1][3] == "waiting: no seat was free when they needed one (position 2)"
    assert rows_of(body, "without-seat-table") == []  # nobody without a seat is left unexplained

    await deactivate(client, tenant, users[0])
    await run_worker(settings)
    body = await seats_page(client, tenant)
    assert (figure(body, "used"), figure(body, "free"), figure(body, "waiting")) == ("3", "0", "1")
    waiting = rows_of(body, "waiting-table")
    assert [(r[0], r[1].split()[:2]) for r in waiting] == [("1", ["User", "5"])]
    summary = await (
        await client.get(f"/admin/v1/tenants/{tenant.id}/licenses", headers=ADMIN_HEADERS)
    ).json()
    assert summary["waiting"] == [users[4]["id"]] and summary["free"] == 0


async def test_a_flexible_organization_explains_why_plain_users_have_no_seat(
    client, new_tenant, settings, db
):
    tenant = await new_tenant(seats=0, flexible_licenses=True, default_license="free")
    plain = await post_user(client, tenant, displayName="Plain")
    asker = await post_user(client, tenant, displayName="Asker", userType="Full")
    await run_worker(settings)
    pending = await post_user(client, tenant, displayName="Newcomer")  # the worker has not applied it
    await signed_in(client)

    body = await seats_page(client, tenant)
    assert "only users with userType Full ask for a seat" in body
    waiting = rows_of(body, "waiting-table")
    assert [r[1] for r in waiting] == ["Asker " + asker["userName"]]
    assert waiting[0][3] == "waiting: asked for a seat (userType Full) when none was free (position 1)"
    others = {r[0].split()[0]: r[1] for r in rows_of(body, "without-seat-table")}
    assert others == {
        "Plain": (
            "flexible licenses: gets the default license; set userType Full in the IdP to ask for a seat"
        ),
        "Newcomer": "not applied yet: the latest change is still being applied",
    }
    assert plain["id"] != pending["id"]
    assert unlabelled_inputs(body) == []


async def test_turning_the_flexible_program_off_puts_users_without_a_seat_on_the_waiting_list(
    client, new_tenant, settings, db
):
    tenant = await new_tenant(seats=1, flexible_licenses=True, default_license="free")
    first, second = await post_user(client, tenant), await post_user(client, tenant)
    await run_worker(settings)
    token = await signed_in(client)
    resp = await client.post(
        f"/console/tenants/{tenant.id}/settings/licenses",
        data={"csrf_token": token, "default_license": "free", "fallback_license": "free_restricted"},
    )
    assert resp.status == 200 and "License rules saved" in await resp.text()
    await run_worker(settings)
    # Both waited from the change; the one seat went to the first created (the waiting rule), and the
    # other waits holding the fallback, as a user provisioned without a free seat does.
    rows = await db.fetch(
        "SELECT id::text, license, waiting_since IS NOT NULL AS waiting FROM users "
        "WHERE tenant_id = $1::uuid",
        tenant.id,
    )
    got = {r["id"]: (r["license"], r["waiting"]) for r in rows}
    assert got == {first["id"]: ("full", False), second["id"]: ("free_restricted", True)}

    resp = await client.post(
        f"/console/tenants/{tenant.id}/settings/licenses",
        data={
            "csrf_token": token,
            "flexible_licenses": "on",
            "default_license": "free",
            "fallback_license": "none",
        },
    )
    assert resp.status == 200
    await run_worker(settings)
    # Flexible again (the rule of a toggle, product/seats.py:follow_rules): plain users ask for no seat,
    # so the waiting one leaves the list with the default license (not "no license" of the fallback),
    # and the plain seat holder gives its seat up for the default license.
    rows = await db.fetch(
        "SELECT id::text, license, waiting_since IS NOT NULL AS waiting FROM users "
        "WHERE tenant_id = $1::uuid",
        tenant.id,
    )
    got = {r["id"]: (r["license"], r["waiting"]) for r in rows}
    assert got == {first["id"]: ("free", False), second["id"]: ("free", False)}
    released = await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE user_id = $1::uuid AND action = 'release'", first["id"]
    )
    assert released == 1
    # Saving the same rules again (the form always sends the checkbox) decides nobody again.
    before = await db.fetchval("SELECT count(*) FROM outbox WHERE resource_id = $1::uuid", tenant.id)
    resp = await client.post(
        f"/console/tenants/{tenant.id}/settings/licenses",
        data={
            "csrf_token": token,
            "flexible_licenses": "on",
            "default_license": "free",
            "fallback_license": "none",
        },
    )
    assert resp.status == 200
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE resource_id = $1::uuid", tenant.id) == before


async def test_scim_turned_back_on_applies_the_rules_changed_while_it_was_off(
    client, new_tenant, settings, db
):
    # The case: a flexible organization, 3 seats, 3 plain users; SCIM off, flexible off, SCIM on.
    tenant = await new_tenant(seats=3, flexible_licenses=True, default_license="free")
    for _ in range(3):
        await post_user(client, tenant)
    await run_worker(settings)
    scim = f"/admin/v1/tenants/{tenant.id}/scim"
    assert (await client.put(scim, json={"enabled": False}, headers=ADMIN_HEADERS)).status == 200
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}", json={"flexible_licenses": False}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200
    await run_worker(settings)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM users WHERE tenant_id = $1::uuid AND license = 'full'", tenant.id
        )
        == 0
    )  # SCIM off: the operator's licenses stand
    assert (await client.put(scim, json={"enabled": True}, headers=ADMIN_HEADERS)).status == 200
    await run_worker(settings)
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE license = 'full') AS used,"
        " count(*) FILTER (WHERE waiting_since IS NOT NULL) AS waiting FROM users WHERE tenant_id = $1::uuid",
        tenant.id,
    )
    assert (row["used"], row["waiting"]) == (3, 0)


async def test_a_user_the_worker_has_not_applied_is_left_to_its_own_drain(client, new_tenant, settings, db):
    from worker.seats import follow_license_rules

    tenant = await new_tenant(seats=0, flexible_licenses=True, default_license="free")
    applied = await post_user(client, tenant)
    await run_worker(settings)
    pending = await post_user(client, tenant)  # its outbox row is not applied
    await db.execute("UPDATE tenants SET flexible_licenses = false WHERE id = $1::uuid", tenant.id)
    await follow_license_rules(client.app[POOL], UUID(tenant.id), request_id="t", events=True, batch=1)
    rows = {
        r["id"]: (r["license"], r["waiting"])
        for r in await db.fetch(
            "SELECT id::text, license, waiting_since IS NOT NULL AS waiting FROM users "
            "WHERE tenant_id = $1::uuid",
            tenant.id,
        )
    }
    assert rows[applied["id"]] == ("free_restricted", True)
    assert rows[pending["id"]][1] is False  # left to the drain, which sends user.created first


async def test_joiners_of_many_batches_wait_in_the_order_they_were_created(client, new_tenant, settings, db):
    from worker.seats import follow_license_rules

    tenant = await new_tenant(seats=1, flexible_licenses=True, default_license="free")
    users = [await post_user(client, tenant) for _ in range(7)]
    await run_worker(settings)
    await db.execute("UPDATE tenants SET flexible_licenses = false WHERE id = $1::uuid", tenant.id)
    await follow_license_rules(client.app[POOL], UUID(tenant.id), request_id="t", events=True, batch=2)
    waiting = await db.fetch(
        "SELECT id::text FROM users WHERE tenant_id = $1::uuid AND waiting_since IS NOT NULL "
        "ORDER BY waiting_since, id",
        tenant.id,
    )
    assert [r["id"] for r in waiting] == [u["id"] for u in users[1:]]
    assert await db.fetchval("SELECT license FROM users WHERE id = $1::uuid", users[0]["id"]) == "full"


# --- applying… ----------------------------------------------------------------------------------------


async def test_after_saving_seats_the_page_says_applying_until_the_worker_applied_them(
    client, new_tenant, settings
):
    tenant = await new_tenant(seats=1)
    await post_user(client, tenant)
    await post_user(client, tenant)
    await run_worker(settings)
    token = await signed_in(client)

    resp = await client.post(f"/console/tenants/{tenant.id}/seats", data={"csrf_token": token, "seats": "2"})
    body = await resp.text()
    assert resp.status == 200 and "Saved." in body
    assert 'id="applying"' in body and '<meta http-equiv="refresh" content="2">' in body
    assert (figure(body, "total"), figure(body, "used"), figure(body, "waiting")) == (
        "2",
        "1",
        "1",
    )  # as applied

    worker = asyncio.ensure_future(run_worker(settings))

    async def applied() -> bool:
        return 'id="applying"' not in await seats_page(client, tenant)

    await wait_until(applied, what="the applying… marker to go once the worker applied the seats")
    await worker
    body = await seats_page(client, tenant)
    assert (figure(body, "used"), figure(body, "waiting")) == ("2", "0") and "http-equiv" not in body


async def test_a_manual_assignment_shows_applying_until_applied(client, new_tenant, settings):
    tenant = await new_tenant(seats=1)
    user = await post_user(client, tenant)
    await run_worker(settings)
    await client.put(f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS)
    token = await signed_in(client)
    resp = await client.post(
        f"/console/tenants/{tenant.id}/seats/assign",
        data={"csrf_token": token, "user": user["userName"], "license": "free"},
    )
    assert resp.status == 200 and 'id="applying"' in await resp.text()
    await run_worker(settings)
    body = await seats_page(client, tenant)
    assert 'id="applying"' not in body and figure(body, "used") == "0"


# --- every setting through the console ---------------------------------------------------------------


async def test_every_setting_saved_in_the_console_is_what_the_admin_api_reads(client, new_tenant, settings):
    tenant = await new_tenant(seats=2)
    eng = await create_team(client, tenant, "Engineering")
    ops = await create_team(client, tenant, "Ops, Tokyo")
    token = await signed_in(client)
    base = f"/console/tenants/{tenant.id}"

    body = await (await client.get(base + "/settings")).text()
    assert 'aria-current="page">Settings<' in body and unlabelled_inputs(body) == []

    resp = await client.post(
        base + "/settings/licenses",
        data={
            "csrf_token": token,
            "flexible_licenses": "on",
            "default_license": "free_restricted",
            "fallback_license": "none",
        },
    )
    assert resp.status == 200 and "License rules saved" in await resp.text()
    resp = await client.post(
        base + "/settings/domains",
        data={
            "csrf_token": token,
            "allowed_domains": "example.com\n\n@Example.ORG\n",
            "domain_teams": "example.com: Engineering\nexample.com: Ops, Tokyo\nexample.org: Ops, Tokyo",
        },
    )
    body = await resp.text()
    assert resp.status == 200 and "Allowed domains and domain teams saved" in body
    assert "example.com: Engineering\nexample.com: Ops, Tokyo\nexample.org: Ops, Tokyo" in body
    resp = await client.post(
        base + "/settings/organization",
        data={"csrf_token": token, "name": "Acme Japan", "preset": "strict", "credits_per_30s": ""},
    )
    assert resp.status == 200 and "Organization name and rate limit saved" in await resp.text()
    resp = await client.post(base + "/seats", data={"csrf_token": token, "seats": "7"})
    assert resp.status == 200

    got = await tenant_json(client, tenant)
    assert {
        k: got[k] for k in ("name", "seats", "flexible_licenses", "default_license", "fallback_license")
    } == {
        "name": "Acme Japan",
        "seats": 7,
        "flexible_licenses": True,
        "default_license": "free_restricted",
        "fallback_license": "none",
    }
    assert got["allowed_domains"] == ["example.com", "example.org"]
    assert got["domain_teams"] == {
        "example.com": sorted([eng["id"], ops["id"]]),
        "example.org": [ops["id"]],
    }
    assert got["rate_limit"] == {"preset": "strict"}
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/audit?action=settings_changed", headers=ADMIN_HEADERS
    )
    changed = [set(i["detail"]["changes"]) for i in (await resp.json())["items"]]
    assert {"name", "rate_limit"} in changed and {"seats"} in changed


@pytest.mark.parametrize(
    ("path", "fields", "says"),
    [
        (
            "/settings/domains",
            {"allowed_domains": "example.com\nnot a domain"},
            "“not a domain” is not an email domain",
        ),
        ("/settings/domains", {"domain_teams": "example.com: Nobody"}, "there is no team named “Nobody”"),
        ("/settings/domains", {"domain_teams": "example.com Engineering"}, "is not “domain: team name”"),
        (
            "/settings/domains",
            {"domain_teams": "exa mple.com: Engineering"},
            "“exa mple.com” is not an email domain",
        ),
        ("/seats", {"seats": "-1"}, "Seats must be a whole number from 0 to 10,000,000"),
        ("/seats", {"seats": "lots"}, "Seats must be a whole number from 0 to 10,000,000"),
        ("/seats", {"seats": "99999999"}, "Seats must be a whole number from 0 to 10,000,000"),
        (
            "/settings/licenses",
            {"default_license": "gold", "fallback_license": "none"},
            "Choose the default license from the list",
        ),
        ("/settings/organization", {"name": "", "preset": "strict"}, "name must be 1 to 200 characters"),
        (
            "/settings/organization",
            {"name": "X", "preset": "turbo"},
            "Choose the SCIM rate limit from the list",
        ),
        (
            "/settings/organization",
            {"name": "X", "preset": "strict", "credits_per_30s": "5"},
            "Credits per 30 seconds must be a whole number from 2,000",
        ),
        ("/settings/domains", {"allowed_domains": "a" * 250 + ".com"}, "is not an email domain"),
    ],
)
async def test_bad_input_is_a_400_page_that_changes_nothing(client, new_tenant, path, fields, says):
    tenant = await new_tenant(seats=2, allowed_domains=["example.com"])
    await create_team(client, tenant, "Engineering")
    before = await tenant_json(client, tenant)
    token = await signed_in(client)
    resp = await client.post(f"/console/tenants/{tenant.id}{path}", data={"csrf_token": token, **fields})
    body = html.unescape(await resp.text())
    assert resp.status == 400 and says in body, body[:2000]
    assert 'role="alert"' in body
    after = await tenant_json(client, tenant)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


async def test_lowering_seats_below_use_asks_first_and_takes_no_seat(client, new_tenant, settings, db):
    tenant = await new_tenant(seats=3)
    for _ in range(2):
        await post_user(client, tenant)
    await run_worker(settings)
    token = await signed_in(client)
    seats = f"/console/tenants/{tenant.id}/seats"

    resp = await client.post(seats, data={"csrf_token": token, "seats": "1"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"{seats}/lower?seats=1"
    assert await db.fetchval("SELECT seats FROM tenants WHERE id = $1::uuid", tenant.id) == 3
    body = await (await client.get(resp.headers["Location"])).text()
    assert (
        "2 users hold seats. No one loses a seat now; new seats go to nobody until use drops below 1." in body
    )
    assert 'name="confirmed" value="yes"' in body and csrf_token_in(body)

    resp = await client.post(seats, data={"csrf_token": token, "seats": "1", "confirmed": "yes"})
    body = await resp.text()
    assert resp.status == 200 and "Saved." in body
    assert await db.fetchval("SELECT seats FROM tenants WHERE id = $1::uuid", tenant.id) == 1
    await run_worker(settings)
    body = await seats_page(client, tenant)
    assert 'id="over-allocated"' in body and figure(body, "used") == "2"  # nobody lost a seat

    # Raising, or lowering to no less than use, needs no confirmation.
    resp = await client.post(seats, data={"csrf_token": token, "seats": "2"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("?done=seats-saved")


def csrf_token_in(body: str) -> bool:
    return 'name="csrf_token" value="' in body


async def test_long_lists_are_paged(client, new_tenant, settings, db):
    from scimsvc.web.console import seat_pages

    tenant = await new_tenant(seats=0)
    users = [await post_user(client, tenant) for _ in range(seat_pages.PAGE_SIZE + 2)]
    await run_worker(settings)
    await signed_in(client)
    body = await seats_page(client, tenant)
    first = rows_of(body, "waiting-table")
    assert len(first) == seat_pages.PAGE_SIZE and first[0][0] == "1"
    after = re.search(r'href="\?(waiting_after=[^"]+)"', body)
    assert after and after.group(1).endswith("_" + users[seat_pages.PAGE_SIZE - 1]["id"])
    # The cursor is a place, not a user: the last user of the page leaving the list moves nothing.
    await db.execute(
        "UPDATE users SET active = false WHERE id = $1::uuid", users[seat_pages.PAGE_SIZE - 1]["id"]
    )
    body = await (
        await client.get(f"/console/tenants/{tenant.id}/seats?{html.unescape(after.group(1))}")
    ).text()
    rest = rows_of(body, "waiting-table")
    assert [r[0] for r in rest] == [str(seat_pages.PAGE_SIZE), str(seat_pages.PAGE_SIZE + 1)]
    assert 'href="?waiting_after=' not in body


async def test_another_organizations_user_as_a_page_cursor_is_a_404_or_an_empty_page(
    client, new_tenant, settings
):
    mine, theirs = await new_tenant(seats=0), await new_tenant(seats=0)
    stranger = await post_user(client, theirs)
    await post_user(client, mine)
    await run_worker(settings)
    await signed_in(client)
    body = await (await client.get(f"/console/tenants/{mine.id}/seats")).text()
    assert stranger["userName"] not in body
    assert (await client.get(f"/console/tenants/{mine.id}/seats?waiting_after=nope")).status == 404
    assert (
        await client.get(f"/console/tenants/{mine.id}/seats?waiting_after={stranger['id']}")
    ).status == 404


# --- what only the operator changes -----------------------------------------------------------------


def test_an_organization_admin_may_change_license_rules_and_domains_but_not_seats_name_or_rate_limit():
    assert org_admin_refusal({"flexible_licenses": True, "allowed_domains": [], "domain_teams": {}}) is None
    refusal = org_admin_refusal({"seats": 5, "rate_limit": {"preset": "off"}})
    assert refusal and refusal.startswith(
        "Only the operator of this service changes the seats and the rate limit"
    )


async def test_the_service_refuses_seats_and_rate_limit_from_an_organization_admin(
    new_tenant, client, settings, db
):
    tenant = await new_tenant(seats=2)
    app = client.app
    scope = ActionScope(
        pool=app[POOL], redis=app[REDIS], settings=settings, actor=Actor("org_admin", "portal-test")
    )
    tenant_id = UUID(tenant.id)
    for changes in (
        {"seats": 9},
        {"rate_limit": {"preset": "off"}},
        {"seats": 9, "allowed_domains": ["a.com"]},
    ):
        with pytest.raises(ScimError) as refused:
            await update_tenant_settings(scope, tenant_id, changes)
        assert refused.value.status == 403 and "Only the operator" in refused.value.detail
    row = await db.fetchrow(
        "SELECT seats, rate_limit, allowed_domains FROM tenants WHERE id = $1::uuid", tenant.id
    )
    assert (row["seats"], row["allowed_domains"]) == (2, [])
    await update_tenant_settings(scope, tenant_id, {"allowed_domains": ["a.com"]})
    assert await db.fetchval("SELECT allowed_domains FROM tenants WHERE id = $1::uuid", tenant.id) == [
        "a.com"
    ]


async def test_an_organization_admin_changes_license_rules_and_domains_but_not_seats_or_the_organization(
    client, new_tenant, settings, db
):
    from tests.portal import portal_session

    tenant = await new_tenant(seats=2)
    portal = await portal_session(client, tenant.id, email="admin@example.com")
    base = f"/console/tenants/{tenant.id}"
    for path in ("/seats", "/settings"):
        body = await (await client.get(base + path)).text()
        assert f'action="{base}/seats"' not in body and f'action="{base}/settings/organization"' not in body
    assert (
        "Only the operator of this service changes the number of seats."
        in await (await client.get(base + "/seats")).text()
    )
    assert 'id="organization-read-only"' in await (await client.get(base + "/settings")).text()

    resp = await client.post(
        base + "/settings/licenses",
        data={
            "csrf_token": portal.csrf,
            "flexible_licenses": "on",
            "default_license": "free",
            "fallback_license": "free_restricted",
        },
    )
    assert resp.status == 200 and "License rules saved" in await resp.text()
    resp = await client.post(
        base + "/settings/domains",
        data={"csrf_token": portal.csrf, "allowed_domains": "example.com", "domain_teams": ""},
    )
    assert resp.status == 200
    actors = await db.fetch(
        "SELECT actor FROM audit_log WHERE tenant_id = $1::uuid AND action = 'settings_changed' ORDER BY id",
        tenant.id,
    )
    assert [r["actor"] for r in actors] == ["org_admin", "org_admin"]

    before = await db.fetchrow("SELECT seats, name, rate_limit FROM tenants WHERE id = $1::uuid", tenant.id)
    for method, path, data in (
        ("post", "/seats", {"seats": "9"}),
        ("get", "/seats/lower?seats=0", None),
        ("post", "/settings/organization", {"name": "Other", "preset": "off"}),
    ):
        if method == "post":
            resp = await client.post(base + path, data={"csrf_token": portal.csrf, **(data or {})})
        else:
            resp = await client.get(base + path)
        assert resp.status == 404, path
    after = await db.fetchrow("SELECT seats, name, rate_limit FROM tenants WHERE id = $1::uuid", tenant.id)
    assert after == before


# --- English and Japanese ---------------------------------------------------------------------------

SEAT_TEMPLATES = ("seats.html", "seats_lower.html", "settings.html")


def test_every_text_of_the_seat_and_settings_pages_has_its_japanese():
    from pathlib import Path

    from scimsvc.web.console.i18n import catalogue

    folder = Path(__file__).parent.parent / "scimsvc" / "web" / "console" / "templates"
    texts = {t for name in SEAT_TEMPLATES for t in re.findall(r'_\("([^"]*)"', (folder / name).read_text())}
    reasons = {
        reason(**kwargs).text
        for kwargs in (
            {"position": 1},
            {"tenant": FLEX, "position": 1},
            {"tenant": FLEX},
            {"active": False},
            {"pending": True},
            {"scim": False},
            {},
        )
    }
    ja = catalogue("ja")
    assert sorted((texts | reasons) - ja.keys()) == []


async def test_the_seats_and_settings_pages_speak_japanese(client, new_tenant, settings):
    tenant = await new_tenant(seats=0)
    await post_user(client, tenant)
    await run_worker(settings)
    await signed_in(client)
    ja = {"Accept-Language": "ja,en;q=0.5"}
    body = await (await client.get(f"/console/tenants/{tenant.id}/seats", headers=ja)).text()
    assert "待機中：シートが必要になったときに空きがありませんでした（1 番目）" in body
    assert '<html lang="ja">' in body and "待機リスト" in body
    body = await (await client.get(f"/console/tenants/{tenant.id}/settings", headers=ja)).text()
    assert "ライセンスのルール" in body and "許可するドメイン（1行に1つ）" in body


async def test_a_settings_form_error_is_in_the_page_language_and_changes_nothing(client, new_tenant):
    tenant = await new_tenant(seats=1)
    csrf = await signed_in(client)
    ja = {"Accept-Language": "ja,en;q=0.5"}
    resp = await client.post(
        f"/console/tenants/{tenant.id}/settings/domains",
        data={"csrf_token": csrf, "allowed_domains": "not a domain", "domain_teams": ""},
        headers=ja,
    )
    body = await resp.text()
    assert resp.status == 400
    assert "許可するドメイン：「not a domain」はメールのドメインではありません" in body
    admin = await client.get(f"/admin/v1/tenants/{tenant.id}", headers=ADMIN_HEADERS)
    assert (await admin.json())["allowed_domains"] == []


# --- users who fell back under the old rule -----------------------------------------------------------


async def test_migration_0021_puts_users_who_fell_back_before_the_rule_on_the_waiting_list(
    client, new_tenant, settings, db
):
    from pathlib import Path

    tenant = await new_tenant(seats=1)
    holder, second, third = [await post_user(client, tenant) for _ in range(3)]
    await run_worker(settings)
    # The state the old rule left (the case): nobody waiting, and then the holder deactivated
    # with its seat freed, beside two users without one.
    await db.execute("UPDATE users SET waiting_since = NULL WHERE tenant_id = $1::uuid", tenant.id)
    await db.execute("UPDATE users SET license = NULL, active = false WHERE id = $1::uuid", holder["id"])
    folder = Path(__file__).parent.parent / "scimsvc" / "store" / "migrations"
    migration = (folder / "0021_everyone_waits_for_a_seat.sql").read_text()
    only_this_tenant = migration.replace("WHERE NOT", "WHERE t.id = $1::uuid AND NOT")  # the DB is shared
    assert only_this_tenant != migration
    await db.execute(only_this_tenant, tenant.id)
    assert (
        await db.fetchval(
            "SELECT payload->>'flexible_licenses' FROM outbox "
            "WHERE resource_id = $1::uuid AND request_id = 'migration-0021'",
            tenant.id,
        )
        == "false"
    )
    # Any licensing change wakes the tenant's applier, which applies the migration's row too (the
    # sweeper does when nothing else does).
    resp = await client.patch(f"/admin/v1/tenants/{tenant.id}", json={"seats": 1}, headers=ADMIN_HEADERS)
    assert resp.status == 200
    await run_worker(settings)
    rows = await db.fetch(
        "SELECT id::text, license, waiting_since IS NOT NULL AS waiting FROM users "
        "WHERE tenant_id = $1::uuid",
        tenant.id,
    )
    got = {r["id"]: (r["license"], r["waiting"]) for r in rows}
    assert got == {
        holder["id"]: (None, False),
        second["id"]: ("full", False),
        third["id"]: ("free_restricted", True),
    }
