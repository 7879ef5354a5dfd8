"""Hard delete (admin API only): the user leaves the subscription; its boards go to heirs."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from scimsvc.contract import AuditAction, ChangeKind, ResourceType
from scimsvc.product.events import EventType, NewEvent
from scimsvc.product.heirs import heir_of
from scimsvc.scim.errors import not_found
from scimsvc.services.actions import ActionScope, record_action, wake_deliverer
from scimsvc.services.changes import Transaction, write
from scimsvc.store import audit, boards, licenses, user_admin
from scimsvc.store.audit import AuditRow


async def hard_delete_user(action: ActionScope, tenant_id: UUID, user_id: UUID) -> list[dict[str, Any]]:
    """Hand every board of the user over to its heir (`heir_of`), delete the user, audit it all, with a
    `user.deleted` event; returns the hand-overs.

    One transaction. A freed seat is recorded as a tenant change, so the worker gives it to the
    oldest waiting user (seat work stays in the worker, under the tenant's allocation lock).
    """
    scope = action.for_tenant(tenant_id)
    actor = action.actor.kind

    async def steps(tx: Transaction) -> tuple[list[dict[str, Any]], int]:
        if await licenses.lock_user_in_tenant(tx.conn, scope.tenant_id, user_id) is None:
            raise not_found(f"user {user_id} not found in tenant {scope.tenant_id}")
        handovers: list[dict[str, Any]] = []
        for board in await boards.heir_candidates(tx.conn, scope.tenant_id, user_id):
            heir = heir_of(team_member=board["team_member"], admin=board["admin"])
            handovers.append(
                {
                    "board_id": str(board["id"]),
                    "title": board["title"],
                    "team_id": None if board["team_id"] is None else str(board["team_id"]),
                    "to": None if heir.user_id is None else str(heir.user_id),
                    "via": heir.via,
                }
            )
        await boards.move_boards(
            tx.conn,
            scope.tenant_id,
            user_id,
            [(UUID(h["board_id"]), None if h["to"] is None else UUID(h["to"])) for h in handovers],
        )
        gone = await user_admin.hard_delete_user(tx.conn, scope.tenant_id, user_id)
        assert gone is not None  # locked above
        await audit.audit_rows(
            tx.conn,
            scope.tenant_id,
            [AuditRow(user_id, AuditAction.HANDOVER, actor, h, scope.request_id) for h in handovers],
        )
        # No user_id on the event: the user is gone, so the event keeps what it says here.
        gone_user = {"id": str(user_id), "userName": gone["user_name"]}
        deliveries = await record_action(
            tx.conn,
            action,
            scope.tenant_id,
            AuditAction.HARD_DELETE,
            {"userName": gone["user_name"], "license": gone["license"], "boards": len(handovers)},
            user_id=user_id,
            happened=[NewEvent(EventType.USER_DELETED, {"user": gone_user})],
        )
        if gone["license"] == "full":
            await audit.audit_rows(
                tx.conn,
                scope.tenant_id,
                [
                    AuditRow(
                        user_id, AuditAction.RELEASE, actor, {"from": "full", "to": None}, scope.request_id
                    )
                ],
            )
            await tx.record(
                ResourceType.TENANT, scope.tenant_id, ChangeKind.SEAT_RELEASED, {"user_id": str(user_id)}
            )
        return handovers, deliveries

    handovers, deliveries = await write(scope, steps, tries=1)
    await wake_deliverer(action, deliveries)
    return handovers
