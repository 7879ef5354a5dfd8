"""Webhook endpoints as operators manage them, through the admin API and the console: registration with
its URL rules, the secret shown once, rotation, changes, replay, deliveries, audit rows, tenant isolation.

Events to replay are mostly written with `store/events.py:record_events` by `write_events` (the statement
an applied change writes them with: the worker's wiring of user events is another change); one test uses
the event of a real admin action (SCIM turned off).
"""

from __future__ import annotations

import dataclasses
import html
import re
import time
import uuid
from datetime import UTC, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import pytest
from arq.connections import RedisSettings, create_pool
from standardwebhooks import Webhook, WebhookVerificationError

from scimsvc.product.events import EventType, NewEvent
from scimsvc.product.webhooks import endpoint_secret, signature_header
from scimsvc.services.webhooks import REPLAY_LIMIT
from scimsvc.settings import Settings
from scimsvc.store.events import record_events
from scimsvc.web.app import create_app
from scimsvc.web.console import webhook_pages
from tests.conftest import ADMIN_HEADERS, QUEUE_NAME, Tenant, make_tenant
from tests.test_console import signed_in

SIGNING_KEY = "test-signing-key-" + uuid.uuid4().hex
LOOPBACK = "127.0.0.0/8,::1/128"
HOOK_URL = "https://localhost:8443/hooks/scim"  # resolves to 127.0.0.1, allowed by LOOPBACK


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, webhook_signing_key=SIGNING_KEY, webhook_allowed_networks=LOOPBACK)


@pytest.fixture
async def hooks(aiohttp_client: Any, hook_settings: Settings) -> Any:
    """A client of an app that may register endpoints on this machine's loopback addresses."""
    return await aiohttp_client(create_app(hook_settings))


async def add_endpoint(client: Any, base: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(base, json={"url": HOOK_URL, **body}, headers=ADMIN_HEADERS)
    assert resp.status == 201, await resp.text()
    return await resp.json()


def hooks_of(tenant: Tenant) -> str:
    return f"/admin/v1/tenants/{tenant.id}/webhooks"


async def write_events(db: asyncpg.Connection, tenant: Tenant, *types: EventType) -> list[asyncpg.Record]:
    """Events of the tenant, one transaction each (so each has its own time); their rows, in order."""
    written = []
    for event_type in types:
        async with db.transaction():
            await record_events(db, UUID(tenant.id), [NewEvent(event_type, {"note": "test"})])
            written.append(
                await db.fetchrow(
                    LAST_EVENT,
                    tenant.id,
                )
            )
    return written


ENDPOINTS_OF = "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1::uuid"
WEBHOOK_AUDIT_OF = "SELECT count(*) FROM audit_log WHERE tenant_id = $1::uuid AND action LIKE 'webhook%'"
LAST_EVENT = "SELECT id, type, occurred_at FROM events WHERE tenant_id = $1::uuid ORDER BY id DESC LIMIT 1"


async def deliveries_to(db: asyncpg.Connection, endpoint_id: str) -> list[int]:
    rows = await db.fetch(
        "SELECT event_id FROM webhook_deliveries WHERE endpoint_id = $1::uuid ORDER BY id", endpoint_id
    )
    return [r["event_id"] for r in rows]


async def audit_rows(db: asyncpg.Connection, endpoint_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT tenant_id, action, actor, detail::text AS detail, request_id FROM audit_log "
        "WHERE detail ->> 'endpoint_id' = $1 ORDER BY id",
        endpoint_id,
    )


# --- registering, the secret ----------------------------------------------------------------------------


async def test_a_new_endpoint_shows_its_whsec_secret_once_and_it_verifies_signatures(hooks, db):
    tenant = await make_tenant(hooks)
    resp = await hooks.post(
        hooks_of(tenant),
        json={"url": HOOK_URL, "description": "HR sync", "event_types": ["user.deleted", "user.created"]},
        headers={**ADMIN_HEADERS, "X-Request-Id": "create-hook-1"},
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert secret == endpoint_secret(SIGNING_KEY, UUID(created["id"]), 1)
    assert created["tenant_id"] == tenant.id
    assert created["event_types"] == ["user.created", "user.deleted"]
    assert created["enabled"] is True and created["secret_generation"] == 1

    body = b'{"id":"evt_1","type":"user.created"}'
    now = int(time.time())
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature_header([secret], message_id="evt_1", timestamp=now, body=body),
    }
    assert Webhook(secret).verify(body, headers)["id"] == "evt_1"

    # Never again: not on a read, not in the list, not in the audit log, not in the database.
    read = await (await hooks.get(f"{hooks_of(tenant)}/{created['id']}", headers=ADMIN_HEADERS)).json()
    listed = await (await hooks.get(hooks_of(tenant), headers=ADMIN_HEADERS)).json()
    assert "secret" not in read and [e["id"] for e in listed["items"]] == [created["id"]]
    assert all("secret" not in e for e in listed["items"])
    row = await db.fetchrow(
        "SELECT to_jsonb(w)::text AS row FROM webhook_endpoints w WHERE id = $1", UUID(created["id"])
    )
    assert secret not in row["row"] and secret[6:] not in row["row"]
    audit = await audit_rows(db, created["id"])
    assert [(r["tenant_id"], r["action"], r["actor"], r["request_id"]) for r in audit] == [
        (UUID(tenant.id), "webhook_created", "admin", "create-hook-1")
    ]
    assert secret[6:] not in audit[0]["detail"] and HOOK_URL in audit[0]["detail"]


async def test_without_a_signing_key_registration_is_409_naming_the_setting_and_stores_nothing(client, db):
    tenant = await make_tenant(client)
    resp = await client.post(hooks_of(tenant), json={"url": HOOK_URL}, headers=ADMIN_HEADERS)
    assert resp.status == 409
    assert "SCIMSVC_WEBHOOK_SIGNING_KEY" in (await resp.json())["detail"]
    assert await db.fetchval(ENDPOINTS_OF, tenant.id) == 0


REFUSED_URLS = [
    ("http://localhost:8080/hook", "plain http"),  # the development setting is off
    ("ftp://example.com/hook", "https://"),
    ("https://user:pw@localhost/hook", "user name or password"),
    ("https://localhost/hook#part", "fragment"),
    ("https:///hook", "no host"),
    ("https://10.1.2.3/hook", "private, loopback, link-local"),
    ("https://169.254.169.254/latest/meta-data", "private, loopback, link-local"),
    ("https://[fd00::1]/hook", "private, loopback, link-local"),
    ("https://127.0.0.1/hook", "private, loopback, link-local"),
    ("https://vm/hook", "resolves to 127.0.0.1"),  # a name (/etc/hosts) for a loopback address
    ("https://no-such-host.invalid/hook", "does not resolve"),
    ("https://" + "a" * 2000 + ".com/", "2000"),
    # Hosts the worker's HTTP client would not read as these rules do: refused here, not at every attempt.
    ("https://ex\u00adample.com/hook", "must be written in ASCII"),  # a soft hyphen
    ("https://\u2603.net/", "must be written in ASCII"),
    ("https://example.com:99999/hook", "not a valid URL"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
async def test_a_url_that_may_not_be_reached_is_refused_and_nothing_is_stored(
    aiohttp_client, settings, db, url, reason
):
    # Private and loopback ranges are not allowed here (no SCIMSVC_WEBHOOK_ALLOWED_NETWORKS).
    client = await aiohttp_client(create_app(dataclasses.replace(settings, webhook_signing_key=SIGNING_KEY)))
    tenant = await make_tenant(client)
    resp = await client.post(hooks_of(tenant), json={"url": url}, headers=ADMIN_HEADERS)
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["scimType"] == "invalidValue" and reason in body["detail"]
    assert await db.fetchval(ENDPOINTS_OF, tenant.id) == 0
    assert await db.fetchval(WEBHOOK_AUDIT_OF, tenant.id) == 0


async def test_plain_http_goes_only_to_an_allowed_loopback_address_with_the_development_setting(
    aiohttp_client, hook_settings
):
    client = await aiohttp_client(create_app(dataclasses.replace(hook_settings, webhook_allow_http=True)))
    tenant = await make_tenant(client)
    ok = await client.post(hooks_of(tenant), json={"url": "http://127.0.0.1:9911/in"}, headers=ADMIN_HEADERS)
    assert ok.status == 201, await ok.text()
    resp = await client.post(hooks_of(tenant), json={"url": "http://example.com/in"}, headers=ADMIN_HEADERS)
    assert resp.status == 400 and "loopback" in (await resp.json())["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"url": HOOK_URL, "event_types": ["user.created", "user.exploded"]}, "user.exploded"),
        ({"url": HOOK_URL, "event_types": "user.created"}, "event_types"),
        ({"url": HOOK_URL, "secret": "whsec_mine"}, "secret"),
        ({"url": HOOK_URL, "description": "x" * 201}, "description"),
        ({"description": "no url"}, "url"),
        ({"url": 42}, "url"),
    ],
)
async def test_a_bad_registration_body_is_a_400_naming_the_field(hooks, db, body, needle):
    tenant = await make_tenant(hooks)
    resp = await hooks.post(hooks_of(tenant), json=body, headers=ADMIN_HEADERS)
    assert resp.status == 400
    assert needle in (await resp.json())["detail"]
    assert await db.fetchval(ENDPOINTS_OF, tenant.id) == 0


async def test_registering_for_a_tenant_that_does_not_exist_is_404(hooks):
    resp = await hooks.post(
        hooks_of(Tenant(str(uuid.uuid4()), "", "")), json={"url": HOOK_URL}, headers=ADMIN_HEADERS
    )
    assert resp.status == 404


# --- changing, rotating, deleting -----------------------------------------------------------------------


async def test_changes_are_audited_from_to_and_turning_on_again_clears_why_it_was_off(hooks, db):
    tenant = await make_tenant(hooks)
    created = await add_endpoint(hooks, hooks_of(tenant), description="old")
    url = f"{hooks_of(tenant)}/{created['id']}"

    resp = await hooks.patch(
        url,
        json={"description": "new", "event_types": ["license.changed"], "url": HOOK_URL},
        headers={**ADMIN_HEADERS, "X-Request-Id": "patch-1"},
    )
    assert resp.status == 200, await resp.text()
    changed = await resp.json()
    assert changed["description"] == "new" and changed["event_types"] == ["license.changed"]

    off = await (await hooks.patch(url, json={"enabled": False}, headers=ADMIN_HEADERS)).json()
    assert off["enabled"] is False and off["disabled_reason"] == "disabled by an operator"
    # As the worker leaves an endpoint it disabled after failing throughout the period.
    await db.execute(
        "UPDATE webhook_endpoints SET disabled_reason = 'failing since yesterday', failing_since = now() "
        "WHERE id = $1::uuid",
        created["id"],
    )
    on = await (await hooks.patch(url, json={"enabled": True}, headers=ADMIN_HEADERS)).json()
    assert on["enabled"] is True and on["disabled_reason"] is None and on["failing_since"] is None
    same = await hooks.patch(url, json={"enabled": True}, headers=ADMIN_HEADERS)  # nothing changes: no row
    assert same.status == 200

    rows = await audit_rows(db, created["id"])
    assert [r["action"] for r in rows] == [
        "webhook_created",
        "webhook_updated",
        "webhook_disabled",
        "webhook_enabled",
    ]
    updated = await db.fetchval(
        "SELECT detail FROM audit_log WHERE action = 'webhook_updated' AND detail ->> 'endpoint_id' = $1",
        created["id"],
    )
    assert orjson.loads(updated)["changes"] == {
        "description": {"from": "old", "to": "new"},
        "event_types": {"from": [], "to": ["license.changed"]},
    }
    assert rows[1]["request_id"] == "patch-1"
    assert "failing since yesterday" in rows[3]["detail"]


async def test_a_bad_change_is_a_400_and_changes_nothing(hooks, db):
    tenant = await make_tenant(hooks)
    created = await add_endpoint(hooks, hooks_of(tenant))
    url = f"{hooks_of(tenant)}/{created['id']}"
    for body in (
        {"url": "https://10.0.0.1/"},
        {"event_types": ["nope"]},
        {"enabled": "maybe"},
        {"id": "x"},
        [],
    ):
        resp = await hooks.patch(url, json=body, headers=ADMIN_HEADERS)
        assert resp.status == 400, (body, await resp.text())
    row = await db.fetchrow(
        "SELECT url, event_types, enabled FROM webhook_endpoints WHERE id = $1::uuid", created["id"]
    )
    assert (row["url"], row["event_types"], row["enabled"]) == (HOOK_URL, [], True)
    assert [r["action"] for r in await audit_rows(db, created["id"])] == ["webhook_created"]


async def test_rotating_gives_a_new_secret_and_the_previous_one_signs_during_the_overlap(hooks, db):
    tenant = await make_tenant(hooks)
    created = await add_endpoint(hooks, hooks_of(tenant))
    resp = await hooks.post(
        f"{hooks_of(tenant)}/{created['id']}/rotate-secret",
        headers={**ADMIN_HEADERS, "X-Request-Id": "rot-1"},
    )
    assert resp.status == 200, await resp.text()
    rotated = await resp.json()
    assert rotated["secret_generation"] == 2
    assert rotated["secret"] != created["secret"]
    assert rotated["secret"] == endpoint_secret(SIGNING_KEY, UUID(created["id"]), 2)
    row = await db.fetchrow(
        "SELECT previous_until - now() AS left FROM webhook_endpoints WHERE id = $1::uuid", created["id"]
    )
    assert timedelta(hours=23) < row["left"] <= timedelta(hours=24)  # SCIMSVC_WEBHOOK_SECRET_OVERLAP_HOURS

    # A receiver holding either secret verifies what is signed with both.
    now, body = int(time.time()), b"{}"
    both = signature_header(
        [rotated["secret"], created["secret"]], message_id="evt_9", timestamp=now, body=body
    )
    headers = {"webhook-id": "evt_9", "webhook-timestamp": str(now), "webhook-signature": both}
    for secret in (created["secret"], rotated["secret"]):
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint_secret(SIGNING_KEY, UUID(created["id"]), 3)).verify(body, headers)

    audit = await audit_rows(db, created["id"])
    assert [(r["action"], r["request_id"]) for r in audit][-1] == ("webhook_secret_rotated", "rot-1")
    assert rotated["secret"][6:] not in audit[-1]["detail"]

    # Again within the overlap (a reload of the answer, say) would stop the secret receivers hold: refused,
    # unless forced.
    url = f"{hooks_of(tenant)}/{created['id']}/rotate-secret"
    resp = await hooks.post(url, headers=ADMIN_HEADERS)
    assert resp.status == 409
    assert "rotated already" in (await resp.json())["detail"]
    assert (
        await db.fetchval(
            "SELECT secret_generation FROM webhook_endpoints WHERE id = $1::uuid", created["id"]
        )
        == 2
    )
    resp = await hooks.post(url, json={"force": "yes please"}, headers=ADMIN_HEADERS)
    assert resp.status == 400
    resp = await hooks.post(url, json={"force": True}, headers=ADMIN_HEADERS)
    assert resp.status == 200
    assert (await resp.json())["secret_generation"] == 3


async def test_deleting_an_endpoint_removes_it_with_its_deliveries_and_is_audited(hooks, db):
    tenant = await make_tenant(hooks)
    created = await add_endpoint(hooks, hooks_of(tenant))
    await write_events(db, tenant, EventType.USER_CREATED)
    assert len(await deliveries_to(db, created["id"])) == 1
    url = f"{hooks_of(tenant)}/{created['id']}"
    resp = await hooks.delete(url, headers={**ADMIN_HEADERS, "X-Request-Id": "del-1"})
    assert resp.status == 204
    assert (await hooks.get(url, headers=ADMIN_HEADERS)).status == 404
    assert (await hooks.delete(url, headers=ADMIN_HEADERS)).status == 404
    assert await deliveries_to(db, created["id"]) == []
    assert [(r["action"], r["request_id"]) for r in await audit_rows(db, created["id"])][-1] == (
        "webhook_deleted",
        "del-1",
    )


# --- tenants and the operator ---------------------------------------------------------------------------


async def test_another_tenants_endpoint_is_404_on_every_route_and_nothing_changes(hooks, db):
    owner, stranger = await make_tenant(hooks), await make_tenant(hooks)
    created = await add_endpoint(hooks, hooks_of(owner))
    events = await write_events(db, owner, EventType.USER_CREATED)
    operator_base = "/admin/v1/webhooks"
    for base in (hooks_of(stranger), operator_base):
        url = f"{base}/{created['id']}"
        calls = [
            hooks.get(url, headers=ADMIN_HEADERS),
            hooks.patch(url, json={"enabled": False}, headers=ADMIN_HEADERS),
            hooks.post(url + "/rotate-secret", headers=ADMIN_HEADERS),
            hooks.post(url + "/replay", json={"event_id": f"evt_{events[0]['id']}"}, headers=ADMIN_HEADERS),
            hooks.get(url + "/deliveries", headers=ADMIN_HEADERS),
            hooks.delete(url, headers=ADMIN_HEADERS),
        ]
        for call in calls:
            resp = await call
            assert resp.status == 404, (resp.method, resp.url, await resp.text())
    listed = await (await hooks.get(hooks_of(stranger), headers=ADMIN_HEADERS)).json()
    assert listed["items"] == []
    row = await db.fetchrow(
        "SELECT enabled, secret_generation FROM webhook_endpoints WHERE id = $1::uuid", created["id"]
    )
    assert (row["enabled"], row["secret_generation"]) == (True, 1)
    assert [r["action"] for r in await audit_rows(db, created["id"])] == ["webhook_created"]
    assert len(await deliveries_to(db, created["id"])) == 1


async def test_an_operator_endpoint_hears_every_tenant_and_its_changes_are_in_the_operator_audit_log(
    hooks, db
):
    created = await add_endpoint(hooks, "/admin/v1/webhooks", event_types=["user.created"])
    assert created["tenant_id"] is None
    one, two = await make_tenant(hooks), await make_tenant(hooks)
    assert (await hooks.get(f"{hooks_of(one)}/{created['id']}", headers=ADMIN_HEADERS)).status == 404
    listed = await (await hooks.get("/admin/v1/webhooks", headers=ADMIN_HEADERS)).json()
    assert created["id"] in [e["id"] for e in listed["items"]]
    first = await write_events(db, one, EventType.USER_CREATED, EventType.USER_UPDATED)
    second = await write_events(db, two, EventType.USER_CREATED)
    assert await deliveries_to(db, created["id"]) == [first[0]["id"], second[0]["id"]]

    resp = await hooks.patch(
        f"/admin/v1/webhooks/{created['id']}",
        json={"description": "every organization"},  # operator rows show on every test's pages
        headers={**ADMIN_HEADERS, "X-Request-Id": "op-patch"},
    )
    assert resp.status == 200
    audit = await (await hooks.get("/admin/v1/audit?limit=1000", headers=ADMIN_HEADERS)).json()
    mine = [i for i in audit["items"] if i["detail"].get("endpoint_id") == created["id"]]
    assert [(i["action"], i["actor"]) for i in mine] == [
        ("webhook_updated", "admin"),
        ("webhook_created", "admin"),
    ]
    assert mine[0]["request_id"] == "op-patch"
    assert [r["tenant_id"] for r in await audit_rows(db, created["id"])] == [None, None]
    await hooks.delete(f"/admin/v1/webhooks/{created['id']}", headers=ADMIN_HEADERS)


# --- replay and deliveries ------------------------------------------------------------------------------


async def queued_job_names(settings: Settings) -> list[str]:
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        return [j.function for j in await redis.queued_jobs(queue_name=QUEUE_NAME)]
    finally:
        await redis.aclose()


async def test_replaying_one_event_queues_a_delivery_to_that_endpoint_only_and_wakes_the_deliverer(
    hooks, hook_settings, db
):
    tenant = await make_tenant(hooks)
    target = await add_endpoint(hooks, hooks_of(tenant))
    other = await add_endpoint(hooks, hooks_of(tenant))
    [event] = await write_events(db, tenant, EventType.USER_DEACTIVATED)
    assert await deliveries_to(db, target["id"]) == [event["id"]]

    resp = await hooks.post(
        f"{hooks_of(tenant)}/{target['id']}/replay",
        json={"event_id": f"evt_{event['id']}"},
        headers={**ADMIN_HEADERS, "X-Request-Id": "replay-1"},
    )
    assert resp.status == 202, await resp.text()
    assert await resp.json() == {"queued": 1}
    assert await deliveries_to(db, target["id"]) == [event["id"], event["id"]]
    assert await deliveries_to(db, other["id"]) == [event["id"]]
    assert "deliver_webhooks" in await queued_job_names(hook_settings)
    audit = await audit_rows(db, target["id"])
    assert (audit[-1]["action"], audit[-1]["request_id"]) == ("webhook_replayed", "replay-1")
    assert f"evt_{event['id']}" in audit[-1]["detail"]


async def test_replaying_another_tenants_event_is_404_and_queues_nothing(hooks, db):
    owner, stranger = await make_tenant(hooks), await make_tenant(hooks)
    endpoint = await add_endpoint(hooks, hooks_of(stranger))
    [event] = await write_events(db, owner, EventType.USER_CREATED)
    for event_id in (f"evt_{event['id']}", "evt_999999999999"):
        resp = await hooks.post(
            f"{hooks_of(stranger)}/{endpoint['id']}/replay",
            json={"event_id": event_id},
            headers=ADMIN_HEADERS,
        )
        assert resp.status == 404, await resp.text()
    assert await deliveries_to(db, endpoint["id"]) == []
    assert [r["action"] for r in await audit_rows(db, endpoint["id"])] == ["webhook_created"]


async def test_replaying_a_time_range_queues_the_wanted_events_that_occurred_in_it(hooks, db):
    tenant, other_tenant = await make_tenant(hooks), await make_tenant(hooks)
    events = await write_events(
        db,
        tenant,
        EventType.USER_CREATED,
        EventType.LICENSE_CHANGED,
        EventType.USER_UPDATED,
        EventType.USER_CREATED,
        EventType.USER_CREATED,
    )
    await write_events(db, other_tenant, EventType.USER_CREATED)
    endpoint = await add_endpoint(hooks, hooks_of(tenant), event_types=["user.created", "user.updated"])
    neighbour = await add_endpoint(hooks, hooks_of(tenant))
    since, until = events[0]["occurred_at"], events[4]["occurred_at"]  # until is excluded: not the last one
    resp = await hooks.post(
        f"{hooks_of(tenant)}/{endpoint['id']}/replay",
        json={"since": since.isoformat(), "until": until.isoformat()},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 202, await resp.text()
    assert await resp.json() == {"queued": 3}
    assert await deliveries_to(db, endpoint["id"]) == [events[0]["id"], events[2]["id"], events[3]["id"]]
    assert await deliveries_to(db, neighbour["id"]) == []

    empty = await hooks.post(
        f"{hooks_of(tenant)}/{endpoint['id']}/replay",
        json={"since": "2001-01-01T00:00:00Z", "until": "2001-01-02T00:00:00Z"},
        headers=ADMIN_HEADERS,
    )
    assert await empty.json() == {"queued": 0}


async def test_an_operator_endpoint_replays_every_tenants_events(hooks, db):
    one, two = await make_tenant(hooks), await make_tenant(hooks)
    first = await write_events(db, one, EventType.SCIM_DISABLED)
    second = await write_events(db, two, EventType.SCIM_DISABLED)
    endpoint = await add_endpoint(hooks, "/admin/v1/webhooks", event_types=["scim.disabled"])
    base = f"/admin/v1/webhooks/{endpoint['id']}/replay"
    since, until = first[0]["occurred_at"], second[0]["occurred_at"] + timedelta(microseconds=1)
    resp = await hooks.post(
        base, json={"since": since.isoformat(), "until": until.isoformat()}, headers=ADMIN_HEADERS
    )
    assert resp.status == 202
    queued = await deliveries_to(db, endpoint["id"])
    assert first[0]["id"] in queued and second[0]["id"] in queued
    await hooks.delete(f"/admin/v1/webhooks/{endpoint['id']}", headers=ADMIN_HEADERS)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "either event_id"),
        ({"event_id": "evt_1", "since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}, "either"),
        ({"since": "2026-01-01T00:00:00Z"}, "both since and until"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "before until"),
        ({"since": "2026-01-01T00:00:00", "until": "2026-01-02T00:00:00"}, "since"),  # no time zone
        ({"since": "yesterday", "until": "today"}, "since"),
        ({"event_id": "12"}, "evt_12"),
        ({"event_id": "evt_0"}, "evt_12"),
        ({"event_id": "evt_99999999999999999999"}, "evt_12"),
        ({"event": "evt_1"}, "event"),
        # In UTC these fall outside the years a timestamp holds.
        ({"since": "0001-01-01T00:00:00+14:00", "until": "0001-01-02T00:00:00+14:00"}, "out of range"),
        ({"since": "9999-12-31T22:00:00-10:00", "until": "9999-12-31T23:00:00-10:00"}, "out of range"),
    ],
)
async def test_a_bad_replay_request_is_a_400_and_queues_nothing(hooks, db, body, needle):
    tenant = await make_tenant(hooks)
    endpoint = await add_endpoint(hooks, hooks_of(tenant))
    resp = await hooks.post(f"{hooks_of(tenant)}/{endpoint['id']}/replay", json=body, headers=ADMIN_HEADERS)
    assert resp.status == 400, await resp.text()
    assert needle in (await resp.json())["detail"]
    assert await deliveries_to(db, endpoint["id"]) == []


async def test_replay_to_a_disabled_endpoint_or_of_an_unwanted_type_is_refused(hooks, db):
    tenant = await make_tenant(hooks)
    endpoint = await add_endpoint(hooks, hooks_of(tenant), event_types=["user.created"])
    [event] = await write_events(db, tenant, EventType.TOKEN_REVOKED)
    url = f"{hooks_of(tenant)}/{endpoint['id']}"
    unwanted = await hooks.post(
        url + "/replay", json={"event_id": f"evt_{event['id']}"}, headers=ADMIN_HEADERS
    )
    assert unwanted.status == 400 and "token.revoked" in (await unwanted.json())["detail"]
    await hooks.patch(url, json={"enabled": False}, headers=ADMIN_HEADERS)
    disabled = await hooks.post(
        url + "/replay", json={"event_id": f"evt_{event['id']}"}, headers=ADMIN_HEADERS
    )
    assert disabled.status == 409 and "disabled" in (await disabled.json())["detail"]
    assert await deliveries_to(db, endpoint["id"]) == []


async def test_deliveries_list_newest_first_with_their_attempts_in_pages(hooks, db):
    tenant = await make_tenant(hooks)
    endpoint = await add_endpoint(hooks, hooks_of(tenant))
    events = await write_events(
        db, tenant, EventType.USER_CREATED, EventType.USER_UPDATED, EventType.USER_DELETED
    )
    first = await db.fetchval(
        "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1::uuid AND event_id = $2",
        endpoint["id"],
        events[0]["id"],
    )
    # As the worker records them: a refused attempt, then a success.
    await db.execute(
        "INSERT INTO webhook_attempts (delivery_id, at, status, latency_ms, excerpt) VALUES "
        "($1, now() - interval '1 minute', 503, 12.5, 'busy'), ($1, now(), 204, 3.25, '')",
        first,
    )
    await db.execute(
        "UPDATE webhook_deliveries SET state = 'delivered', attempts = 2, finished_at = now() WHERE id = $1",
        first,
    )
    base = f"{hooks_of(tenant)}/{endpoint['id']}/deliveries"
    page = await (await hooks.get(base + "?limit=2", headers=ADMIN_HEADERS)).json()
    assert [d["event_id"] for d in page["items"]] == [f"evt_{events[2]['id']}", f"evt_{events[1]['id']}"]
    assert page["items"][0]["state"] == "pending" and page["items"][0]["next_attempt_at"]
    assert page["items"][0]["event_type"] == "user.deleted" and page["items"][0]["attempts"] == []
    rest = await (
        await hooks.get(f"{base}?limit=2&before={page['next_before']}", headers=ADMIN_HEADERS)
    ).json()
    [delivered] = rest["items"]
    assert rest["next_before"] is None
    assert delivered["state"] == "delivered" and delivered["next_attempt_at"] is None
    assert delivered["attempt_count"] == 2 and delivered["tenant_id"] == tenant.id
    assert [(a["status"], a["latency_ms"], a["excerpt"]) for a in delivered["attempts"]] == [
        (204, 3.25, ""),
        (503, 12.5, "busy"),
    ]
    for bad in ("?before=x", "?before=0", "?limit=many"):
        assert (await hooks.get(base + bad, headers=ADMIN_HEADERS)).status == 400


async def test_the_webhook_routes_need_the_operator_key(hooks):
    tenant = await make_tenant(hooks)
    for path in ("/admin/v1/webhooks", hooks_of(tenant), "/admin/v1/audit"):
        assert (await hooks.get(path)).status == 401
        assert (await hooks.get(path, headers={"Authorization": f"Bearer {tenant.token}"})).status == 401


# --- the console ----------------------------------------------------------------------------------------

ZERO = "00000000-0000-0000-0000-000000000000"
SECRET_SHOWN = re.compile(r"whsec_[A-Za-z0-9+/=]+")
SECRET_ID = re.compile(r'href="/console/webhooks/([0-9a-f-]{36})/delete"')


@pytest.mark.parametrize(
    "path",
    [
        "/console/webhooks",
        f"/console/webhooks/{ZERO}",
        f"/console/tenants/{ZERO}/webhooks",
        f"/console/tenants/{ZERO}/webhooks/{ZERO}",
    ],
)
async def test_every_webhook_console_page_sends_a_stranger_to_the_sign_in_page(client, path):
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"


async def console_add(hooks: Any, base: str, csrf: str, **fields: Any) -> Any:
    data = [("csrf_token", csrf), ("url", HOOK_URL), ("description", "from the console")]
    data += [
        (k, v) for k, values in fields.items() for v in (values if isinstance(values, list) else [values])
    ]
    return await hooks.post(base, data=data, allow_redirects=False)


async def test_the_console_adds_an_endpoint_and_shows_its_secret_once(hooks, db):
    csrf = await signed_in(hooks)
    tenant = await make_tenant(hooks)
    base = f"/console/tenants/{tenant.id}/webhooks"
    empty = await hooks.get(base)
    assert empty.status == 200 and "No endpoints yet" in await empty.text()
    resp = await console_add(hooks, base, csrf, event_types=["user.created", "team.member_added"])
    row = await db.fetchrow("SELECT * FROM webhook_endpoints WHERE tenant_id = $1::uuid", tenant.id)
    secret_page = f"{base}/{row['id']}/secret"
    assert resp.status == 303 and resp.headers["Location"] == secret_page  # never the secret in a URL
    assert not SECRET_SHOWN.search(await resp.text())
    cookie = resp.cookies[webhook_pages.SECRET_COOKIE]
    assert cookie["path"] == secret_page and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert row["event_types"] == ["team.member_added", "user.created"]
    assert row["description"] == "from the console"
    shown = await hooks.get(secret_page)
    assert shown.status == 200
    assert SECRET_SHOWN.findall(await shown.text()) == [endpoint_secret(SIGNING_KEY, row["id"], 1)]
    # A reload shows no secret and adds nothing.
    again = await hooks.get(secret_page)
    body = await again.text()
    assert again.status == 200 and not SECRET_SHOWN.search(body) and "shown once" in body
    assert await db.fetchval(ENDPOINTS_OF, tenant.id) == 1
    for path in (base, f"{base}/{row['id']}"):
        again = await hooks.get(path)
        assert again.status == 200
        assert not SECRET_SHOWN.search(await again.text())
    listed = await (await hooks.get(base)).text()
    assert HOOK_URL in listed and "team.member_added, user.created" in listed
    assert [r["action"] for r in await audit_rows(db, str(row["id"]))] == ["webhook_created"]


async def test_a_webhook_secrets_cookie_shows_nothing_to_another_session_or_organization(
    hooks, aiohttp_client, hook_settings
):
    csrf = await signed_in(hooks)
    tenant, other = await make_tenant(hooks), await make_tenant(hooks)
    resp = await console_add(hooks, f"/console/tenants/{tenant.id}/webhooks", csrf)
    value = resp.cookies[webhook_pages.SECRET_COOKIE].value
    secret_page = resp.headers["Location"]
    stranger = await aiohttp_client(create_app(hook_settings))
    await signed_in(stranger)  # another operator session, the same cookie
    foreign_page = secret_page.replace(tenant.id, other.id)
    for client, path in ((stranger, secret_page), (hooks, foreign_page)):
        client.session.cookie_jar.update_cookies({webhook_pages.SECRET_COOKIE: value}, client.make_url(path))
        answer = await client.get(path)
        assert not SECRET_SHOWN.search(await answer.text()), path
    assert SECRET_SHOWN.search(await (await hooks.get(secret_page)).text())  # its own session: once
    tampered = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    hooks.session.cookie_jar.update_cookies(
        {webhook_pages.SECRET_COOKIE: tampered}, hooks.make_url(secret_page)
    )
    assert not SECRET_SHOWN.search(await (await hooks.get(secret_page)).text())


async def test_a_console_form_without_the_csrf_token_is_refused_and_changes_nothing(hooks, db):
    await signed_in(hooks)
    tenant = await make_tenant(hooks)
    resp = await console_add(hooks, f"/console/tenants/{tenant.id}/webhooks", "forged")
    assert resp.status == 403
    assert await db.fetchval(ENDPOINTS_OF, tenant.id) == 0


async def test_the_console_shows_a_refused_url_with_its_reason_and_the_form_as_typed(hooks, db):
    csrf = await signed_in(hooks)
    tenant = await make_tenant(hooks)
    data = {
        "csrf_token": csrf,
        "url": "http://example.com/in",
        "description": "kept",
        "event_types": "user.created",
    }
    resp = await hooks.post(f"/console/tenants/{tenant.id}/webhooks", data=data)
    assert resp.status == 400
    text = html.unescape(await resp.text())
    assert "must start with https://" in text and 'value="kept"' in text
    assert 'value="user.created" checked' in text
    assert await db.fetchval(ENDPOINTS_OF, tenant.id) == 0


async def test_the_console_disables_rotates_replays_and_deletes_an_endpoint(hooks, db):
    csrf = await signed_in(hooks)
    tenant = await make_tenant(hooks)  # its token.created event is not one this endpoint wants
    created = await add_endpoint(hooks, hooks_of(tenant), event_types=["user.created", "user.updated"])
    events = await write_events(db, tenant, EventType.USER_CREATED, EventType.USER_UPDATED)
    page_url = f"/console/tenants/{tenant.id}/webhooks/{created['id']}"

    await db.execute(
        "INSERT INTO webhook_attempts (delivery_id, status, latency_ms, excerpt) "
        "SELECT id, 502, 41, 'bad gateway from the receiver' FROM webhook_deliveries "
        "WHERE endpoint_id = $1::uuid",
        created["id"],
    )
    shown = await (await hooks.get(page_url)).text()
    assert f"evt_{events[0]['id']}" in shown and f"evt_{events[1]['id']}" in shown  # deliveries listed
    assert "502, 41 ms" in shown and "bad gateway from the receiver" in shown  # with their attempts

    unconfirmed = await hooks.post(page_url + "/enabled", data={"csrf_token": csrf, "enabled": "false"})
    assert unconfirmed.status == 400 and "confirm first" in await unconfirmed.text()
    asked = await (await hooks.get(page_url + "/disable")).text()  # the confirmation page's form
    assert f'action="{page_url}/enabled"' in asked and 'name="confirm" value="on"' in asked
    off = await hooks.post(
        page_url + "/enabled",
        data={"csrf_token": csrf, "enabled": "false", "confirm": "on"},
        allow_redirects=False,
    )
    assert off.status == 303 and off.headers["Location"] == page_url + "?done=webhook-disabled"
    assert "Endpoint disabled" in await (await hooks.get(off.headers["Location"])).text()
    on = await hooks.post(
        page_url + "/enabled", data={"csrf_token": csrf, "enabled": "true"}, allow_redirects=False
    )
    assert on.headers["Location"] == page_url + "?done=webhook-enabled"

    unconfirmed = await hooks.post(page_url + "/rotate", data={"csrf_token": csrf})
    assert unconfirmed.status == 400 and "confirm first" in await unconfirmed.text()
    asked = await (await hooks.get(page_url + "/rotate")).text()
    assert f'action="{page_url}/rotate"' in asked and f'href="{page_url}"' in asked  # and Cancel
    rotated = await hooks.post(
        page_url + "/rotate", data={"csrf_token": csrf, "confirm": "on"}, allow_redirects=False
    )
    assert rotated.status == 303 and rotated.headers["Location"] == page_url + "/secret"
    shown = await hooks.get(rotated.headers["Location"])
    assert shown.status == 200
    assert SECRET_SHOWN.findall(await shown.text()) == [endpoint_secret(SIGNING_KEY, UUID(created["id"]), 2)]
    reloaded = await hooks.get(rotated.headers["Location"])  # a reload: no secret, no second rotation
    assert reloaded.status == 200 and not SECRET_SHOWN.search(await reloaded.text())
    generation = "SELECT secret_generation FROM webhook_endpoints WHERE id = $1::uuid"
    assert await db.fetchval(generation, created["id"]) == 2

    replayed = await hooks.post(
        page_url + "/replay",
        data={"csrf_token": csrf, "event_id": f"evt_{events[0]['id']}"},
        allow_redirects=False,
    )
    assert replayed.status == 303 and replayed.headers["Location"] == page_url + "?done=webhook-replayed"
    # datetime-local fields, typed in UTC to the second: a range around both events.
    since = events[0]["occurred_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    until = (events[1]["occurred_at"] + timedelta(seconds=2)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    ranged = await hooks.post(
        page_url + "/replay", data={"csrf_token": csrf, "since": since, "until": until}, allow_redirects=False
    )
    assert ranged.status == 303, await ranged.text()
    first, second = events[0]["id"], events[1]["id"]
    assert await deliveries_to(db, created["id"]) == [first, second, first, first, second]
    missing = await hooks.post(page_url + "/replay", data={"csrf_token": csrf, "event_id": "evt_999999999"})
    assert missing.status == 404
    assert "There is no event evt_999999999 among this organization's events" in html.unescape(
        await missing.text()
    )
    bad = await hooks.post(page_url + "/replay", data={"csrf_token": csrf, "event_id": "twelve"})
    assert bad.status == 400 and 'value="twelve"' in await bad.text()

    edited = await hooks.post(
        page_url + "/edit",
        data={"csrf_token": csrf, "url": HOOK_URL, "description": "renamed"},
        allow_redirects=False,
    )
    assert edited.headers["Location"] == page_url + "?done=webhook-saved"

    kept = await hooks.post(page_url + "/delete", data={"csrf_token": csrf})
    assert kept.status == 400
    asked = await (await hooks.get(page_url + "/delete")).text()
    assert f'action="{page_url}/delete"' in asked and HOOK_URL in asked
    deleted = await hooks.post(
        page_url + "/delete", data={"csrf_token": csrf, "confirm": "on"}, allow_redirects=False
    )
    assert deleted.headers["Location"] == f"/console/tenants/{tenant.id}/webhooks?done=webhook-deleted"
    assert await db.fetchval("SELECT count(*) FROM webhook_endpoints WHERE id = $1::uuid", created["id"]) == 0
    assert [r["action"] for r in await audit_rows(db, created["id"])] == [
        "webhook_created",
        "webhook_disabled",
        "webhook_enabled",
        "webhook_secret_rotated",
        "webhook_replayed",
        "webhook_replayed",
        "webhook_updated",
        "webhook_deleted",
    ]


async def test_the_console_answers_404_for_another_tenants_endpoint(hooks, db):
    csrf = await signed_in(hooks)
    owner, stranger = await make_tenant(hooks), await make_tenant(hooks)
    created = await add_endpoint(hooks, hooks_of(owner))
    for base in (f"/console/tenants/{stranger.id}/webhooks", "/console/webhooks"):
        for page in ("", "/disable", "/rotate", "/delete"):  # nor its confirmation pages
            assert (await hooks.get(f"{base}/{created['id']}{page}")).status == 404
        resp = await hooks.post(f"{base}/{created['id']}/delete", data={"csrf_token": csrf, "confirm": "on"})
        assert resp.status == 404
    assert await db.fetchval("SELECT count(*) FROM webhook_endpoints WHERE id = $1::uuid", created["id"]) == 1


async def test_the_console_replays_only_events_of_the_organization_in_the_url(hooks, db):
    csrf = await signed_in(hooks)
    owner, stranger = await make_tenant(hooks), await make_tenant(hooks)
    created = await add_endpoint(hooks, hooks_of(owner), event_types=["user.created"])
    [theirs] = await write_events(db, stranger, EventType.USER_CREATED)
    page_url = f"/console/tenants/{owner.id}/webhooks/{created['id']}"
    data = {"csrf_token": csrf, "event_id": f"evt_{theirs['id']}"}
    resp = await hooks.post(page_url + "/replay", data=data)
    assert resp.status == 404 and stranger.id not in await resp.text()
    # Nor through the other organization's URL, whose endpoint it is not.
    resp = await hooks.post(f"/console/tenants/{stranger.id}/webhooks/{created['id']}/replay", data=data)
    assert resp.status == 404
    assert await deliveries_to(db, created["id"]) == []


async def test_the_operator_console_page_lists_and_adds_endpoints_for_every_tenant(hooks, db):
    csrf = await signed_in(hooks)
    resp = await console_add(hooks, "/console/webhooks", csrf)
    assert resp.status == 303
    endpoint_id = resp.headers["Location"].split("/")[3]
    shown = await (await hooks.get(resp.headers["Location"])).text()
    assert SECRET_SHOWN.findall(shown) == [endpoint_secret(SIGNING_KEY, UUID(endpoint_id), 1)]
    assert SECRET_ID.findall(shown) == [endpoint_id]
    listed = await (await hooks.get("/console/webhooks")).text()
    assert f"/console/webhooks/{endpoint_id}" in listed
    assert "Webhook endpoint added" in listed and endpoint_id in listed.split('id="operator-audit-table"')[1]
    assert (
        await db.fetchval("SELECT tenant_id FROM webhook_endpoints WHERE id = $1::uuid", endpoint_id) is None
    )
    await hooks.delete(f"/admin/v1/webhooks/{endpoint_id}", headers=ADMIN_HEADERS)


async def test_an_event_of_a_real_admin_action_is_delivered_and_replayed_by_its_id(hooks, db):
    tenant = await make_tenant(hooks)
    endpoint = await add_endpoint(hooks, hooks_of(tenant), event_types=["scim.disabled"])
    resp = await hooks.put(
        f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200
    base = f"{hooks_of(tenant)}/{endpoint['id']}"
    [queued] = (await (await hooks.get(base + "/deliveries", headers=ADMIN_HEADERS)).json())["items"]
    assert queued["event_type"] == "scim.disabled" and queued["state"] == "pending"

    resp = await hooks.post(base + "/replay", json={"event_id": queued["event_id"]}, headers=ADMIN_HEADERS)
    assert await resp.json() == {"queued": 1}
    listed = (await (await hooks.get(base + "/deliveries", headers=ADMIN_HEADERS)).json())["items"]
    assert [d["event_id"] for d in listed] == [queued["event_id"], queued["event_id"]]
    assert listed[0]["id"] > listed[1]["id"]  # the replay is a new delivery, newest first


async def test_a_range_of_more_events_than_one_replay_may_queue_is_refused_whole(hooks, db):
    tenant = await make_tenant(hooks)
    async with db.transaction():
        await record_events(db, UUID(tenant.id), [NewEvent(EventType.USER_UPDATED, {})] * (REPLAY_LIMIT + 1))
    endpoint = await add_endpoint(hooks, hooks_of(tenant), event_types=["user.updated"])
    body = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
    resp = await hooks.post(f"{hooks_of(tenant)}/{endpoint['id']}/replay", json=body, headers=ADMIN_HEADERS)
    assert resp.status == 400
    assert f"more than {REPLAY_LIMIT} events" in (await resp.json())["detail"]
    assert await deliveries_to(db, endpoint["id"]) == []


async def test_an_endpoint_locked_by_a_change_or_replay_never_stalls_the_events_that_queue_its_deliveries(
    hooks, db, hook_settings
):
    """A replay or a change holds its endpoint's row for its whole transaction: events written meanwhile
    still queue their deliveries for it (they need only the row's key), instead of waiting."""
    from scimsvc.product.events import EventType, NewEvent
    from scimsvc.store import events as event_store
    from scimsvc.store import webhook_endpoints

    tenant = await make_tenant(hooks)
    endpoint = await add_endpoint(hooks, hooks_of(tenant))
    holder = await asyncpg.connect(hook_settings.database_url)
    writer = await asyncpg.connect(hook_settings.database_url)
    try:
        async with holder.transaction():
            held = await webhook_endpoints.get_endpoint(
                holder, UUID(tenant.id), UUID(endpoint["id"]), for_update=True
            )
            assert held is not None
            async with writer.transaction():
                await writer.execute("SET LOCAL lock_timeout = '30s'")
                queued = await event_store.record_events(
                    writer,
                    UUID(tenant.id),
                    [NewEvent(EventType.SCIM_DISABLED, {"tenant": {"id": tenant.id}})],
                )
            assert queued == 1  # written while the endpoint's row was held
    finally:
        await holder.close()
        await writer.close()
    assert len(await deliveries_to(db, endpoint["id"])) == 1
