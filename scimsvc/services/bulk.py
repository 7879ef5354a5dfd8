"""POST /Bulk: run each planned operation through the same services as the single-resource routes.

Each operation is its own transaction (the services open it), so one failing operation changes nothing
of its own and leaves the others as they were. The protocol rules (parsing, order, bulkId resolution,
the response) are in `scimsvc.scim.bulk`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from scimsvc.scim.bulk import BulkOperation, BulkRequest, BulkResult, plan, resolve, unresolved
from scimsvc.scim.errors import ScimError, database_unavailable
from scimsvc.scim.resources import weak_etag
from scimsvc.services import groups as group_service
from scimsvc.services import users as user_service
from scimsvc.services.changes import Scope
from scimsvc.store.db import unavailable

log = logging.getLogger(__name__)

Create = Callable[[Scope, Any], Awaitable[asyncpg.Record]]
Write = Callable[..., Awaitable[asyncpg.Record]]
Delete = Callable[..., Awaitable[None]]

SERVICES: dict[str, tuple[Create, Write, Write, Delete]] = {
    "Users": (
        user_service.create_user,
        user_service.replace_user,
        user_service.patch_user,
        user_service.delete_user,
    ),
    "Groups": (
        group_service.create_group,
        group_service.replace_group,
        group_service.patch_group,
        group_service.delete_group,
    ),
}


async def run_bulk(scope: Scope, request: BulkRequest, *, base_url: str) -> list[BulkResult]:
    """Run the operations in dependency order until done or `failOnErrors` errors; their results."""
    created: dict[str, str] = {}  # bulkId -> id of the resource its POST created
    results: list[BulkResult] = []
    errors = 0
    for op in plan(request.operations):
        if request.fail_on_errors is not None and errors >= request.fail_on_errors:
            break
        result = await _run(scope, op, created, base_url=base_url)
        if result.error is not None:
            errors += 1
        results.append(result)
    return results


async def _run(scope: Scope, op: BulkOperation, created: dict[str, str], *, base_url: str) -> BulkResult:
    if op.error is not None:
        return BulkResult(op, op.error.status, error=op.error)
    missing = [ref for ref in op.refs if ref not in created]
    if missing:
        return _failed(op, unresolved(missing))
    create, replace, patch, delete = SERVICES[op.endpoint]
    try:
        data = resolve(op.data, created)
        target = resolve(op.target, created)
        if op.method == "DELETE":
            await delete(scope, target, if_match=op.version)
            return BulkResult(op, 204, location=f"{base_url}/{op.endpoint}/{target}")
        if op.method == "POST":
            row = await create(scope, data)
            status = 201
        else:
            write = replace if op.method == "PUT" else patch
            row = await write(scope, target, data, if_match=op.version)
            status = 200
    except ScimError as exc:
        return _failed(op, exc)
    except Exception as exc:
        if unavailable(exc):
            return _failed(op, database_unavailable())
        # A bug must not take the other operations down with it; it is logged with the request id.
        log.exception("bulk operation %d (%s %s) failed", op.index, op.method, op.path)
        return _failed(
            op, ScimError(500, f"internal error in this operation; quote request id {scope.request_id}")
        )
    resource_id = str(row["id"])
    if op.method == "POST" and op.bulk_id is not None:
        created[op.bulk_id] = resource_id
    return BulkResult(
        op, status, location=f"{base_url}/{op.endpoint}/{resource_id}", version=weak_etag(row["version"])
    )


def _failed(op: BulkOperation, error: ScimError) -> BulkResult:
    return BulkResult(op, error.status, error=error)
