"""What the admin API and the console both need of webhook endpoints: whose endpoints a request manages,
and an endpoint and its deliveries as operators see them (a secret only in a create or rotate answer)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from aiohttp import web

from scimsvc.product.events import event_id
from scimsvc.scim.errors import invalid_value
from scimsvc.scim.ids import id_or_404
from scimsvc.scim.resources import scim_datetime
from scimsvc.services.webhooks import Delivery

BIGINT_MAX = 2**63 - 1
_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")


def owner_of(request: web.Request) -> UUID | None:
    """Whose endpoints a URL names: the tenant's under `/tenants/{tid}/`, else (None) the operator's."""
    tid = request.match_info.get("tid")
    return id_or_404(tid, "tenant") if tid is not None else None


def endpoint_id_of(request: web.Request) -> UUID:
    """The endpoint id in the path (`{wid}`)."""
    return id_or_404(request.match_info["wid"], "webhook endpoint")


def delivery_before(query: Mapping[str, str]) -> int | None:
    """`before` of a deliveries page (the last delivery id seen); a 400 naming the range otherwise."""
    raw = query.get("before")
    if not raw:
        return None
    if not _WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= BIGINT_MAX:
        raise invalid_value(f"before must be a delivery id: a whole number from 1 to {BIGINT_MAX}")
    return int(raw)


def render_endpoint(row: Mapping[str, Any], *, secret: str | None = None) -> dict[str, Any]:
    """An endpoint as the admin API answers it; `secret` only in the answer to a create or a rotation."""
    body = {
        "id": str(row["id"]),
        "tenant_id": str(row["tenant_id"]) if row["tenant_id"] else None,
        "url": row["url"],
        "description": row["description"],
        "event_types": list(row["event_types"]),
        "enabled": row["enabled"],
        "disabled_reason": row["disabled_reason"],
        "failing_since": scim_datetime(row["failing_since"]),
        "secret_generation": row["secret_generation"],
        "previous_secret_until": scim_datetime(row["previous_until"]),
        "created_at": scim_datetime(row["created_at"]),
        "updated_at": scim_datetime(row["updated_at"]),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def render_delivery(delivery: Delivery) -> dict[str, Any]:
    """A delivery with its latest attempts (newest first)."""
    row = delivery.row
    return {
        "id": row["id"],
        "event_id": event_id(row["event_id"]),
        "event_type": row["event_type"],
        "tenant_id": str(row["tenant_id"]),
        "state": row["state"],
        "attempt_count": row["attempts"],
        "next_attempt_at": scim_datetime(row["next_attempt_at"]) if row["state"] == "pending" else None,
        "created_at": scim_datetime(row["created_at"]),
        "finished_at": scim_datetime(row["finished_at"]),
        "attempts": [
            {
                "at": scim_datetime(a["at"]),
                "status": a["status"],
                "latency_ms": a["latency_ms"],
                "excerpt": a["excerpt"],
            }
            for a in delivery.attempts
        ],
    }
