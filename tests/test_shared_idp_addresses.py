"""Many organizations behind one IdP address: a wrong credential never costs another organization anything.

Okta and Entra ID call from a few egress addresses shared by all their customers, so these tests send
every tenant's requests from one address (the test client's 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import secrets
import time
import uuid
from typing import Any

from scimsvc.web.app import create_app
from scimsvc.web.keys import METRICS
from scimsvc.web.token_cache import REFUSED_SECONDS
from tests.conftest import ADMIN_HEADERS, ADMIN_KEY, RUN_ID, make_tenant
from tests.test_console import sign_in

STORM_SECONDS = 60  # an IdP retry storm: the revoked token at >= 20 requests a second for a minute
STORM_RATE = 25
STORM_CAP_SECONDS = 240  # bounds the test on a machine too slow to send the storm in time


def own_prefix() -> str:
    return f"scimsvc:test:{RUN_ID}:rl:{uuid.uuid4().hex[:8]}"


def refused_lookups(app: Any) -> float:
    """Token lookups PostgreSQL answered with 'no such valid token', from the app's own metrics."""
    value = app[METRICS].registry.get_sample_value("scimsvc_token_lookups_total", {"outcome": "refused"})
    return value or 0.0


async def test_a_revoked_token_retried_for_a_minute_never_locks_out_another_tenant(aiohttp_client, settings):
    app = create_app(dataclasses.replace(settings, rate_limit_prefix=own_prefix()))
    client = await aiohttp_client(app)
    a, b = await make_tenant(client), await make_tenant(client)
    resp = await client.delete(f"/admin/v1/tenants/{a.id}/scim/tokens/{a.token_id}", headers=ADMIN_HEADERS)
    assert resp.status == 204
    before = refused_lookups(app)

    a_statuses: list[tuple[int, str]] = []
    b_statuses: list[int] = []

    async def send_a() -> None:
        resp = await client.get("/scim/v2/Users", headers=a.headers)
        a_statuses.append((resp.status, (await resp.json())["detail"]))

    async def send_b() -> None:
        resp = await client.get("/scim/v2/Users?count=1", headers=b.headers)
        b_statuses.append(resp.status)

    started = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    sent = 0
    # Paced, not awaited one by one: the rate holds even when single answers are slow.
    while (time.monotonic() - started < STORM_SECONDS or sent < STORM_SECONDS * STORM_RATE) and (
        time.monotonic() - started < STORM_CAP_SECONDS
    ):
        tasks.append(asyncio.create_task(send_a()))
        if sent % 10 == 0:
            tasks.append(asyncio.create_task(send_b()))
        sent += 1
        await asyncio.sleep(max(0.0, started + sent / STORM_RATE - time.monotonic()))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started

    assert len(a_statuses) >= STORM_SECONDS * 20
    assert {status for status, _ in a_statuses} == {401}  # never 429: it is one token, not a guess
    assert all("unknown, revoked or expired" in detail for _, detail in a_statuses)
    assert b_statuses and set(b_statuses) == {200}
    # PostgreSQL is asked about the revoked token at most once per REFUSED_SECONDS, whatever the rate.
    lookups = refused_lookups(app) - before
    assert 1 <= lookups <= math.ceil(elapsed / REFUSED_SECONDS) + 1


async def test_revoked_tokens_of_many_tenants_behind_one_address_are_never_guesses(aiohttp_client, settings):
    tight = dataclasses.replace(settings, auth_failures_per_minute=2, rate_limit_prefix=own_prefix())
    client = await aiohttp_client(create_app(tight))
    stale = []
    for _ in range(6):  # six organizations whose IdP still holds a token their admin revoked
        tenant = await make_tenant(client)
        resp = await client.delete(
            f"/admin/v1/tenants/{tenant.id}/scim/tokens/{tenant.token_id}", headers=ADMIN_HEADERS
        )
        assert resp.status == 204
        stale.append(tenant)
    statuses = [(await client.get("/scim/v2/Users", headers=tenant.headers)).status for tenant in stale * 3]
    assert set(statuses) == {401}
    # None of them counted: the address still has its whole budget for guesses.
    guesses = [{"Authorization": f"Bearer scim_guess{i}"} for i in range(3)]
    assert [(await client.get("/scim/v2/Users", headers=g)).status for g in guesses] == [401, 401, 429]


async def test_many_different_unknown_tokens_are_slowed_down_and_logged_while_valid_ones_pass(
    aiohttp_client, settings, caplog
):
    caplog.set_level(logging.INFO)
    tight = dataclasses.replace(settings, auth_failures_per_minute=5, rate_limit_prefix=own_prefix())
    app = create_app(tight)
    client = await aiohttp_client(app)
    tenant = await make_tenant(client)
    before = refused_lookups(app)
    # Shaped like issued tokens, so each one is looked up; the last two only after the block began.
    guesses = ["scim_" + secrets.token_urlsafe(32) for _ in range(7)]
    statuses = []
    for guess in guesses:
        resp = await client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {guess}"})
        statuses.append(resp.status)
    assert statuses == [401] * 5 + [429] * 2
    assert refused_lookups(app) - before == 7
    resp = await client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {guesses[-1]}"})
    assert resp.status == 401  # a guess already answered is not another guess, nor another lookup
    blocked = await client.get("/scim/v2/Users", headers={"Authorization": "Bearer not-even-shaped"})
    assert blocked.status == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert "too many failed authentications" in (await blocked.json())["detail"]
    assert refused_lookups(app) - before == 7  # a token no lookup could find is not looked up

    # The address is over its budget for guesses, yet a valid token from it is served.
    resp = await client.get("/scim/v2/Users", headers=tenant.headers)
    assert resp.status == 200
    # SCIM guesses do not count against the operator key from the same address, nor the reverse.
    resp = await client.get("/ops/queue", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401

    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed authentication (SCIM token sha256:" in m for m in messages) == 5
    assert any("too many failed authentications (scim) from 127.0.0.1" in m for m in messages)
    assert all(not any(g in m for g in guesses) and "not-even-shaped" not in m for m in messages)


async def test_guessing_the_operator_key_is_stopped_and_a_stale_key_never_locks_the_operator_out(
    aiohttp_client, settings, caplog
):
    caplog.set_level(logging.INFO)
    tight = dataclasses.replace(settings, auth_failures_per_minute=2, rate_limit_prefix=own_prefix())
    client = await aiohttp_client(create_app(tight))
    stale = {"Authorization": "Bearer stale-" + ADMIN_KEY}  # a monitoring script's old key, retried
    assert {(await client.get("/ops/queue", headers=stale)).status for _ in range(10)} == {401}
    await make_tenant(client)  # the operator, from the same address, is not locked out

    # The stale key counted once; one guess more fills the budget of 2, the next is refused.
    assert (await client.get("/ops/queue", headers={"Authorization": "Bearer guess-1"})).status == 401
    resp = await client.get("/ops/queue", headers={"Authorization": "Bearer guess-2"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    # Blocked: no key is compared, the right one included, or guessing would go on at full speed.
    assert (await client.get("/ops/queue", headers=ADMIN_HEADERS)).status == 429
    # The console's sign-in guesses the same key: it shares the address's budget for it.
    assert (await sign_in(client)).status == 429
    assert all(ADMIN_KEY not in r.getMessage() for r in caplog.records)
