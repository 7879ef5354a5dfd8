"""Audit rows name the SCIM request that caused them, also when the worker applies several at once."""

from __future__ import annotations

import uuid

from tests.conftest import post_user, run_worker

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def test_each_audit_row_of_a_users_batch_carries_its_own_changes_request_id(
    client, settings, db, tenant
):
    user = await post_user(client, tenant)
    await run_worker(settings)
    request_ids = []
    for i, active in enumerate((False, True, False)):  # queued while no worker runs
        request_id = f"audit-{uuid.uuid4().hex[:8]}-{i}"
        resp = await client.patch(
            f"/scim/v2/Users/{user['id']}",
            json={
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "active", "value": active}],
            },
            headers={**tenant.headers, "X-Request-Id": request_id},
        )
        assert resp.status == 200, await resp.text()
        request_ids.append(request_id)
    await run_worker(settings)

    applied = await db.fetch(
        "SELECT applied_at FROM outbox WHERE resource_id = $1::uuid AND request_id = ANY($2::text[])",
        user["id"],
        request_ids,
    )
    assert len(applied) == 3 and len({r["applied_at"] for r in applied}) == 1  # one drain applied all three
    rows = await db.fetch(
        "SELECT action, request_id FROM audit_log WHERE user_id = $1::uuid AND actor = 'scim' ORDER BY id",
        user["id"],
    )
    assert [(r["action"], r["request_id"]) for r in rows] == [
        ("deactivation", request_ids[0]),
        ("reactivation", request_ids[1]),
        ("deactivation", request_ids[2]),
    ]
