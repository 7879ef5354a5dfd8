"""Hard delete (admin API only): the user leaves the subscription; its boards go to heirs."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from scimsvc.contract import ChangeKind, ResourceType
from scimsvc.scim.errors import not_found
from scimsvc.services.changes import Scope, Transaction, write
from scimsvc.store import boards, licenses, user_admin


async def hard_delete_user(scope: Scope, user_id: UUID) -> list[dict[str, Any]]:
    """Hand every board of the user over, delete the user, audit it all; returns the hand-overs.

    One transaction. A freed seat is recorded as a tenant change, so the worker gives it to the
    oldest waiting user (seat work stays in the worker, under the tenant's allocation lock).
    """

    async def steps(tx: Transaction) -> list[dict[str, Any]]:
        if await licenses.lock_user_in_tenant(tx.conn, scope.tenant_id, user_id) is None:
            raise not_found(f"user {user_id} not found in tenant {scope.tenant_id}")
        handovers = await boards.hand_over_boards(
            tx.conn, scope.tenant_id, user_id, request_id=scope.request_id
        )
        gone = await user_admin.hard_delete_user(tx.conn, scope.tenant_id, user_id)
        assert gone is not None  # locked above
        await licenses.audit(
            tx.conn,
            scope.tenant_id,
            [user_id],
            "hard_delete",
            actor="admin",
            detail={"userName": gone["user_name"], "license": gone["license"], "boards": len(handovers)},
            request_id=scope.request_id,
        )
        if gone["license"] == "full":
            await licenses.audit(
                tx.conn,
                scope.tenant_id,
                [user_id],
                "release",
                actor="admin",
                detail={"from": "full", "to": None},
                request_id=scope.request_id,
            )
            await tx.record(
                ResourceType.TENANT, scope.tenant_id, ChangeKind.SEAT_RELEASED, {"user_id": str(user_id)}
            )
        return handovers

    return await write(scope, steps, tries=1)
