"""Resource ids in URLs: ours are UUIDs, so anything else names nothing we hold."""

from __future__ import annotations

from uuid import UUID

from scimsvc.scim.errors import not_found


def id_or_404(raw: str, what: str) -> UUID:
    """The id `raw` of a `what` ("User", "Group", "team"...); a 404 naming it when it cannot be one."""
    try:
        return UUID(raw)
    except ValueError:
        raise not_found(f"{what} {raw!r} not found") from None
