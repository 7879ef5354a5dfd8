"""Email (userName) change: uniqueness, then a notice to the old and the new address, delivered by SMTP."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.conftest import free_port, run_worker, unique_email, user_body


async def rename(client: Any, tenant: Any, user: dict[str, Any], new: str) -> Any:
    patch = {"Operations": [{"op": "replace", "path": "userName", "value": new}]}
    return await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)


async def test_email_change_sends_one_notice_to_the_old_and_one_to_the_new_address(
    client, tenant, db, settings, smtp
):
    inbox, port = smtp
    old = unique_email("old")
    user = await (
        await client.post("/scim/v2/Users", json=user_body(old, displayName="Ada"), headers=tenant.headers)
    ).json()
    new = unique_email("new")
    resp = await rename(client, tenant, user, new)
    assert resp.status == 200 and (await resp.json())["userName"] == new
    rows = await db.fetch(
        "SELECT to_address, status FROM notices WHERE user_id = $1::uuid ORDER BY id", user["id"]
    )
    assert [(r["to_address"], r["status"]) for r in rows] == [(old, "pending"), (new, "pending")]

    await run_worker(dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))

    received = {tuple(rcpt): msg for rcpt, msg in inbox.messages if rcpt[0] in (old, new)}
    assert set(received) == {(old,), (new,)}
    body = received[(old,)].get_payload()
    assert new in body and "sign in with" in body
    rows = await db.fetch("SELECT status, attempts FROM notices WHERE user_id = $1::uuid", user["id"])
    assert all(r["status"] == "sent" and r["attempts"] == 1 for r in rows)
    outcomes = await db.fetch(
        "SELECT a.outcome FROM notice_attempts a JOIN notices n ON n.id = a.notice_id "
        "WHERE n.user_id = $1::uuid",
        user["id"],
    )
    assert [o["outcome"] for o in outcomes] == ["sent", "sent"]


async def test_email_change_to_a_taken_address_is_409_and_sends_nothing(client, tenant, db):
    a = await (
        await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    ).json()
    b = await (
        await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    ).json()
    resp = await rename(client, tenant, b, a["userName"].upper())
    assert resp.status == 409 and (await resp.json())["scimType"] == "uniqueness"
    assert await db.fetchval("SELECT count(*) FROM notices WHERE user_id = $1::uuid", b["id"]) == 0


async def test_without_smtp_notices_are_recorded_as_not_sent(client, tenant, db, settings):
    user = await (
        await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    ).json()
    await rename(client, tenant, user, unique_email("renamed"))
    await run_worker(dataclasses.replace(settings, smtp_url=""))
    rows = await db.fetch(
        "SELECT n.status, a.outcome, a.error FROM notices n JOIN notice_attempts a ON a.notice_id = n.id "
        "WHERE n.user_id = $1::uuid",
        user["id"],
    )
    assert len(rows) == 2
    assert all(
        r["status"] == "not_sent" and r["outcome"] == "not_sent" and "no SMTP configured" in r["error"]
        for r in rows
    )


async def test_failed_delivery_is_retried_and_every_attempt_recorded(client, tenant, db, settings, smtp):
    inbox, port = smtp
    user = await (
        await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    ).json()
    new = unique_email("retry")
    await rename(client, tenant, user, new)
    await run_worker(
        dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{free_port()}")
    )  # nobody there
    rows = await db.fetch(
        "SELECT id, status, next_attempt_at > now() AS later FROM notices WHERE user_id = $1::uuid",
        user["id"],
    )
    assert all(r["status"] == "pending" and r["later"] for r in rows)  # backed off, not given up

    await db.execute("UPDATE notices SET next_attempt_at = now() WHERE user_id = $1::uuid", user["id"])
    await run_worker(dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    assert (
        await db.fetchval(
            "SELECT count(*) FROM notices WHERE user_id = $1::uuid AND status = 'sent'", user["id"]
        )
        == 2
    )
    outcomes = await db.fetch(
        "SELECT a.outcome FROM notice_attempts a JOIN notices n ON n.id = a.notice_id "
        "WHERE n.user_id = $1::uuid ORDER BY a.id",
        user["id"],
    )
    assert [o["outcome"] for o in outcomes] == ["error", "error", "sent", "sent"]
    assert any(rcpt == [new] for rcpt, _ in inbox.messages)
