"""Admin and settings actions leave one audit row each (actor, request id, what changed) and their events,
committed with the change; a refused action leaves nothing (README.md, What happened)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import uuid
from typing import Any

from arq.connections import ArqRedis

from scimsvc.store.events import told_data
from scimsvc.web.app import create_app
from tests.conftest import (
    ADMIN_HEADERS,
    RUN_ID,
    Tenant,
    create_team,
    make_tenant,
    post_user,
    run_scimsvc,
    run_worker,
    service_env,
)
from tests.test_console import signed_in

AUDIT = """
SELECT action, actor, user_id, detail, request_id FROM audit_log
WHERE tenant_id = $1::uuid AND id > $2 ORDER BY id
"""
EVENTS = (
    f"SELECT type, seq, request_id, {told_data('e')} AS data FROM events e "  # noqa: S608
    "WHERE tenant_id = $1::uuid AND seq > $2 ORDER BY seq"
)


class Ledger:
    """What a tenant's audit log and events gained since it was made: each test reads only the new rows."""

    def __init__(self, db: Any, tenant_id: str) -> None:
        self.db, self.tenant_id = db, tenant_id
        self.audit_after = 0
        self.events_after = 0

    async def mark(self) -> Ledger:
        self.audit_after = await self.db.fetchval(
            "SELECT coalesce(max(id), 0) FROM audit_log WHERE tenant_id = $1::uuid", self.tenant_id
        )
        self.events_after = await self.db.fetchval(
            "SELECT coalesce(max(seq), 0) FROM events WHERE tenant_id = $1::uuid", self.tenant_id
        )
        return self

    async def audit(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch(AUDIT, self.tenant_id, self.audit_after)
        return [
            {
                "action": r["action"],
                "actor": r["actor"],
                "user_id": None if r["user_id"] is None else str(r["user_id"]),
                "detail": json.loads(r["detail"]),
                "request_id": r["request_id"],
            }
            for r in rows
        ]

    async def events(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch(EVENTS, self.tenant_id, self.events_after)
        return [
            {"type": r["type"], "seq": r["seq"], "request_id": r["request_id"], "data": json.loads(r["data"])}
            for r in rows
        ]


async def ledger(db: Any, tenant: Tenant | str) -> Ledger:
    return await Ledger(db, tenant if isinstance(tenant, str) else tenant.id).mark()


async def admin(client: Any, method: str, path: str, body: Any = None) -> tuple[int, Any, str]:
    """An admin API call: (status, JSON body or None, the X-Request-Id the response carried)."""
    resp = await client.request(method, path, json=body, headers=ADMIN_HEADERS)
    text = await resp.text()
    return resp.status, json.loads(text) if text else None, resp.headers["X-Request-Id"]


async def test_a_token_is_audited_and_announced_by_its_label_never_its_value(client, db, tenant):
    log = await ledger(db, tenant)
    base = f"/admin/v1/tenants/{tenant.id}/scim/tokens"
    status, created, created_rid = await admin(client, "POST", base, {"label": "Okta production"})
    assert status == 201 and created["label"] == "Okta production"
    status, listed, _ = await admin(client, "GET", base)
    assert {t["id"]: t["label"] for t in listed} == {tenant.token_id: "", created["id"]: "Okta production"}
    status, _, revoked_rid = await admin(client, "DELETE", f"{base}/{created['id']}")
    assert status == 204

    assert await log.audit() == [
        {
            "action": "token_created",
            "actor": "admin",
            "user_id": None,
            "detail": {"token_id": created["id"], "label": "Okta production"},
            "request_id": created_rid,
        },
        {
            "action": "token_revoked",
            "actor": "admin",
            "user_id": None,
            "detail": {"token_id": created["id"], "label": "Okta production"},
            "request_id": revoked_rid,
        },
    ]
    events = await log.events()
    assert [(e["type"], e["request_id"]) for e in events] == [
        ("token.created", created_rid),
        ("token.revoked", revoked_rid),
    ]
    assert events[1]["seq"] == events[0]["seq"] + 1
    assert events[0]["data"]["token"].keys() == {"id", "label", "created_at"}
    assert events[1]["data"]["token"].keys() == {"id", "label", "created_at", "revoked_at"}
    assert events[1]["data"]["token"]["label"] == "Okta production"
    # The value is in no audit row and no event of any tenant.
    for token in (created["token"], tenant.token):
        assert (
            await db.fetchval(
                "SELECT count(*) FROM audit_log WHERE detail::text LIKE '%' || $1 || '%'", token
            )
            == 0
        )
        assert (
            await db.fetchval("SELECT count(*) FROM events WHERE data::text LIKE '%' || $1 || '%'", token)
            == 0
        )


async def test_a_token_without_a_body_has_no_label_and_a_bad_label_writes_nothing(client, db, tenant):
    base = f"/admin/v1/tenants/{tenant.id}/scim/tokens"
    tokens_before = await db.fetchval(
        "SELECT count(*) FROM scim_tokens WHERE tenant_id = $1::uuid", tenant.id
    )
    log = await ledger(db, tenant)
    for bad in ({"label": "x" * 101}, {"label": 7}, {"labels": "Okta"}, ["Okta"]):
        status, body, _ = await admin(client, "POST", base, bad)
        assert status == 400 and body["status"] == "400", (bad, body)
    status, _, _ = await admin(client, "DELETE", f"{base}/{uuid.uuid4()}")
    assert status == 404
    assert await log.audit() == [] and await log.events() == []
    assert (
        await db.fetchval("SELECT count(*) FROM scim_tokens WHERE tenant_id = $1::uuid", tenant.id)
        == tokens_before
    )

    status, created, _ = await admin(client, "POST", base)  # no body at all
    assert status == 201 and created["label"] == ""
    status, created, _ = await admin(client, "POST", base, {"label": "x" * 100})
    assert status == 201 and created["label"] == "x" * 100


async def test_turning_scim_off_says_who_did_it_and_asking_twice_records_it_once(client, db, tenant):
    log = await ledger(db, tenant)
    scim = f"/admin/v1/tenants/{tenant.id}/scim"
    _, _, off_rid = await admin(client, "PUT", scim, {"enabled": False})
    status, body, _ = await admin(client, "PUT", scim, {"enabled": False})  # already off: nothing happens
    assert status == 200 and body == {"enabled": False}
    _, _, on_rid = await admin(client, "PATCH", f"/admin/v1/tenants/{tenant.id}", {"scim_enabled": True})

    assert [(a["action"], a["actor"], a["detail"], a["request_id"]) for a in await log.audit()] == [
        ("scim_disabled", "admin", {}, off_rid),
        ("scim_enabled", "admin", {}, on_rid),
    ]
    events = await log.events()
    assert [(e["type"], e["request_id"], e["data"]["tenant"]["scim_enabled"]) for e in events] == [
        ("scim.disabled", off_rid, False),
        ("scim.enabled", on_rid, True),
    ]
    assert events[0]["data"]["tenant"]["id"] == tenant.id

    status, page, _ = await admin(client, "GET", f"/admin/v1/tenants/{tenant.id}/audit?action=scim_disabled")
    assert status == 200
    assert [(i["action"], i["user_id"], i["request_id"]) for i in page["items"]] == [
        ("scim_disabled", None, off_rid)
    ]


async def test_settings_changes_are_audited_from_and_to_only_for_what_changed(client, db, new_tenant):
    tenant = await new_tenant(seats=10, allowed_domains=["example.com"])
    team = await create_team(client, tenant, "Sales")
    log = await ledger(db, tenant)
    path = f"/admin/v1/tenants/{tenant.id}"
    change = {
        "seats": 5,
        "flexible_licenses": False,  # as it was: not listed
        "allowed_domains": ["example.com", "Example.org"],
        "domain_teams": {"example.org": [team["id"]]},
        "rate_limit": {"preset": "strict"},
        "default_license": "free",  # as it was
        "fallback_license": "none",
    }
    status, _, rid = await admin(client, "PATCH", path, change)
    assert status == 200
    status, _, _ = await admin(client, "PATCH", path, change)  # the same again: nothing changed
    assert status == 200
    status, _, _ = await admin(client, "PATCH", path, {})
    assert status == 200

    assert await log.audit() == [
        {
            "action": "settings_changed",
            "actor": "admin",
            "user_id": None,
            "detail": {
                "changes": {
                    "seats": {"from": 10, "to": 5},
                    "allowed_domains": {"from": ["example.com"], "to": ["example.com", "example.org"]},
                    "domain_teams": {"from": {}, "to": {"example.org": [team["id"]]}},
                    "rate_limit": {"from": {}, "to": {"preset": "strict"}},
                    "fallback_license": {"from": "free_restricted", "to": "none"},
                }
            },
            "request_id": rid,
        }
    ]
    assert await log.events() == []  # settings have no event of their own


async def test_a_refused_settings_change_writes_nothing(client, db, tenant):
    log = await ledger(db, tenant)
    path = f"/admin/v1/tenants/{tenant.id}"
    before = await db.fetchrow("SELECT * FROM tenants WHERE id = $1::uuid", tenant.id)
    for bad in ({"seats": -1}, {"domain_teams": {"example.com": [str(uuid.uuid4())]}}, {"color": "red"}):
        status, body, _ = await admin(client, "PATCH", path, {"seats": 3, **bad})
        assert status == 400, body
    assert (await admin(client, "PATCH", f"/admin/v1/tenants/{uuid.uuid4()}", {"seats": 3}))[0] == 404
    assert (await admin(client, "PUT", f"/admin/v1/tenants/{uuid.uuid4()}/scim", {"enabled": False}))[
        0
    ] == 404
    assert await log.audit() == [] and await log.events() == []
    assert await db.fetchrow("SELECT * FROM tenants WHERE id = $1::uuid", tenant.id) == before


async def test_a_new_tenant_is_audited_with_its_settings(client, db):
    status, body, rid = await admin(client, "POST", "/admin/v1/tenants", {"name": "Audited Co", "seats": 3})
    assert status == 201
    assert await Ledger(db, body["id"]).audit() == [  # a new tenant: every row is new
        {
            "action": "tenant_created",
            "actor": "admin",
            "user_id": None,
            "detail": {"name": "Audited Co", "settings": {"seats": 3}},
            "request_id": rid,
        }
    ]


async def test_team_changes_are_audited_and_refused_ones_write_nothing(client, db, tenant):
    log = await ledger(db, tenant)
    teams = f"/admin/v1/tenants/{tenant.id}/teams"
    status, team, created_rid = await admin(client, "POST", teams, {"name": "Sales"})
    assert status == 201
    _, other, other_rid = await admin(client, "POST", teams, {"name": "Support"})
    assert (await admin(client, "POST", teams, {"name": "Sales"}))[0] == 409
    assert (await admin(client, "PATCH", f"{teams}/{team['id']}", {"name": "Support"}))[0] == 409
    status, _, renamed_rid = await admin(client, "PATCH", f"{teams}/{team['id']}", {"name": "Sales EMEA"})
    assert status == 200
    assert (await admin(client, "PATCH", f"{teams}/{team['id']}", {"name": "Sales EMEA"}))[
        0
    ] == 200  # as it is
    status, _, deleted_rid = await admin(client, "DELETE", f"{teams}/{team['id']}")
    assert status == 204
    assert (await admin(client, "DELETE", f"{teams}/{team['id']}"))[0] == 404

    assert [(a["action"], a["actor"], a["detail"], a["request_id"]) for a in await log.audit()] == [
        ("team_created", "admin", {"team_id": team["id"], "name": "Sales"}, created_rid),
        ("team_created", "admin", {"team_id": other["id"], "name": "Support"}, other_rid),
        ("team_renamed", "admin", {"team_id": team["id"], "from": "Sales", "to": "Sales EMEA"}, renamed_rid),
        ("team_deleted", "admin", {"team_id": team["id"], "name": "Sales EMEA"}, deleted_rid),
    ]


async def test_members_added_and_removed_by_hand_are_audited_with_the_user_and_announced(client, db, tenant):
    user = await post_user(client, tenant)
    team = await create_team(client, tenant, "Sales")
    log = await ledger(db, tenant)
    member = f"/admin/v1/tenants/{tenant.id}/teams/{team['id']}/members/{user['id']}"
    status, _, added_rid = await admin(client, "PUT", member)
    assert status == 204
    assert (await admin(client, "PUT", member))[0] == 204  # already a member: nothing changes
    status, _, removed_rid = await admin(client, "DELETE", member)
    assert status == 204
    assert (await admin(client, "DELETE", member))[0] == 404  # not a member any more

    detail = {"team_id": team["id"], "team": "Sales", "user_id": user["id"]}
    assert await log.audit() == [
        {
            "action": "member_added",
            "actor": "admin",
            "user_id": user["id"],
            "detail": detail,
            "request_id": added_rid,
        },
        {
            "action": "member_removed",
            "actor": "admin",
            "user_id": user["id"],
            "detail": detail,
            "request_id": removed_rid,
        },
    ]
    events = await log.events()
    assert [(e["type"], e["request_id"]) for e in events] == [
        ("team.member_added", added_rid),
        ("team.member_removed", removed_rid),
    ]
    for event in events:
        assert event["data"]["team"] == {"id": team["id"], "name": "Sales"}
        assert event["data"]["user"]["id"] == user["id"]
        assert event["data"]["user"]["userName"] == user["userName"]


async def test_a_hard_delete_is_audited_and_announced_as_user_deleted(client, db, settings, tenant):
    user = await post_user(client, tenant)
    await run_worker(settings)
    log = await ledger(db, tenant)
    status, _, rid = await admin(client, "DELETE", f"/admin/v1/tenants/{tenant.id}/users/{user['id']}")
    assert status == 200
    assert (await admin(client, "DELETE", f"/admin/v1/tenants/{tenant.id}/users/{user['id']}"))[0] == 404

    audit = await log.audit()
    hard = [a for a in audit if a["action"] == "hard_delete"]
    assert len(hard) == 1 and (hard[0]["actor"], hard[0]["user_id"], hard[0]["request_id"]) == (
        "admin",
        user["id"],
        rid,
    )
    assert hard[0]["detail"]["userName"] == user["userName"]
    assert {a["request_id"] for a in audit} == {rid}
    assert [(e["type"], e["request_id"], e["data"]) for e in await log.events()] == [
        ("user.deleted", rid, {"user": {"id": user["id"], "userName": user["userName"]}})
    ]


async def test_another_tenants_ids_are_404_and_nothing_is_written(client, db, new_tenant):
    mine, theirs = await new_tenant(), await new_tenant()
    their_user = await post_user(client, theirs)
    their_team = await create_team(client, theirs, "Theirs")
    my_team = await create_team(client, mine, "Mine")
    logs = [await ledger(db, mine), await ledger(db, theirs)]
    base = f"/admin/v1/tenants/{mine.id}"
    for method, path, body in (
        ("DELETE", f"{base}/scim/tokens/{theirs.token_id}", None),
        ("PATCH", f"{base}/teams/{their_team['id']}", {"name": "Taken over"}),
        ("DELETE", f"{base}/teams/{their_team['id']}", None),
        ("PUT", f"{base}/teams/{their_team['id']}/members/{their_user['id']}", None),
        ("PUT", f"{base}/teams/{my_team['id']}/members/{their_user['id']}", None),
        ("DELETE", f"{base}/teams/{my_team['id']}/members/{their_user['id']}", None),
        ("DELETE", f"{base}/users/{their_user['id']}", None),
    ):
        status, answer, _ = await admin(client, method, path, body)
        assert status == 404, (method, path, answer)
    for log in logs:
        assert await log.audit() == [] and await log.events() == []
    assert (
        await db.fetchval("SELECT revoked_at FROM scim_tokens WHERE id = $1::uuid", theirs.token_id) is None
    )
    assert await db.fetchval("SELECT name FROM teams WHERE id = $1::uuid", their_team["id"]) == "Theirs"


async def test_with_events_off_actions_are_still_audited(aiohttp_client, db, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, events=False)))
    tenant = await make_tenant(client)
    log = await ledger(db, tenant)
    await admin(client, "PUT", f"/admin/v1/tenants/{tenant.id}/scim", {"enabled": False})
    await admin(client, "POST", f"/admin/v1/tenants/{tenant.id}/scim/tokens", {"label": "quiet"})
    assert [a["action"] for a in await log.audit()] == ["scim_disabled", "token_created"]
    assert await log.events() == []


async def test_an_action_whose_event_a_webhook_wants_wakes_the_deliverer(aiohttp_client, db, settings):
    queue = f"scimsvc:test:{RUN_ID}:adminaudit:{uuid.uuid4().hex[:8]}"
    client = await aiohttp_client(create_app(dataclasses.replace(settings, queue_name=queue)))
    tenant = await make_tenant(client)
    await db.execute(
        "INSERT INTO webhook_endpoints (tenant_id, url, event_types) VALUES ($1::uuid, $2, $3)",
        tenant.id,
        "https://hooks.example.com/scim",
        ["token.revoked"],
    )
    redis = ArqRedis.from_url(settings.redis_url)
    try:
        status, _, _ = await admin(
            client, "POST", f"/admin/v1/tenants/{tenant.id}/scim/tokens", {"label": "a"}
        )
        assert status == 201  # token.created: not wanted, so nothing queued and nothing to wake
        assert await redis.queued_jobs(queue_name=queue) == []
        status, _, rid = await admin(
            client, "DELETE", f"/admin/v1/tenants/{tenant.id}/scim/tokens/{tenant.token_id}"
        )
        assert status == 204
        delivered = await db.fetch(
            "SELECT e.type, e.request_id FROM webhook_deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.tenant_id = $1::uuid",
            tenant.id,
        )
        assert [(d["type"], d["request_id"]) for d in delivered] == [("token.revoked", rid)]
        assert [j.function for j in await redis.queued_jobs(queue_name=queue)] == ["deliver_webhooks"]
    finally:
        await redis.delete(queue)
        await redis.aclose()


async def test_an_accepted_manual_license_is_audited_with_the_request_id(client, db, settings, new_tenant):
    tenant = await new_tenant(seats=1)
    user = await post_user(client, tenant)
    await run_worker(settings)
    await admin(client, "PUT", f"/admin/v1/tenants/{tenant.id}/scim", {"enabled": False})
    log = await ledger(db, tenant)
    status, _, rid = await admin(
        client, "PUT", f"/admin/v1/tenants/{tenant.id}/users/{user['id']}/license", {"license": "free"}
    )
    assert status == 202
    await run_worker(settings)
    manual = [a for a in await log.audit() if a["action"] == "manual_assignment"]
    assert [(a["actor"], a["user_id"], a["request_id"]) for a in manual] == [("admin", user["id"], rid)]


async def test_the_console_token_form_takes_a_label_and_its_audit_page_shows_the_row(client, db, tenant):
    csrf = await signed_in(client)
    log = await ledger(db, tenant)
    scim = f"/console/tenants/{tenant.id}/scim"
    resp = await client.post(
        scim + "/tokens", data={"csrf_token": csrf, "label": "Entra ID"}, allow_redirects=False
    )
    assert resp.status == 303  # to the page that shows the token once
    rid = resp.headers["X-Request-Id"]
    assert "Entra ID" in await (await client.get(resp.headers["Location"])).text()
    bad = await client.post(scim + "/tokens", data={"csrf_token": csrf, "label": "y" * 101})
    assert bad.status == 400 and "100" in await bad.text()
    [row] = await log.audit()
    assert (row["action"], row["actor"], row["detail"]["label"], row["request_id"]) == (
        "token_created",
        "admin",
        "Entra ID",
        rid,
    )
    page = await client.get(f"/console/tenants/{tenant.id}/audit?action=token_created")
    text = await page.text()
    assert page.status == 200 and rid in text and "Entra ID" in text
    assert re.search(r"<td>\(organization\)</td>", text)  # a row of no user
    page = await client.get(f"/console/tenants/{tenant.id}/audit?action=team_deleted")
    assert "No audit entries of this action" in await page.text()


async def test_the_cli_token_create_takes_a_label_and_is_audited_without_a_request_id(
    client, db, settings, tenant
):
    log = await ledger(db, tenant)
    env = service_env(settings.database_url, queue_name=settings.queue_name)
    out = run_scimsvc("token", "create", tenant.id, "--label", "Okta staging", env=env)
    assert out.returncode == 0, out.stderr
    token = re.search(r"SCIM token:\s+(\S+)", out.stdout).group(1)  # type: ignore[union-attr]
    assert "label:         Okta staging" in out.stdout
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/scim/v2/Users", headers=headers)).status == 200
    [row] = await log.audit()
    assert (row["action"], row["actor"], row["detail"]["label"], row["request_id"]) == (
        "token_created",
        "admin",
        "Okta staging",
        None,
    )
    assert token not in json.dumps(row) and token not in out.stderr
    assert [e["type"] for e in await log.events()] == ["token.created"]

    out = run_scimsvc("token", "create", tenant.id, "--label", "z" * 101, env=env)
    assert out.returncode == 2 and "label" in out.stderr
    assert len(await log.audit()) == 1

    out = run_scimsvc("token", "revoke", tenant.id, row["detail"]["token_id"], env=env)
    assert out.returncode == 0, out.stderr
    assert [(a["action"], a["detail"]["label"], a["request_id"]) for a in await log.audit()][1:] == [
        ("token_revoked", "Okta staging", None)
    ]


async def test_concurrent_changes_chain_from_and_to_and_one_switch_is_recorded_once(client, db, new_tenant):
    """Changes that race each other are audited in the order they committed: each row's `from` is the
    previous row's `to`, and many identical "SCIM off" requests turn it off, and record it, once."""
    tenant = await new_tenant(seats=10)
    log = await ledger(db, tenant)
    path = f"/admin/v1/tenants/{tenant.id}"
    answers = await asyncio.gather(*(admin(client, "PATCH", path, {"seats": n}) for n in (5, 3, 9, 7, 4, 8)))
    assert [status for status, _, _ in answers] == [200] * 6
    answers = await asyncio.gather(
        *(admin(client, "PUT", f"{path}/scim", {"enabled": False}) for _ in range(5))
    )
    assert [status for status, _, _ in answers] == [200] * 5

    rows = await log.audit()
    seats = [r["detail"]["changes"]["seats"] for r in rows if r["action"] == "settings_changed"]
    assert seats[0]["from"] == 10
    assert all(later["from"] == earlier["to"] for earlier, later in zip(seats, seats[1:], strict=False))
    assert seats[-1]["to"] == await db.fetchval("SELECT seats FROM tenants WHERE id = $1::uuid", tenant.id)
    assert [r["action"] for r in rows if r["action"].startswith("scim_")] == ["scim_disabled"]
    assert [e["type"] for e in await log.events()] == ["scim.disabled"]


async def test_an_audit_filter_that_cannot_be_an_action_is_refused(client, new_tenant):
    tenant = await new_tenant()
    for bad in ("\x00", "scim disabled", "x" * 65, "DROP"):
        resp = await client.get(
            f"/admin/v1/tenants/{tenant.id}/audit", params={"action": bad}, headers=ADMIN_HEADERS
        )
        assert resp.status == 400, bad
        assert "action must be an audit action name" in (await resp.json())["detail"]
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/audit", params={"action": " scim_disabled "}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200
