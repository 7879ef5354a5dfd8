"""What the admin API and the console both show: a tenant, a user as operators see it, the users CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from aiohttp import web

from scimsvc.product.users import full_name, user_state
from scimsvc.scim.resources import scim_datetime
from scimsvc.services import admin_users
from scimsvc.web.keys import POOL

CSV_CHUNK = 64_000  # bytes buffered before each write of the export


def render_tenant(row: Mapping[str, Any], *, public_url: str) -> dict[str, Any]:
    """A tenant with its settings and the SCIM base URL its identity provider is given."""
    body = dict(row)
    body["id"] = str(row["id"])
    body["created_at"] = scim_datetime(row["created_at"])
    body["updated_at"] = scim_datetime(row["updated_at"])
    body["scim_base_url"] = public_url + "/scim/v2"
    return body


def render_admin_user(row: Mapping[str, Any], teams: list[dict[str, Any]]) -> dict[str, Any]:
    """A user as operators see it: name, state, license and seat, provisioning state, teams."""
    resource = row["resource"]
    return {
        "id": str(row["id"]),
        "userName": row["user_name"],
        "fullName": full_name(resource),
        "active": row["active"],
        "state": user_state(row),
        "license": row["license"],
        "seat": row["license"] == "full",
        "waiting": row["waiting_since"] is not None,
        "provisioning_state": row["provisioning_state"],
        "provisionedAt": scim_datetime(row["provisioned_at"]) if row["provisioned_at"] else None,
        "teams": teams,
        "created": scim_datetime(row["created_at"]),
        "lastModified": scim_datetime(row["updated_at"]),
    }


def render_user_page(page: admin_users.UserPage) -> list[dict[str, Any]]:
    """Each user of the page as `render_admin_user` shows it, in the page's order."""
    return [render_admin_user(r, page.teams[r["id"]]) for r in page.rows]


async def stream_users_csv(
    request: web.Request, tenant_id: UUID, filters: Mapping[str, Any]
) -> web.StreamResponse:
    """Write the tenant's users matching `filters` as a CSV attachment (admin API and console)."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="users-{tenant_id}.csv"',
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    async with admin_users.exported_users(request.app[POOL], tenant_id, **filters) as rows:
        async for row in rows:
            writer.writerow(row)
            if buffer.tell() > CSV_CHUNK:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


def audit_page_body(rows: list[Any], *, limit: int) -> dict[str, Any]:
    """An audit page as the admin API answers it: its items and the `next_before` to page on with."""
    items = [
        {
            "id": r["id"],
            "user_id": str(r["user_id"]) if r["user_id"] else None,
            "action": r["action"],
            "actor": r["actor"],
            "detail": r["detail"],
            "request_id": r["request_id"],
            "at": scim_datetime(r["created_at"]),
        }
        for r in rows
    ]
    return {"items": items, "next_before": items[-1]["id"] if len(items) == limit else None}
